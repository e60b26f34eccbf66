"""Crowd hand-off, qualification and consent texts of the rater app (issue 20, scope 4), with AppTest.

* The consent text says what THIS study asks (an ACR-only study never describes pair choices, a pair-only
  study never describes scores) and how many answers and minutes to expect: the count is the length of the
  list the next rater really gets.
* A crowd study (Prolific / MTurk) needs the participant ID from the URL; a second visit with the same ID
  resumes the same rater; the finished rater is sent to the completion URL with their code.
* A qualification study checks the screen (measured in the browser; here the probe's report is set as the
  browser would) and refuses politely before any rater exists when 1:1 display is impossible; the practice
  gives feedback and stores nothing.
"""

from __future__ import annotations

import json
import logging
import re

import pytest
from sqlalchemy import func, select

from tests._raters import honest_score

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from db import (  # noqa: E402
    InvalidStudy,
    check_crowd,
    close_study,
    crowd_participant,
    get_rater,
    next_trial,
    open_database,
    start_rater,
    stimulus_file_methods,
    submit_rating,
)
from db.crowd import completion_url  # noqa: E402
from db.models import Rater, Rating  # noqa: E402

pytestmark = pytest.mark.timeout(120)

PROLIFIC = {"PROLIFIC_PID": "5f1e2d3c4b5a69788796a5b4", "STUDY_ID": "60aa11bb22cc", "SESSION_ID": "sess42"}
TEMPLATE = "https://app.prolific.com/submissions/complete?cc={code}"


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def _text(at: AppTest) -> str:
    parts = []
    for kind in ("title", "markdown", "caption", "info", "warning", "error", "success", "code"):
        parts += [str(e.value) for e in at.get(kind)]
    return "\n".join(parts)


def _with_db(url, fn):
    db = open_database(url)
    try:
        return fn(db)
    finally:
        db.close()


def _raters(url) -> list[tuple]:
    def read(db):
        with db.session() as s:
            return s.execute(select(Rater.token, Rater.participant_id, Rater.crowd_params)).all()
    return _with_db(url, read)


def _n_ratings(url) -> int:
    def read(db):
        with db.session() as s:
            return s.scalar(select(func.count()).select_from(Rating))
    return _with_db(url, read)


# ---------------------------------------------------------------------------------------------- consent text
@pytest.mark.parametrize("mode", ["acr", "pair", "both"])
def test_consent_text_matches_the_study_mode_and_length(app, make_study, db_url, mode):
    make_study(db_url, mode=mode, repeats=1)
    at = _ok(app(db_url))
    text = _text(at)
    scores, pairs = "score from **1 (bad)** to **5 (excellent)**" in text, "side by side" in text
    assert (scores, pairs) == {"acr": (True, False), "pair": (False, True), "both": (True, True)}[mode], text
    if mode == "pair":  # nothing about scores at all
        assert "score" not in text.lower()
    if mode == "acr":
        assert "A or B" not in text and "pair" not in text.lower()
    # "N images to score" / "M pairs to compare" is the list the next rater really gets.
    at.checkbox(key="consent").check().run()
    at.button(key="start").click().run()
    total = _with_db(db_url, lambda db: get_rater(db, at.query_params["r"]).total)
    counts = [int(n) for n in re.findall(r"\*\*(\d+) (?:images? to score|pairs? to compare)", text)]
    counts += [int(n) for n in re.findall(r"and (\d+) pairs? to compare", text)]
    assert sum(counts) == total, (counts, total, text)
    assert re.search(r"about \*\*\d+ minutes\*\*", text)


def test_closed_study_says_so_before_consent(app, make_study, db_url):
    study = make_study(db_url, name="internal-x4-run7")
    _with_db(db_url, lambda db: close_study(db, study.name))
    at = _ok(app(db_url, study=study.name))
    assert "This study has finished" in at.info[0].value
    assert not at.checkbox and not at.button and not at.error and study.name not in _text(at)


