"""AppTest tests of the MOS rater app (mos_app/app.py) and its admin page (mos_app/admin.py).

Each step of the rater flow is driven through Streamlit's AppTest against a real (tiny) study built with
``pipelines.prepare_study`` (fixture ``make_study`` of conftest.py), on SQLite and, when
SRKERAS_TEST_PG_URL is set, PostgreSQL. The database is the judge: every check of a submission reads
what was stored.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from tests._raters import honest_score

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from db import (
    calibration_examples,
    close_study,
    get_rater,
    get_study,
    next_trial,
    open_database,
    start_rater,
    stimulus_file_methods,
    submit_rating,
)  # noqa: E402
from db.models import Method, Rating  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "mos_app" / "app.py")
ADMIN = str(ROOT / "mos_app" / "admin.py")
METHOD_NAMES = ("nearest", "bicubic")  # "hr" is checked as a whole word (it is a substring of many words)
DATA_URI = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)")

pytestmark = pytest.mark.timeout(120)


# ---------------------------------------------------------------------------------------------- helpers
def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def page_text(at: AppTest) -> str:
    """Everything the page shows or embeds (HTML included), for the blindness checks."""
    parts = []
    for kind in ("title", "subheader", "markdown", "caption", "info", "warning", "error", "success", "code"):
        parts += [str(e.value) for e in at.get(kind)]
    parts += [str(e.value) for e in at.get("html")]
    for w in list(at.radio) + list(at.button) + list(at.checkbox) + list(at.selectbox):
        parts.append(str(getattr(w, "label", "")))
        parts += [str(o) for o in getattr(w, "options", [])]
    return "\n".join(parts)


def assert_blind(at: AppTest) -> None:
    text = page_text(at)
    stripped = DATA_URI.sub("data:", text)
    low = stripped.lower()
    for m in METHOD_NAMES:
        assert m not in low, f"method name {m!r} leaked into the page"
    assert not re.search(r"\bhr\b", low), "the word 'HR' leaked into the page"
    assert ".png" not in low and "/tmp" not in low and "stimuli" not in low, "a file path leaked"
    for b64 in DATA_URI.findall(text):
        raw = base64.b64decode(b64)
        assert not any(m.encode() in raw.lower() for m in METHOD_NAMES)
        with Image.open(io.BytesIO(raw)) as im:
            assert {k for k in im.info if k not in ("dpi",)} == set(), im.info  # no text/ICC/EXIF chunks


def images(at: AppTest) -> list[tuple[np.ndarray, str, float]]:
    """(pixels, alt text, CSS width) of every <img> on the page, in order."""
    out = []
    for h in at.get("html"):
        pattern = r'<style>(.*?)</style><img class="(mos-px-\d+x\d+)" src="data:image/png;base64,([^"]+)" alt="([^"]*)"'
        for m in re.finditer(pattern, h.value):
            # The server's rule is the one outside the per-ratio @media rules.
            css_w = re.search(r"(?:^|\}\})\." + m.group(2) + r"\{width:([\d.]+)px", m.group(1)).group(1)
            with Image.open(io.BytesIO(base64.b64decode(m.group(3)))) as im:
                out.append((np.asarray(im.convert("RGB")), m.group(4), float(css_w)))
    return out


def pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def submit_button(at: AppTest):
    return next(b for b in at.button if str(b.key).startswith("FormSubmitter:form_"))


def trial_id(at: AppTest) -> int:
    return int(at.radio[0].key.removeprefix("answer_"))


def ratings(url: str) -> dict[int, tuple]:
    """{trial_id: (score, choice, response_ms, viewport_w, dpr)} of every stored rating."""
    db = open_database(url)
    try:
        with db.session() as s:
            return {r.trial_id: (r.score, r.choice, r.response_ms, r.viewport_w, r.device_pixel_ratio)
                    for r in s.scalars(select(Rating))}
    finally:
        db.close()


def start(app, url: str) -> tuple[AppTest, str]:
    """Consent -> start; returns the AppTest on the calibration page and the rater token."""
    at = _ok(app(url))
    at.checkbox(key="consent").check().run()
    at.button(key="start").click().run()
    return _ok(at), at.query_params["r"]


def past_calibration(app, url: str) -> tuple[AppTest, str]:
    at, token = start(app, url)
    at.button(key="calibrated_btn").click().run()
    return _ok(at), token


def answer(at: AppTest, value) -> AppTest:
    at.radio[0].set_value(value)
    submit_button(at).click().run()
    return _ok(at)


def answer_any(at: AppTest) -> AppTest:
    opts = at.radio[0].options
    return answer(at, 4 if opts[0].startswith("1") else "A")


# ---------------------------------------------------------------------------------------------- rater flow
def test_consent_gate_then_rater_created(app, make_study, db_url):
    study = make_study(db_url)
    at = _ok(app(db_url))
    assert at.title[0].value == "Image quality study"
    assert at.button(key="start").disabled, "Start must wait for consent"
    assert "r" not in at.query_params
    assert_blind(at)
    at.checkbox(key="consent").check().run()
    assert not at.button(key="start").disabled
    at.selectbox(key="display").set_value("Laptop screen").run()
    at.button(key="start").click().run()
    _ok(at)
    token = at.query_params["r"]
    db = open_database(db_url)
    try:
        info = get_rater(db, token)
    finally:
        db.close()
    assert info.study_name == study.name and info.done == 0 and info.total > 0
    assert info.display == "Laptop screen"
    assert at.title[0].value == "Calibration"


def test_calibration_shows_anchor_examples_blind(app, make_study, db_url):
    study = make_study(db_url)
    at, _ = start(app, db_url)
    heads = [h.value for h in at.subheader]
    assert heads == ["Example 1: this is a 1 — “bad”", "Example 2: this is a 5 — “excellent”"]
    db = open_database(db_url)
    try:
        examples = calibration_examples(db, study.name)
    finally:
        db.close()
    shown = images(at)
    assert len(shown) == 2
    for (pix, alt, css_w), ex in zip(shown, examples):
        np.testing.assert_array_equal(pix, pixels(ex.image_path))  # exact pixels, re-encoded losslessly
        assert css_w == pix.shape[1], "unknown DPR: 1 CSS px per image px"
        assert alt == "image"
    assert not np.array_equal(shown[0][0], shown[1][0])
    assert_blind(at)
    assert ratings(db_url) == {}, "calibration stores nothing"


def test_acr_trial_submission(app, make_study, db_url):
    make_study(db_url, mode="acr")
    at, token = past_calibration(app, db_url)
    first = trial_id(at)
    assert at.radio[0].options == ["1 – Bad", "2 – Poor", "3 – Fair", "4 – Good", "5 – Excellent"]
    assert at.radio[0].value is None, "no pre-selected score (it would bias answers)"
    progress = at.get("progress")[0]
    assert "Image 1 of" in progress.proto.text and progress.value == 0
    assert len(images(at)) == 1
    assert_blind(at)

    submit_button(at).click().run()  # no answer chosen
    assert "Please choose" in at.warning[0].value
    assert ratings(db_url) == {}, "nothing stored without an answer"
    assert trial_id(at) == first

    at = answer(at, 4)
    stored = ratings(db_url)
    assert list(stored) == [first] and stored[first][:2] == (4, None)
    assert stored[first][2] is not None and stored[first][2] >= 0  # response time measured server side
    assert trial_id(at) != first and "Image 2 of" in at.get("progress")[0].proto.text
    at.run()  # a refresh-like rerun of the same session stores nothing new
    assert len(ratings(db_url)) == 1


def test_pair_trial_submission(app, make_study, db_url):
    study = make_study(db_url, mode="pair")
    at, token = past_calibration(app, db_url)
    first = trial_id(at)
    assert at.radio[0].options == ["A (left)", "B (right)", "No preference"]
    db = open_database(db_url)
    try:
        view = next_trial(db, token)
    finally:
        db.close()
    assert view.trial_id == first and view.mode == "pair"
    (left, alt_l, _), (right, alt_r, _) = images(at)
    assert (alt_l, alt_r) == ("image A", "image B")
    np.testing.assert_array_equal(left, pixels(view.left_path))  # A is the left image the DB recorded
    np.testing.assert_array_equal(right, pixels(view.right_path))
    assert_blind(at)
    at = answer(at, "B")
    assert ratings(db_url)[first][:2] == (None, "B")
    assert trial_id(at) != first
    assert study.info.mode == "pair"


def test_page_reads_its_state_once_per_answer(app, make_study, db_url, monkeypatch):
    """Per Submit: the answer (a write), one read of the rater's state (``rater_state``), the next trial's
    first display (a write); the answer that completes the rater shows the thank-you page from its
    SubmitResult without reading its state (its transactions are the answer, the recording of the QC flags and
    the one look-up of the study's completion redirect)."""
    import db

    make_study(db_url, mode="both", trials_per_rater=6, repeats=1)
    at, token = past_calibration(app, db_url)
    calls = []
    for name in ("rater_state", "get_rater", "get_study", "next_trial"):  # what the page may read
        real = getattr(db, name)
        monkeypatch.setattr(db, name, lambda *a, _real=real, _name=name, **kw: (calls.append(_name), _real(*a, **kw))[1])
    real_run = db.Database.run
    monkeypatch.setattr(db.Database, "run", lambda self, work, write=False, **kw: (
        calls.append("write" if write else "read"), real_run(self, work, write=write, **kw))[1])
    per_answer = []
    while at.radio:
        calls.clear()
        at = answer_any(at)
        per_answer.append(list(calls))
    assert at.title[0].value == "Thank you!" and at.code[0].value
    assert per_answer[:-1] == [["write", "rater_state", "read", "write"]] * (len(per_answer) - 1), per_answer
    # answer, QC flags screened and recorded, completion redirect looked up
    assert per_answer[-1] == ["write", "read", "write", "read"], per_answer


def test_break_prompt_every_n_trials(app, make_study, db_url):
    make_study(db_url, break_every=2)
    at, token = past_calibration(app, db_url)
    at = answer_any(answer_any(at))
    assert at.title[0].value == "Time for a short break"
    assert not at.radio, "no trial during the break"
    assert "You have rated **2 of" in at.markdown[0].value
    at.button(key="break_2").click().run()
    _ok(at)
    assert "Image 3 of" in at.get("progress")[0].proto.text
    assert len(ratings(db_url)) == 2


def test_thank_you_with_completion_code(app, make_study, db_url):
    make_study(db_url, mode="both", trials_per_rater=6, repeats=1)
    at, token = past_calibration(app, db_url)
    n = 0
    while at.radio:
        at = answer_any(at)
        n += 1
        assert n <= 20
    assert at.title[0].value == "Thank you!"
    db = open_database(db_url)
    try:
        info = get_rater(db, token)
    finally:
        db.close()
    assert info.completed and info.done == info.total == n == len(ratings(db_url))
    assert at.code[0].value == info.completion_code and info.completion_code
    # A return visit after completion shows the code again and nothing else.
    again = _ok(AppTest.from_file(APP, default_timeout=60))
    again.query_params["r"] = token
    again.run()
    assert again.title[0].value == "Thank you!" and again.code[0].value == info.completion_code


def test_resume_from_token_in_url(app, make_study, db_url):
    study = make_study(db_url)
    db = open_database(db_url)
    try:
        token = start_rater(db, study.name)
        answered = []
        for score in (2, 3, 4):
            t = next_trial(db, token)
            submit_rating(db, token, t.trial_id, score=score)
            answered.append(t.trial_id)
        expected = next_trial(db, token)
    finally:
        db.close()
    at = _ok(app(db_url, r=token))
    assert at.title.len == 0 or at.title[0].value not in ("Image quality study", "Calibration")
    assert trial_id(at) == expected.trial_id and expected.position == 3
    assert "Image 4 of" in at.get("progress")[0].proto.text
    at2 = _ok(app(db_url, r=token))  # a refresh (new session) shows the same trial, stores nothing
    assert trial_id(at2) == expected.trial_id
    assert sorted(ratings(db_url)) == sorted(answered)
    answer(at2, 5)
    assert ratings(db_url)[expected.trial_id][0] == 5


def test_forged_token_offers_a_new_start(app, make_study, db_url):
    make_study(db_url)
    at = _ok(app(db_url, r="forged-token-0123456789"))
    assert "does not belong to any rating session" in at.error[0].value
    assert not at.radio and not images(at)
    at.button(key="start_over").click().run()
    _ok(at)
    assert "r" not in at.query_params
    assert at.checkbox(key="consent") is not None and at.button(key="start").disabled


def test_closed_study(app, make_study, db_url):
    study = make_study(db_url)
    at, token = past_calibration(app, db_url)
    answer_any(at)
    db = open_database(db_url)
    try:
        close_study(db, study.name)
    finally:
        db.close()
    at = _ok(app(db_url, r=token))
    assert "closed" in at.info[0].value and not at.radio
    new = _ok(app(db_url))
    assert "No study is open" in new.info[0].value and not new.checkbox
    assert len(ratings(db_url)) == 1


def test_full_study_turns_new_raters_away(app, make_study, db_url):
    """A full study says so in plain words BEFORE the consent (no consent form, no red error, no internal name)."""
    study = make_study(db_url, votes_per_stimulus=1, repeats=0)
    db = open_database(db_url)
    try:
        token = start_rater(db, study.name)  # takes every item once
        method_of = stimulus_file_methods(db, study.name)
        while (t := next_trial(db, token)) is not None:  # answered: the target of 1 vote is reached
            # (the anchors as expected: a screened-out rater's votes would be topped up, issue 20)
            score = honest_score(method_of, t)
            submit_rating(db, token, t.trial_id, score=score, response_ms=3000)
    finally:
        db.close()
    at = _ok(app(db_url))
    assert "This study is full" in at.info[0].value
    assert study.name not in page_text(at) and not at.error
    assert not at.checkbox and not at.button and "r" not in at.query_params


def test_study_chosen_by_query_param(app, make_study, db_url):
    make_study(db_url, name="one")
    make_study(db_url, name="two")
    at = _ok(app(db_url))
    assert "Several studies" in at.error[0].value and not at.checkbox
    at = _ok(app(db_url, study="two"))
    at.checkbox(key="consent").check().run()
    at.button(key="start").click().run()
    db = open_database(db_url)
    try:
        assert get_rater(db, at.query_params["r"]).study_name == "two"
    finally:
        db.close()
    assert "not valid" in _ok(app(db_url, study="nope")).error[0].value


def test_stale_answer_never_applies_to_next_trial(app, make_study, db_url):
    """A second click on Submit (same form) must not store anything for the trial shown next."""
    make_study(db_url)
    at, _ = past_calibration(app, db_url)
    first = trial_id(at)
    at = answer(at, 3)
    second = trial_id(at)
    submit_button(at).click().run()  # the next form, untouched: refused, nothing stored
    assert "Please choose" in at.warning[0].value
    assert list(ratings(db_url)) == [first] and trial_id(at) == second


# ---------------------------------------------------------------------------------------------- admin page
@pytest.fixture
def admin(monkeypatch):
    def factory(url: str, password: str | None = "s3cret", via: str = "secrets") -> AppTest:
        monkeypatch.setenv("MOS_DB_URL", url)
        monkeypatch.delenv("MOS_ADMIN_PASSWORD", raising=False)
        at = AppTest.from_file(ADMIN, default_timeout=60)
        if password is not None:
            if via == "secrets":
                at.secrets["admin_password"] = password
            else:
                monkeypatch.setenv("MOS_ADMIN_PASSWORD", password)
        return at.run()

    return factory


def test_admin_locked_without_password(admin, make_study, db_url):
    make_study(db_url)
    at = _ok(admin(db_url, password=None))
    assert "locked" in at.error[0].value
    assert not at.text_input and not at.dataframe


def test_admin_password_gate_status_and_csv(admin, app, make_study, db_url):
    study = make_study(db_url)
    # Two raters answer some trials through the app.
    for n in (3, 2):
        at, _ = past_calibration(app, db_url)
        for _ in range(n):
            at = answer_any(at)
    at = _ok(admin(db_url, via="env"))
    assert not at.dataframe, "nothing before login"
    at.text_input(key="admin_pw").input("wrong")
    at.button[0].click().run()
    assert "Wrong password" in at.error[0].value and not at.dataframe

    at = _ok(admin(db_url))
    at.text_input(key="admin_pw").input("s3cret")
    at.button[0].click().run()
    _ok(at)
    assert at.selectbox(key="study").value == study.name
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["raters"] == "2" and metrics["ratings"] == "5"
    mos, qc = at.dataframe[0].value, at.dataframe[1].value
    assert set(mos["method"]) == {"nearest", "bicubic", "hr"}
    assert {"mos", "ci95", "psnr", "ssim"} <= set(mos.columns)
    assert int(mos["n"].sum()) == 5
    assert len(qc) == 2
    csv_preview = at.dataframe[2].value
    assert len(csv_preview) == 5 and set(csv_preview["method"]) <= {"nearest", "bicubic", "hr"}
    assert at.get("download_button")[0].label == "Download ratings CSV"
    assert "5 rows" in " ".join(c.value for c in at.caption)
    # Closing the study from the admin page stops the rater app.
    at.checkbox(key="close_sure").check().run()
    at.button(key="close").click().run()
    _ok(at)
    db = open_database(db_url)
    try:
        assert get_study(db, study.name).status == "closed"
        with db.session() as s:
            assert len(list(s.scalars(select(Method)))) == 3
    finally:
        db.close()
    assert "No study is open" in _ok(app(db_url)).info[0].value
    at.button(key="reopen").click().run()
    _ok(at)
    assert _ok(app(db_url)).checkbox(key="consent") is not None, "reopened: raters welcome again"


# ---------------------------------------------------------------------------------------------- components
def test_one_to_one_sizing_and_fit_warning():
    from mos_app.components import PAGE_MARGIN_W, Viewport, fit_warning, img_tag

    tag = img_tag("data:image/png;base64,AAAA", 256, 128, dpr=2.0, alt="image")
    assert "width:128.0000px" in tag and "height:64.0000px" in tag and "max-width:none" in tag
    # Sized 1:1 by the browser itself from the first paint, before the ratio reaches the server.
    early = img_tag("data:image/png;base64,AAAA", 256, 128, dpr=1.0, alt="image", dpr_known=False)
    assert "@media (resolution:2dppx){.mos-px-256x128{width:128.0000px;height:64.0000px}}" in early
    assert early.index(".mos-px-256x128{width:256.0000px") < early.index("@media"), "media rules must win"
    assert tag.rindex(".mos-px-256x128{width:128.0000px") > tag.rindex("@media"), "a reported ratio wins"
    tag = img_tag("data:image/png;base64,AAAA", 300, 300, dpr=1.25, alt="image A", caption="A")
    assert "width:240.0000px" in tag and 'alt="image A"' in tag
    assert fit_warning([512], 512, Viewport()) is None, "no warning before the browser reported its window"
    assert fit_warning([512], 512, Viewport(512 + PAGE_MARGIN_W, 900, 1.0)) is None
    msg = fit_warning([512, 512], 512, Viewport(800, 900, 1.0))
    assert msg and "too narrow" in msg and "too short" not in msg
    assert fit_warning([512, 512], 512, Viewport(800, 900, 2.0)) is None  # 256 CSS px each on a 2x screen
    assert "too short" in fit_warning([100], 2000, Viewport(1200, 800, 1.0))


def test_image_data_uri_strips_metadata(tmp_path):
    from PIL import PngImagePlugin

    from mos_app.components import image_data_uri

    rgb = (np.arange(20 * 30 * 3) % 251).astype(np.uint8).reshape(20, 30, 3)
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "bicubic upsampler")
    info.add_text("method", "nearest")
    path = tmp_path / "bicubic_leak.png"
    Image.fromarray(rgb).save(path, pnginfo=info, icc_profile=b"fake-icc-bicubic")
    assert b"bicubic" in path.read_bytes()
    uri, w, h = image_data_uri(str(path))
    assert (w, h) == (30, 20) and "bicubic" not in uri and "leak" not in uri
    raw = base64.b64decode(uri.split(",", 1)[1])
    assert b"bicubic" not in raw and b"nearest" not in raw and b"tEXt" not in raw and b"iCCP" not in raw
    with Image.open(io.BytesIO(raw)) as im:
        np.testing.assert_array_equal(np.asarray(im), rgb)
