"""End-to-end test of the rater app in a real browser: Playwright driving Debian's Chromium against
``streamlit run mos_app/app.py``.

A rater consents, sees the calibration, answers a short mixed (ACR + pair) study, reloads the page
mid-way (resumes from the token in the URL), double-clicks a submit button once, takes the break and gets
a completion code. The database must then hold exactly the answers given, with the browser's viewport
and pixel ratio. Everything the browser received (DOM snapshots, websocket frames, HTTP bodies, image
bytes) must be free of method names, and every image must be drawn at 1:1 device pixels.

Set MOS_SCREENSHOTS=/some/dir to save a screenshot of each page kind.
"""

from __future__ import annotations

import base64
import os
import re
import struct
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests._browser import ROOT, free_port, launch_chromium, require_browser, start_app, stop

APP = ROOT / "mos_app" / "app.py"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

sync_api = require_browser()

DATA_URI = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)")
B64_RUN = re.compile(rb"[A-Za-z0-9+/=]{80,}")

def start_streamlit(db_url: str, study: str | None, port: int, log_path: Path):
    """The rater app on ``db_url`` (and ``study``), as :func:`tests._browser.start_app`."""
    return start_app(APP, {"MOS_DB_URL": db_url, **({"MOS_STUDY": study} if study else {})}, port, log_path)


# ---------------------------------------------------------------------------------------------- checks
def png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    out, i = [], 8
    while i < len(data):
        (n,) = struct.unpack(">I", data[i:i + 4])
        out.append(data[i + 4:i + 8])
        i += 12 + n
    return out


def assert_no_method(blob: bytes, methods: list[str], where: str) -> None:
    low = B64_RUN.sub(b"", blob).lower()  # base64 image runs are checked decoded, not as text
    for m in methods:
        if len(m) >= 4:
            assert m.lower().encode() not in low, f"method name {m!r} found in {where}"
        else:  # short names ("hr") only as a whole word
            assert not re.search(rb"(?<![a-z0-9])" + re.escape(m.lower().encode()) + rb"(?![a-z0-9])",
                                 re.sub(rb"<[^>]*>", b" ", low)), f"{m!r} found in {where}"


SIZED_JS = """(tid) => {
    const imgs = [...document.querySelectorAll(`[data-mos='trial-${tid}'] img`)];
    return imgs.length > 0 && imgs.every(e => e.complete && e.naturalWidth > 0 &&
        Math.abs(e.getBoundingClientRect().width * devicePixelRatio - e.naturalWidth) < 0.01 &&
        Math.abs(e.getBoundingClientRect().height * devicePixelRatio - e.naturalHeight) < 0.01);
}"""


def wait_sized(page, tid: int, timeout_ms: int = 20000) -> None:
    """Wait by condition (not a fixed sleep) until trial ``tid``'s images are decoded and laid out at 1:1
    device pixels; on timeout the caller's own measurement reports the sizes found."""
    try:
        page.wait_for_function(SIZED_JS, arg=tid, timeout=timeout_ms)
    except sync_api.TimeoutError:
        pass


# ---------------------------------------------------------------------------------------------- the test
@pytest.fixture
def served_study(make_study, sqlite_url, tmp_path):
    study = make_study(sqlite_url, name="e2e", mode="both", trials_per_rater=6, repeats=1, break_every=4, size=64)
    port = free_port()
    proc = start_streamlit(sqlite_url, study.name, port, tmp_path / "streamlit.log")
    try:
        yield study, f"http://127.0.0.1:{port}/"
    finally:
        stop(proc)