def test_study_filling_up_during_the_consent_is_told_plainly(app, make_study, db_url):
    """Full between reading and Start: a plain warning, no red error, no internal name, no rater."""
    study = make_study(db_url, name="internal-x4-run7", votes_per_stimulus=1, repeats=0)
    at = _ok(app(db_url))
    at.checkbox(key="consent").check().run()

    def fill(db):  # the anchors as expected: a screened-out rater's votes would be topped up (issue 20)
        token = start_rater(db, study.name)
        method_of = stimulus_file_methods(db, study.name)
        while (t := next_trial(db, token)) is not None:
            score = honest_score(method_of, t)
            submit_rating(db, token, t.trial_id, score=score, response_ms=3000)

    _with_db(db_url, fill)
    at.button(key="start").click().run()
    _ok(at)
    assert "filled up while you were reading" in at.warning[0].value
    assert not at.error and study.name not in _text(at) and "r" not in at.query_params
    assert len(_raters(db_url)) == 1


# ---------------------------------------------------------------------------------------------- crowd
def test_crowd_study_needs_the_participant_id(app, make_study, db_url):
    make_study(db_url, crowd="prolific", qualification=False)
    at = _ok(app(db_url))
    assert "run on Prolific" in at.info[0].value and not at.checkbox
    at = _ok(app(db_url, PROLIFIC_PID="<script>"))
    assert "malformed" in at.info[0].value and not at.checkbox
    with pytest.raises(Exception, match="Prolific only"):
        _with_db(db_url, lambda db: start_rater(db, "tiny"))
    assert _raters(db_url) == []


def test_mturk_preview_cannot_start(app, make_study, db_url):
    make_study(db_url, crowd="mturk", qualification=False)
    at = _ok(app(db_url, assignmentId="ASSIGNMENT_ID_NOT_AVAILABLE", hitId="3XYZ"))
    assert "accept the HIT" in at.info[0].value and not at.checkbox


def test_same_participant_resumes_same_rater(app, make_study, db_url):
    make_study(db_url, crowd="prolific", qualification=False, completion_url=TEMPLATE)
    at = _ok(app(db_url, **PROLIFIC))
    assert "Prolific ID" in _text(at)  # the consent says what is kept from the link
    at.checkbox(key="consent").check().run()
    at.button(key="start").click().run()
    token = _ok(at).query_params["r"]
    [(tok, pid, params)] = _raters(db_url)
    assert (tok, pid) == (token, PROLIFIC["PROLIFIC_PID"])
    assert json.loads(params) == {"STUDY_ID": "60aa11bb22cc", "SESSION_ID": "sess42"}
    # A second visit (a new browser session, no ?r=, no cookie) with the same ID: the same rater continues.
    again = _ok(app(db_url, **PROLIFIC))
    assert again.query_params["r"] == token and again.title[0].value == "Calibration"
    assert len(_raters(db_url)) == 1
    other = _ok(app(db_url, **{**PROLIFIC, "PROLIFIC_PID": "another0participant"}))
    assert "r" not in other.query_params and other.checkbox(key="consent") is not None


def test_completion_redirect_carries_the_code_to_the_rater_only(app, make_study, db_url, caplog):
    study = make_study(db_url, crowd="prolific", qualification=False,
                       completion_url=TEMPLATE + "&s={SESSION_ID}")
    participant = crowd_participant("prolific", PROLIFIC)

    def finish(db):
        token = start_rater(db, study.name, participant=participant)
        while (t := next_trial(db, token)) is not None:
            submit_rating(db, token, t.trial_id, score=3)
        return token, get_rater(db, token).completion_code

    token, code = _with_db(db_url, finish)
    caplog.set_level(logging.DEBUG)
    at = _ok(app(db_url, **PROLIFIC))  # the participant comes back: thank-you page, redirect with their code
    assert at.query_params["r"] == token and at.title[0].value == "Thank you!"
    [button] = at.get("link_button")
    assert button.proto.url == f"https://app.prolific.com/submissions/complete?cc={code}&s=sess42"
    assert code not in caplog.text and token not in caplog.text
    # The study's template never reaches a page of someone who has not finished.
    new = _ok(app(db_url, **{**PROLIFIC, "PROLIFIC_PID": "another0participant"}))
    assert "prolific.com" not in _text(new) and not new.get("link_button")


