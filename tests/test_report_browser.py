"""Issue 12 acceptance in a real browser (Playwright driving Debian's Chromium):

* ``report.html`` opened from disk with every network request blocked: no request is even attempted,
  every chart (inline SVG) is drawn with a non-empty box, and the page logs no error;
* the admin dashboard served by ``streamlit run mos_app/admin.py`` on a study filled through the data
  layer: after login, every Altair chart is drawn, no Streamlit exception box, no page error.

Screenshots go to ``$MOS_SCREENSHOTS`` (default /tmp/shots): report_html.png and dashboard.png.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests._browser import ROOT, free_port, launch_chromium, require_browser, start_app, stop
from tests.test_report_db import fill_study

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

sync_api = require_browser()

SHOTS = Path(os.environ.get("MOS_SCREENSHOTS", "/tmp/shots"))
ADMIN = ROOT / "mos_app" / "admin.py"


def _local(url: str, allow_http: bool) -> bool:
    return url.startswith(("file:", "data:", "about:", "blob:")) or (
        allow_http and url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "http://localhost")))


def _page(browser, allow_http: bool):
    """A page that aborts every request that is not local; returns (page, blocked urls, errors)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    blocked, errors = [], []

    def route(r):
        if _local(r.request.url, allow_http):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    ctx.route("**/*", route)
    page = ctx.new_page()
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    return page, blocked, errors


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    from pipelines import report as cli
    from srkeras.mos.simulate import simulate_pairs, srgan_study

    d = tmp_path_factory.mktemp("rep")
    acr, met = srgan_study("Set14", n_images=8, n_raters=10, seed=3)
    acr.to_csv(d / "votes.csv", index=False)
    met.to_csv(d / "metrics.csv", index=False)
    pairs = simulate_pairs({m: q for m, q in zip(sorted(set(acr["method"])), range(9))}, n_raters=6, images=4, seed=1)
    pairs[["rater", "image", "method_a", "method_b", "choice"]].to_csv(d / "pairs.csv", index=False)
    assert cli.main(["--ratings-csv", str(d / "votes.csv"), "--pairs-csv", str(d / "pairs.csv"), "--metrics-csv",
                     str(d / "metrics.csv"), "--out", str(d / "out"), "--bootstrap", "300", "--quiet"]) == 0
    return d / "out"


def test_report_html_offline_every_chart_drawn(report_dir):
    html = (report_dir / "report.html").read_text()
    n_svg = html.count("<svg")
    assert n_svg >= 7  # MOS, histogram, significance, 2 metric scatters, BT, pair heatmap
    with sync_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page, blocked, errors = _page(browser, allow_http=False)
            page.goto((report_dir / "report.html").as_uri())
            page.wait_for_load_state("load")
            boxes = page.eval_on_selector_all(
                "svg", "els => els.map(e => { const r = e.getBoundingClientRect();"
                       " return [r.width, r.height, e.querySelectorAll('rect,circle,line,path,text').length]; })")
            assert len(boxes) == n_svg
            assert all(w > 50 and h > 50 and marks > 3 for w, h, marks in boxes), boxes
            assert page.locator("h2", has_text="How to read this").count() == 1
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "report_html.png"), full_page=True)
            assert blocked == [], f"report.html tried the network: {blocked}"
            assert errors == [], errors
        finally:
            browser.close()


@pytest.fixture
def served_admin(make_study, sqlite_url, tmp_path):
    st = make_study(sqlite_url, name="dash", mode="both", votes_per_stimulus=10, repeats=1)
    db = st.open()
    try:
        fill_study(db, st.name, n_raters=6, random_raters=1)
    finally:
        db.close()
    port = free_port()
    proc = start_app(ADMIN, {"MOS_DB_URL": sqlite_url, "MOS_ADMIN_PASSWORD": "s3cret"}, port, tmp_path / "admin.log")
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop(proc)


CHARTS_JS = """n => {
  const charts = [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')];
  const drawn = charts.filter(c => { const m = c.querySelector('canvas, svg.marks');
    if (!m) return false; const r = m.getBoundingClientRect(); return r.width > 50 && r.height > 50; });
  return drawn.length >= n;
}"""


def test_dashboard_every_chart_drawn(served_admin):
    with sync_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page, blocked, errors = _page(browser, allow_http=True)
            page.goto(served_admin)
            page.locator("input[type='password']").fill("s3cret")
            page.get_by_role("button", name="Log in").click()
            sidebar = page.locator("[data-testid='stSidebar']")
            sidebar.get_by_text("Dashboard", exact=True).click()
            page.get_by_text("Dashboard — ").wait_for(timeout=60000)
            page.wait_for_function(CHARTS_JS, arg=7, timeout=60000)
            assert page.locator("[data-testid='stVegaLiteChart']").count() == 7
            assert page.locator("[data-testid='stException']").count() == 0
            for name in ("summary.json", "report.html", "raters.csv"):
                # drawn after the charts: wait for it by condition (a loaded machine renders late)
                page.get_by_role("button", name=name).wait_for(timeout=60000)
                assert page.get_by_role("button", name=name).count() == 1
            page.wait_for_load_state("networkidle")
            SHOTS.mkdir(parents=True, exist_ok=True)
            tall = page.evaluate("() => Math.max(...[...document.querySelectorAll('*')].map(e => e.scrollHeight))")
            page.set_viewport_size({"width": 1280, "height": min(int(tall) + 100, 12000)})  # app scrolls inside
            page.wait_for_function(CHARTS_JS, arg=7, timeout=30000)
            page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)
            assert [e for e in errors if "favicon" not in e] == [], errors
            assert blocked == [], f"the dashboard tried the network: {blocked}"
        finally:
            browser.close()
