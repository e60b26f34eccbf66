"""A Prolific-style crowd study in a real browser (issue 20): Playwright driving Debian's Chromium against
``streamlit run mos_app/app.py``.

The participant opens the study link with ``PROLIFIC_PID``, ``STUDY_ID`` and ``SESSION_ID``, consents, passes
the screen check (measured by the page itself) and the practice, answers one trial, and leaves. Coming back
in another browser (no cookie) with the same participant ID resumes the same rater at the next trial; the
last answer sends the browser to the completion URL with the rater's code. A too-small window on a too-small
screen is refused before any rater exists, and a full study says so before the consent. Neither the code nor
the token appears in the server's log.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from tests._browser import ROOT, free_port, launch_chromium, require_browser, start_app, stop
from tests._raters import honest_score

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

sync_api = require_browser()

PROLIFIC = {"PROLIFIC_PID": "5f1e2d3c4b5a69788796a5b4", "STUDY_ID": "60aa11bb22cc", "SESSION_ID": "sess42"}
COMPLETE = "https://app.prolific.com/submissions/complete"


@pytest.fixture
def served(make_study, sqlite_url, tmp_path):
    from db import next_trial, open_database, start_rater, stimulus_file_methods, submit_rating

    crowd = make_study(sqlite_url, name="crowd", n_images=3, repeats=0, trials_per_rater=3, crowd="prolific",
                       completion_url=COMPLETE + "?cc={code}")
    full = make_study(sqlite_url, name="full", votes_per_stimulus=1, repeats=0)
    db = open_database(sqlite_url)
    try:
        token = start_rater(db, full.name)  # answers the anchors as expected: a screened-out rater's
        method_of = stimulus_file_methods(db, full.name)  # votes would be topped up (issue 20)
        while (t := next_trial(db, token)) is not None:
            score = honest_score(method_of, t)
            submit_rating(db, token, t.trial_id, score=score, response_ms=3000)
    finally:
        db.close()
    port, log = free_port(), tmp_path / "streamlit.log"
    proc = start_app(ROOT / "mos_app" / "app.py", {"MOS_DB_URL": sqlite_url}, port, log)
    try:
        yield crowd, f"http://127.0.0.1:{port}/", log
    finally:
        stop(proc)


def _token(url: str) -> str | None:
    return (parse_qs(urlparse(url).query).get("r") or [None])[0]


def _marker(page) -> int | None:
    el = page.query_selector("[data-mos^='trial-']")
    return int(el.get_attribute("data-mos").split("-")[1]) if el else None


def _wait_trial(page, previous: int | None) -> None:
    page.wait_for_function(
        """(prev) => {
            const m = document.querySelector("[data-mos^='trial-']");
            const form = document.querySelector("[data-testid='stForm']");
            return (m && form && m.getAttribute('data-mos') !== 'trial-' + prev)
                || [...document.querySelectorAll('h1')].some(h => h.innerText.includes('Thank you!'));
        }""", arg=previous, timeout=30000)


def _answer(page, tid: int) -> None:
    form = page.locator("[data-testid='stForm']", has=page.locator(f".st-key-answer_{tid}"))
    form.get_by_role("radiogroup").get_by_text("4 – Good", exact=True).click()
    sync_api.expect(form.get_by_role("radio", name="4 – Good", exact=True)).to_be_checked()
    form.get_by_role("button", name="Submit").click()
    _wait_trial(page, tid)


def _qualify(page) -> None:
    """Consent, screen check, examples, two practice trials with feedback, Start."""
    page.get_by_text("I have read the above and agree").click()
    page.get_by_role("button", name="Start").click()
    page.get_by_text("Your screen can show the images at their true size").wait_for(timeout=30000)
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Continue to the practice").click()
    for i in (1, 2):
        page.get_by_role("heading", name=f"Practice {i} of 2").wait_for(timeout=30000)
        page.locator(f".st-key-practice_{i - 1}").get_by_text("3 – Fair", exact=True).click()
        page.get_by_role("button", name="Check my answer").click()
        page.get_by_text("Not quite.").wait_for(timeout=30000)  # "Fair" is wrong for both anchors
        page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Start the study").click()


def test_prolific_participant_resumes_and_is_sent_back_with_the_code(served):
    from db import get_rater, open_database
    from db.models import Rater

    study, base, log = served
    link = base + "?" + urlencode({"study": study.name, **PROLIFIC})
    landed = []
    with sync_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            # A window on a screen too small for 1:1 display: refused before any rater exists.
            small = browser.new_context(viewport={"width": 140, "height": 240}, screen={"width": 140, "height": 240})
            tiny = small.new_page()
            tiny.goto(base + "?" + urlencode({"study": study.name, **PROLIFIC, "PROLIFIC_PID": "smallscreen01"}))
            tiny.get_by_text("I have read the above and agree").click()
            tiny.get_by_role("button", name="Start").click()
            tiny.get_by_text("this study needs a larger screen").wait_for(timeout=30000)
            assert tiny.get_by_role("button", name="Continue").count() == 0
            small.close()

            first = browser.new_context(viewport={"width": 1280, "height": 900})
            page = first.new_page()
            page.goto(link)
            page.get_by_text("3 images to score").wait_for(timeout=30000)  # the expected length, before consent
            _qualify(page)
            page.wait_for_url(re.compile(r"[?&]r="), timeout=30000)
            token = _token(page.url)
            _wait_trial(page, None)
            answered = _marker(page)
            _answer(page, answered)
            following = _marker(page)
            assert following not in (None, answered)
            first.close()

            # Back another day, in another browser (no cookie): the participant ID resumes the same rater.
            second = browser.new_context(viewport={"width": 1280, "height": 900})
            second.route(COMPLETE + "*", lambda route: (landed.append(route.request.url),
                                                        route.fulfill(body="<h1>Submission complete</h1>",
                                                                      content_type="text/html")))
            page = second.new_page()
            page.goto(link)
            page.wait_for_url(lambda u: _token(u) == token, timeout=30000)
            _wait_trial(page, None)
            assert _marker(page) == following, "resumes at the first unanswered trial"
            while (tid := _marker(page)) is not None and not page.get_by_text("Thank you!").count():
                _answer(page, tid)
            page.get_by_text("Your completion code").wait_for(timeout=30000)
            page.wait_for_url(re.compile(re.escape(COMPLETE) + r"\?cc="), timeout=30000)  # the redirect
            page.get_by_text("Submission complete").wait_for(timeout=30000)

            # A full study says so before the consent, in plain words.
            other = browser.new_context().new_page()
            other.goto(base + "?" + urlencode({"study": "full", "PROLIFIC_PID": "someone0else"}))
            other.get_by_text("This study is full").wait_for(timeout=30000)
            assert other.get_by_text("I have read the above and agree").count() == 0
            assert "full" not in [h.inner_text() for h in other.query_selector_all("h1")]
        finally:
            browser.close()

    db = open_database(study.url)
    try:
        info = get_rater(db, token)
        with db.session() as s:
            raters = s.query(Rater.participant_id).filter(Rater.study_id == study.info.id).all()
    finally:
        db.close()
    assert info.completed and info.done == info.total == 3
    assert raters == [(PROLIFIC["PROLIFIC_PID"],)], "one rater for the participant; none for the small screen"
    assert landed == [f"{COMPLETE}?cc={info.completion_code}"]
    text = log.read_text()
    assert info.completion_code not in text and token not in text