def test_crowd_options_are_checked():
    check_crowd("prolific", TEMPLATE)
    check_crowd("mturk", "https://example.org/done?c={code}&w={workerId}")
    for crowd, url in [("prolific", "ftp://x/{code}"), ("prolific", "https://x/?cc={token}"),
                       ("prolific", "https://x/?cc={code"), ("mturk", "https://x/?p={PROLIFIC_PID}"),
                       ("facebook", TEMPLATE)]:
        with pytest.raises(InvalidStudy):
            check_crowd(crowd, url)
    # Values are URL-quoted; the participant parameter comes from the rater's own column.
    assert completion_url("https://x/?c={code}&w={workerId}&a={assignmentId}", "MOS-1", "W1",
                          '{"assignmentId": "a&b=c"}', "mturk") == "https://x/?c=MOS-1&w=W1&a=a%26b%3Dc"


def test_prepare_study_refuses_a_bad_completion_url_before_any_work(tmp_path, capsys):
    from pipelines import prepare_study

    rc = prepare_study.main(["--name", "c", "--hr-dir", str(tmp_path / "none"), "--db", f"sqlite:///{tmp_path}/m.db",
                             "--crowd", "prolific", "--completion-url", "https://x/?cc={token}", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "unknown placeholder" in err and "token" in err
    assert not (tmp_path / "stimuli").exists()


# ---------------------------------------------------------------------------------------------- qualification
def _screen(at: AppTest, w, h, dpr, sw, sh) -> AppTest:
    at.session_state["screen_probe"] = {"screen": {"w": w, "h": h, "dpr": dpr, "sw": sw, "sh": sh}}
    return _ok(at.run())


def _to_screen_check(app, url, **query) -> AppTest:
    at = _ok(app(url, **query))
    at.checkbox(key="consent").check().run()
    at.button(key="start").click().run()
    assert _ok(at).title[0].value == "Checking your screen"
    return at


def test_qualification_refuses_a_small_screen_before_any_rater(app, make_study, db_url):
    # Pair study of 48 px images: needs 2 x 48 / dpr + 24 + 96 CSS px wide and 48 / dpr + 200 high.
    make_study(db_url, mode="pair", crowd="prolific", qualification=True)
    at = _to_screen_check(app, db_url, **PROLIFIC)
    assert "Measuring" in at.info[0].value  # nothing measured yet: no verdict
    at = _screen(at, 200, 240, 1.0, 215, 247)  # even the whole screen is too small at 1:1
    assert "needs a larger screen" in at.info[0].value and "return this study on Prolific" in at.info[0].value
    assert [b.key for b in at.button] == [] and _raters(db_url) == []
    at = _screen(at, 200, 240, 1.0, 1920, 1040)  # the screen could: enlarge the window (no refusal)
    assert "too small" in at.warning[0].value and not at.info
    at = _screen(at, 216, 248, 1.0, 1920, 1040)  # 48+48+24+96 = 216 wide, 48+200 = 248 high: exactly fits
    assert "can show the images at their true size" in at.success[0].value
    at = _screen(at, 120, 140, 2.0, 120, 140)  # a 2x screen (or 200 % zoom): 24+24+24+96 = 168 CSS px needed
    assert "needs a larger screen" in at.info[0].value
    at = _screen(at, 168, 224, 2.0, 168, 224)
    assert at.success and _raters(db_url) == []


def test_practice_gives_feedback_and_stores_nothing(app, make_study, db_url):
    make_study(db_url, mode="both", trials_per_rater=6, repeats=1, crowd="prolific", completion_url=TEMPLATE)
    at = _screen(_to_screen_check(app, db_url, **PROLIFIC), 1280, 900, 1.0, 1280, 900)
    at.button(key="screen_ok").click().run()
    assert [h.value for h in at.subheader] == ["Example 1: this is a 1 — “bad”", "Example 2: this is a 5 — “excellent”"]
    at.button(key="calibrated_btn").click().run()
    seen = []
    for i in range(3):  # both: two ACR practice trials (worst, best in random order) and one pair
        _ok(at)
        assert at.title[0].value == f"Practice {i + 1} of 3"
        radio = at.radio(key=f"practice_{i}")
        if radio.options[0].startswith("1"):
            at.radio(key=f"practice_{i}").set_value(3).run()  # "Fair" is wrong for both anchors
            at.button(key=f"practice_check_{i}").click().run()
            assert at.warning[0].value.startswith("Not quite.")
            low = "lowest-quality" in at.warning[0].value
            at.radio(key=f"practice_{i}").set_value(1 if low else 5).run()
            at.button(key=f"practice_check_{i}").click().run()
            assert at.success[0].value.startswith("Well judged.")
            seen.append("low" if low else "high")
        else:
            at.radio(key=f"practice_{i}").set_value("none").run()
            at.button(key=f"practice_check_{i}").click().run()
            assert at.warning[0].value.startswith("Not quite.")
            better = "A" if "A (left)" in at.warning[0].value else "B"
            at.radio(key=f"practice_{i}").set_value(better).run()
            at.button(key=f"practice_check_{i}").click().run()
            assert at.success[0].value.startswith("Well judged.")
            seen.append("pair")
        at.button(key=f"practice_next_{i}").click().run()
    assert sorted(seen) == ["high", "low", "pair"]
    assert _raters(db_url) == [] and _n_ratings(db_url) == 0  # nothing stored before Start
    at.button(key="start_study").click().run()
    _ok(at)
    [(token, pid, _)] = _raters(db_url)
    assert at.query_params["r"] == token and pid == PROLIFIC["PROLIFIC_PID"]
    assert at.radio and at.title.len == 0  # straight to the first trial: the examples were shown already
    assert _n_ratings(db_url) == 0


# ---------------------------------------------------------------------------------------------- storage
def test_concurrent_starts_of_one_participant_make_one_rater(make_study, db_url):
    from concurrent.futures import ThreadPoolExecutor

    study = make_study(db_url, crowd="prolific")
    participant = crowd_participant("prolific", PROLIFIC)
    db = open_database(db_url)
    try:
        with ThreadPoolExecutor(4) as ex:
            tokens = list(ex.map(lambda _: start_rater(db, study.name, participant=participant), range(4)))
    finally:
        db.close()
    assert len(set(tokens)) == 1 and [r[0] for r in _raters(db_url)] == tokens[:1]


def test_migration_keeps_existing_studies_and_raters(make_study, sqlite_url):
    """A database before 0005_crowd with a study and a rater, upgraded: both unchanged, volunteers with no
    crowd settings."""
    from alembic import command
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, inspect, text

    from db.engine import alembic_config, head_revision, upgrade

    before = ScriptDirectory.from_config(alembic_config()).get_revision("0005_crowd").down_revision

    study = make_study(sqlite_url, name="old")
    token = _with_db(sqlite_url, lambda db: start_rater(db, study.name))
    engine = create_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), before)
            assert "participant_id" not in {c["name"] for c in inspect(conn).get_columns("rater")}
        upgrade(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
    finally:
        engine.dispose()

    def read(db):
        from db import get_study

        return get_study(db, "old"), get_rater(db, token)

    info, rater = _with_db(sqlite_url, read)
    assert (info.crowd, info.qualification) == (None, False) and rater.total > 0 and not rater.completed
    assert _raters(sqlite_url) == [(token, None, None)]
