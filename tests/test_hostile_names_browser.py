"""Study, file and rater names carrying HTML/script (issue 23, hostile use): every page that shows
them (rater consent and study picker, admin Study page, Dashboard, the report file) shows them as
text and never runs them. Checked in a real browser: the payloads set ``window.__pwned`` if run."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests._browser import ROOT, free_port, launch_chromium, require_browser, start_apps, stop

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

sync_api = require_browser()

STUDY = '<img src=x onerror="window.__pwned=1">'
FILE = '<img src=y onerror="window.__pwned=2">'
RATER = '<script>window.__pwned=3</script>'


@pytest.fixture
def hostile_study(sqlite_url, tmp_path):
    from PIL import Image

    from db import open_database
    from jobs.mos_study import StudySpec, make_study
    from tests.test_report_db import fill_study

    hr = tmp_path / "hr"
    hr.mkdir()
    rng = np.random.default_rng(0)
    for stem in [FILE, "b", "c", "d"]:
        Image.fromarray((rng.random((48, 48, 3)) * 255).astype(np.uint8)).save(hr / f"{stem}.png")
    make_study(StudySpec(name=STUDY, hr_dir=hr, db_url=sqlite_url, stimuli_dir=tmp_path / "stim", votes_per_stimulus=3,
                         methods=("nearest", "bicubic", "hr"), progress=False), log=lambda m: None)
    db = open_database(sqlite_url)
    try:
        fill_study(db, STUDY, n_raters=2, display=RATER)
    finally:
        db.close()
    return sqlite_url


def _not_run(page) -> None:
    assert page.evaluate("() => window.__pwned") is None, "a name's HTML ran in the page"


def test_names_are_text_on_every_page(hostile_study, tmp_path):
    from pipelines import report

    url = hostile_study
    ports = free_port(), free_port()
    procs = start_apps([
        (ROOT / "mos_app" / "admin.py", {"MOS_DB_URL": url, "MOS_ADMIN_PASSWORD": "pw-123456"}, ports[0], tmp_path / "a.log"),
        (ROOT / "mos_app" / "app.py", {"MOS_DB_URL": url}, ports[1], tmp_path / "r.log"),
    ])
    try:
        with sync_api.sync_playwright() as pw:
            browser = launch_chromium(pw)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"http://127.0.0.1:{ports[0]}/")
                page.get_by_label("Admin password").fill("pw-123456")
                page.get_by_role("button", name="Log in").click()
                page.get_by_text(f"Study “{STUDY}”", exact=False).wait_for(timeout=60000)
                page.get_by_role("tab", name="Export / close").click()
                page.wait_for_timeout(1500)
                _not_run(page)
                page.get_by_test_id("stRadioGroup").get_by_text("Dashboard", exact=True).click()
                page.get_by_text("ACR votes", exact=False).wait_for(timeout=90000)
                page.wait_for_timeout(1500)
                _not_run(page)
                page.goto(f"http://127.0.0.1:{ports[1]}/")  # the rater app: the only open study
                page.get_by_text("I have read the above and agree").wait_for(timeout=60000)
                _not_run(page)
                page.goto(f"http://127.0.0.1:{ports[1]}/?study=" + '<img src=z onerror="window.__pwned=4">')
                page.wait_for_timeout(3000)
                _not_run(page)
            finally:
                browser.close()
    finally:
        for p in procs:
            stop(p)
    assert report.main(["--db", url, "--study", STUDY, "--out", str(tmp_path / "rep"), "--quiet",
                        "--bootstrap", "200"]) == 0
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "onerror" not in re.sub(r"&lt;img src=[xy] onerror=&quot;window.__pwned=\d&quot;&gt;", "", html)
    assert "&lt;img src=x onerror" in html and "<script" not in html
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert summary  # the JSON carries names as data
