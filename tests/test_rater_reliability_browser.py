"""Browser Back, or a new visit without ``?r=``, resumes this browser's rater instead of starting a second one
(issue 16): Playwright driving Debian's Chromium against ``streamlit run mos_app/app.py``."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest

from tests._browser import ROOT, free_port, launch_chromium, require_browser, start_app, stop

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

sync_api = require_browser()


@pytest.fixture
def served(make_study, sqlite_url, tmp_path):
    study = make_study(sqlite_url, name="back", votes_per_stimulus=3, repeats=0)
    port = free_port()
    proc = start_app(ROOT / "mos_app" / "app.py", {"MOS_DB_URL": sqlite_url}, port, tmp_path / "streamlit.log")
    try:
        yield study, f"http://127.0.0.1:{port}/"
    finally:
        stop(proc)


def _token(url: str) -> str | None:
    return (parse_qs(urlparse(url).query).get("r") or [None])[0]


def test_back_and_new_visit_resume_the_browsers_rater(served):
    from sqlalchemy import func, select

    from db import open_database
    from db.models import Rater

    study, base = served
    with sync_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            ctx = browser.new_context()
            page = ctx.new_page()
            page.goto(base)
            page.get_by_text("I have read the above and agree").click()
            page.get_by_role("button", name="Start").click()
            page.wait_for_url(re.compile(r"[?&]r="), timeout=20000)
            token = _token(page.url)
            page.get_by_role("heading", name="Calibration").wait_for(timeout=20000)

            # Back to the consent page: this session's rater comes back (same token, no new rater).
            page.go_back()
            page.wait_for_url(lambda u: _token(u) == token, timeout=20000)
            page.get_by_role("heading", name="Calibration").wait_for(timeout=20000)

            # A new visit of the bare study link in the same browser (new session): the cookie resumes it.
            again = ctx.new_page()
            again.goto(base)
            again.wait_for_url(lambda u: _token(u) == token, timeout=20000)
            again.get_by_role("heading", name="Calibration").wait_for(timeout=20000)

            # Another browser is another rater: it gets the consent page.
            other = browser.new_context().new_page()
            other.goto(base)
            other.get_by_text("I have read the above and agree").wait_for(timeout=20000)
            assert _token(other.url) is None
        finally:
            browser.close()

    db = open_database(study.url)
    try:
        with db.session() as s:
            assert s.scalar(select(func.count()).select_from(Rater)) == 1
    finally:
        db.close()