def test_rater_completes_study_in_browser(served_study):
    from sqlalchemy import select

    from db import get_rater, open_database
    from db.models import Method, Rater, Rating

    study, base = served_study
    shots = os.environ.get("MOS_SCREENSHOTS")
    snapshots: list[str] = []
    frames: list[bytes] = []
    responses = []
    answers: dict[int, tuple] = {}

    def shot(name):
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(shots) / f"mos_{name}.png"), full_page=True)

    def marker() -> int | None:
        el = page.query_selector("[data-mos^='trial-']")
        return int(el.get_attribute("data-mos").split("-")[1]) if el else None

    def wait_next(previous: int | None, after_break: bool = False) -> str:
        """Wait until a new trial, the break or the thank-you page is on screen; returns which.

        Streamlit keeps the previous page's elements on screen until the rerun replaces them, so after the
        break's Continue only a new trial counts (the break heading may still be there)."""
        page.wait_for_function(
            """([prev, afterBreak]) => {
                const m = document.querySelector("[data-mos^='trial-']");
                const form = document.querySelector("[data-testid='stForm']");
                if (m && form && m.getAttribute('data-mos') !== 'trial-' + prev) {
                    const imgs = [...m.querySelectorAll('img')];
                    return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
                }
                const h = [...document.querySelectorAll('h1')].map(e => e.innerText).join('|');
                return (!afterBreak && h.includes('Time for a short break')) || h.includes('Thank you!');
            }""", arg=[previous, after_break], timeout=20000)
        heads = page.inner_text("body")
        if marker() is not None and marker() != previous:
            snapshots.append(page.content())
            return "trial"
        return "break" if "Time for a short break" in heads else "done"

    with sync_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=2)
            page.on("websocket", lambda ws: ws.on(
                "framereceived", lambda p: frames.append(p if isinstance(p, bytes) else p.encode())))
            page.on("response", lambda r: responses.append(r))

            # Consent -> start.
            page.goto(base)
            page.get_by_text("I have read the above and agree").click()
            shot("consent")
            page.get_by_role("button", name="Start").click()
            page.wait_for_url(re.compile(r"[?&]r="), timeout=20000)
            token = parse_qs(urlparse(page.url).query)["r"][0]

            # Calibration: two anchor images, labelled 1 and 5.
            page.get_by_text("Example 2: this is a 5").wait_for(timeout=20000)
            for k in (0, 1):
                page.locator(f"[data-mos='calibration-{k}'] img").wait_for(timeout=20000)
            assert page.locator("[data-mos^='calibration-'] img").count() == 2
            snapshots.append(page.content())
            shot("calibration")
            page.get_by_role("button", name="I understand").click()

            kind, previous, n, reloaded, double_clicked, modes_seen = wait_next(None), None, 0, False, False, set()
            while kind != "done":
                if kind == "break":
                    shot("break")
                    page.get_by_role("button", name="Continue").click()
                    kind = wait_next(previous, after_break=True)
                    continue
                tid = marker()
                # Every image is drawn at exactly one image pixel per device pixel (measured once laid out).
                wait_sized(page, tid)
                sizes = page.eval_on_selector_all(
                    "[data-mos^='trial-'] img",
                    "els => els.map(e => [e.getBoundingClientRect().width * devicePixelRatio, e.naturalWidth,"
                    " e.getBoundingClientRect().height * devicePixelRatio, e.naturalHeight, e.alt])")
                assert sizes and all(abs(w - nw) < 0.01 and abs(h - nh) < 0.01 for w, nw, h, nh, _ in sizes), sizes
                if len(sizes) == 1:
                    mode, value, label = "acr", 1 + (tid % 5), None
                    label = {1: "1 – Bad", 2: "2 – Poor", 3: "3 – Fair", 4: "4 – Good", 5: "5 – Excellent"}[value]
                    assert sizes[0][4] == "image"
                else:
                    mode, value = "pair", ("A", "B", "none")[tid % 3]
                    label = {"A": "A (left)", "B": "B (right)", "none": "No preference"}[value]
                    assert [s[4] for s in sizes] == ["image A", "image B"]
                if mode not in modes_seen:
                    shot(mode)
                    modes_seen.add(mode)
                assert f"Image {n + 1} of" in page.inner_text("body")

                # Scope to this trial's form (Streamlit keeps the previous page's elements until replaced) and
                # to its radio group (an aria helper element can repeat the option's text).
                form = page.locator("[data-testid='stForm']", has=page.locator(f".st-key-answer_{tid}"))
                if n == 2 and not reloaded:  # refresh mid-way: the same trial comes back, nothing stored
                    form.get_by_role("radiogroup").get_by_text(label, exact=True).click()
                    page.reload()
                    reloaded = True
                    kind = wait_next(None)
                    assert marker() == tid, "resume shows the first unanswered trial"
                    assert f"Image {n + 1} of" in page.inner_text("body")
                    continue

                form.get_by_role("radiogroup").get_by_text(label, exact=True).click()
                sync_api.expect(form.get_by_role("radio", name=label, exact=True)).to_be_checked()
                submit = form.get_by_role("button", name="Submit")
                if n == 1 and not double_clicked:
                    submit.dblclick()  # double click: still one rating
                    double_clicked = True
                else:
                    submit.click()
                answers[tid] = (value, None) if mode == "acr" else (None, value)
                n += 1
                previous = tid
                kind = wait_next(previous)

            page.get_by_text("Your completion code").wait_for(timeout=20000)
            shot("thank_you")
            shown_code = page.locator("code").last.inner_text().strip()
            snapshots.append(page.content())
            assert_urls = [r.url for r in responses]
            bodies = []
            for r in responses:
                if "/static/" in r.url:  # Streamlit's own JS/CSS/fonts: identical for every app
                    continue
                try:
                    bodies.append((r.url, r.body()))
                except Exception:  # redirects / websocket upgrade have no body
                    pass
        finally:
            browser.close()

    # ---- the database holds exactly the answers given, with this browser's viewport
    db = open_database(study.url)
    try:
        info = get_rater(db, token)
        with db.session() as s:
            rater = s.scalars(select(Rater).where(Rater.token == token)).one()
            stored = {r.trial_id: r for r in s.scalars(select(Rating).where(Rating.rater_id == rater.id))}
            all_ratings = s.scalars(select(Rating)).all()
            methods = [m.name for m in s.scalars(select(Method))]
    finally:
        db.close()
    assert reloaded and double_clicked and modes_seen == {"acr", "pair"}
    assert info.completed and info.done == info.total == n == len(answers)
    assert len(all_ratings) == len(answers), "no extra rating from the reload or the double click"
    assert {t: (r.score, r.choice) for t, r in stored.items()} == answers
    assert all(r.viewport_w == 1280 and r.viewport_h == 900 and r.device_pixel_ratio == 2.0 for r in stored.values())
    assert all(r.response_ms is not None and r.response_ms >= 0 for r in stored.values())
    assert shown_code == info.completion_code

    # ---- blindness: nothing received names a method; images carry pixels only
    assert set(methods) == {"nearest", "bicubic", "hr"}
    for url in assert_urls:
        assert_no_method(url.encode(), methods, f"URL {url}")
        if urlparse(url).path != "/favicon.png":  # Streamlit's own icon; stimuli travel inline only
            assert not url.lower().endswith(".png"), f"an image was fetched by URL: {url}"
    for i, html in enumerate(snapshots):
        assert_no_method(html.encode(), methods, f"page snapshot {i}")
        alts = re.findall(r'<img src="data:[^"]*" alt="([^"]*)"', html)
        assert set(alts) <= {"image", "image A", "image B"}, alts
    assert len(frames) > 10 and any(b"data:image/png;base64," in f for f in frames), "websocket not captured"
    for i, f in enumerate(frames):
        assert_no_method(f, methods, f"websocket frame {i}")
    for url, body in bodies:
        assert_no_method(body, methods, f"response body of {url}")
    images = {b64 for html in snapshots for b64 in DATA_URI.findall(html)}
    assert len(images) >= 5
    for b64 in images:
        raw = base64.b64decode(b64)
        assert set(png_chunks(raw)) <= {b"IHDR", b"IDAT", b"IEND"}, "image metadata chunk present"
        for m in methods:
            assert m.encode() not in raw.lower() or len(m) < 4
