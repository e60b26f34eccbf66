"""No Streamlit "Deploy" button on the admin and Try-it pages (issue 23): .streamlit/config.toml sets
``client.toolbarMode = "viewer"``. The servers here are started WITHOUT the toolbar flag the other
browser tests pass, so the repository's config decides, as for a user running the README's commands.
(Checked by hand: with ``--client.toolbarMode auto``, Streamlit's default, the button is there.)"""

from __future__ import annotations

import pytest

from tests._browser import ROOT, free_port, launch_chromium, require_browser, start_app, stop

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

sync_api = require_browser()


@pytest.mark.parametrize("page_file", ["admin.py", "try_it.py"])
def test_no_deploy_button(page_file, tmp_path):
    env = {"SRKERAS_MODEL_DIR": str(tmp_path), "MOS_DB_URL": f"sqlite:///{tmp_path / 'mos.db'}",
           "MOS_ADMIN_PASSWORD": "s3cret-pw"}
    port = free_port()
    proc = start_app(ROOT / "mos_app" / page_file, env, port, tmp_path / "st.log", toolbar=None)
    try:
        with sync_api.sync_playwright() as pw:
            browser = launch_chromium(pw)
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}/")
                page.locator('[data-testid="stToolbar"]').wait_for(timeout=60000)
                page.locator('[data-testid="stMain"]').wait_for(timeout=60000)
                page.wait_for_timeout(1500)  # the toolbar's items arrive with the first script run
                assert page.locator('[data-testid="stAppDeployButton"]').count() == 0
                assert page.get_by_text("Deploy", exact=True).count() == 0
            finally:
                browser.close()
    finally:
        stop(proc)
