"""The admin dashboard page (mos_app/dashboard.py in mos_app/admin.py) through Streamlit's AppTest, on a
study filled through the data layer: every chart and table renders without an exception, filters work,
the report files are offered for download."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from db import next_trial, start_rater, submit_rating  # noqa: E402
from tests.test_report_db import fill_study, trial_methods  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ADMIN = str(ROOT / "mos_app" / "admin.py")

pytestmark = pytest.mark.timeout(180)


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> list:
    return at.get("vega_lite_chart")


def open_admin(url: str, monkeypatch) -> AppTest:
    """The admin app logged in, on its Study page."""
    monkeypatch.setenv("MOS_DB_URL", url)
    monkeypatch.delenv("MOS_ADMIN_PASSWORD", raising=False)
    at = AppTest.from_file(ADMIN, default_timeout=120)
    at.secrets["admin_password"] = "s3cret"
    _ok(at.run())
    at.text_input(key="admin_pw").input("s3cret")
    at.button[0].click().run()
    return _ok(at)


def open_dashboard(url: str, monkeypatch) -> AppTest:
    at = open_admin(url, monkeypatch)
    at.sidebar.radio(key="page").set_value("Dashboard").run()
    return _ok(at)


@pytest.fixture
def both_study(make_study, db_url):
    st = make_study(db_url, mode="both", votes_per_stimulus=10, repeats=1)
    db = st.open()
    try:
        fill_study(db, st.name, n_raters=6, random_raters=1)
    finally:
        db.close()
    return st


def test_dashboard_renders_every_chart(both_study, monkeypatch):
    at = open_dashboard(both_study.url, monkeypatch)
    specs = [json.loads(c.proto.spec) for c in charts(at)]
    titles = [json.dumps(s.get("title", "")) for s in specs]
    # MOS + CI, MOS vs PSNR, MOS vs SSIM, histogram, significance matrix, pair heatmap, Bradley-Terry
    assert len(specs) == 7, titles
    assert any("MOS vs PSNR" in t and "Pearson" in t for t in titles)
    assert any("MOS vs SSIM" in t and "Kendall" in t for t in titles)
    assert any("Significant differences" in t for t in titles) and any("share of wins" in t for t in titles)
    assert all(len(c.proto.datasets) for c in charts(at))  # data travels with every chart
    raters = next(d.value for d in at.dataframe if "reasons" in d.value.columns)
    assert len(raters) == 6 and {"rejected", "reasons", "mle_bias"} <= set(raters.columns)
    methods = at.dataframe[0].value
    assert set(methods["method"]) == {"nearest", "bicubic", "hr"} and {"mos", "ci95_low", "psnr"} <= set(methods)
    labels = {b.label for b in at.get("download_button")}
    assert {"summary.json", "stimuli.csv", "raters.csv", "methods.csv", "pairs.csv", "report.html"} <= labels

    # Filters: drop a method; the charts follow, nothing breaks.
    at.multiselect(key="dash_methods").unselect("bicubic").run()
    _ok(at)
    assert set(at.dataframe[0].value["method"]) == {"nearest", "hr"}
    assert len(charts(at)) >= 5
    at.multiselect(key="dash_datasets").set_value([]).run()
    assert "No answers" in _ok(at).warning[0].value


def test_dashboard_pair_only_and_empty(make_study, db_url, monkeypatch):
    st = make_study(db_url, mode="pair", votes_per_stimulus=10, repeats=0)
    at = open_dashboard(st.url, monkeypatch)
    assert "No answers yet" in at.info[0].value and not charts(at)
    db = st.open()
    try:
        fill_study(db, st.name, n_raters=3)
    finally:
        db.close()
    at = open_dashboard(st.url, monkeypatch)
    titles = [json.dumps(json.loads(c.proto.spec).get("title", "")) for c in charts(at)]
    assert len(titles) == 2 and any("Bradley-Terry" in t for t in titles), titles


def _answer_all(db, token: str, score, response_ms: int) -> None:
    shown = trial_methods(db, token)
    while (t := next_trial(db, token)) is not None:
        submit_rating(db, token, t.trial_id, score=score(shown[t.trial_id][0]), response_ms=response_ms)


def test_study_page_and_dashboard_screen_the_same_raters(make_study, db_url, monkeypatch):
    """Acceptance (issue 19): a straight-liner, a random clicker and a too-fast rater among attentive raters
    are screened out on the Study page's rater QC and on the Dashboard alike (one screening,
    srkeras.mos.screening), and the attentive raters are kept on both."""
    st = make_study(db_url, n_images=7, votes_per_stimulus=10, repeats=2)
    ideal = {"nearest": 1, "bicubic": 3, "hr": 5}
    rng = random.Random(3)
    db = st.open()
    try:
        good = [start_rater(db, st.name, seed=k) for k in range(4)]
        for tok in good:  # within one point of the ideal: anchors right, repeats agree, scores vary
            _answer_all(db, tok, lambda m: min(5, ideal[m] + rng.choice((0, 1))), 3000)
        straight, clicker, fast = (start_rater(db, st.name, seed=k) for k in (10, 11, 12))
        _answer_all(db, straight, lambda m: 3, 3000)
        _answer_all(db, clicker, lambda m: rng.randint(1, 5), 3000)
        _answer_all(db, fast, ideal.get, 600)
    finally:
        db.close()

    at = open_admin(st.url, monkeypatch)
    qc = next(d.value for d in at.dataframe if "flags" in d.value.columns)
    on_study_page = set(qc.loc[qc["rejected"], "rater"])
    at.sidebar.radio(key="page").set_value("Dashboard").run()
    raters = next(d.value for d in _ok(at).dataframe if "mle_bias" in d.value.columns)
    on_dashboard = set(raters.loc[raters["rejected"].astype(bool), "rater"])
    # raters by pseudonym, in creation order (issue 20: tokens never leave the database)
    good, (straight, clicker, fast) = [f"rater-{k:02d}" for k in range(1, 5)], ("rater-05", "rater-06", "rater-07")
    assert on_study_page == on_dashboard == {straight, clicker, fast}
    assert set(raters["rater"]) == set(qc["rater"]) == {*good, straight, clicker, fast}
    reasons = dict(zip(raters["rater"], raters["reasons"]))
    assert "straight_lining" in reasons[straight] and "too_fast" in reasons[fast]
    assert "too_fast" in "".join(qc.loc[qc["rater"] == fast, "reasons"])


def test_dashboard_with_every_rater_screened_out_says_so(make_study, db_url, monkeypatch):
    """Issue 24 item 9: no rater finished (all screened out as incomplete): a note, not a ZeroDivisionError."""
    st = make_study(db_url, n_images=7, votes_per_stimulus=10)
    db = st.open()
    try:
        for k in range(3):
            tok = start_rater(db, st.name, seed=k)
            for _ in range(4):
                t = next_trial(db, tok)
                submit_rating(db, tok, t.trial_id, score=1 + (t.trial_id + k) % 5, response_ms=3000)
    finally:
        db.close()
    at = open_dashboard(st.url, monkeypatch)
    assert any("Every rater was rejected" in w.value for w in at.warning)
    assert len(charts(at)) >= 3 and not at.error


def test_admin_page_errors_show_a_short_line_not_sql(both_study, monkeypatch, caplog):
    """Issue 24 item 9: a server error on an admin page shows one line; the SQL goes to the server log only."""
    import sqlalchemy.exc

    import db
    import mos_app.dashboard

    def broken(*_a, **_k):
        raise sqlalchemy.exc.OperationalError("SELECT secret_column FROM ratings", {}, Exception("/srv/mos.db"))

    at = open_admin(both_study.url, monkeypatch)
    monkeypatch.setattr(db, "study_status", broken)
    monkeypatch.setattr(mos_app.dashboard, "rating_frames", broken)
    for page in ("Study", "Dashboard"):
        at.sidebar.radio(key="page").set_value(page).run()
        _ok(at)
        shown = " ".join(e.value for e in at.error) + " ".join(m.value for m in at.markdown)
        assert "error on the server" in shown and "SELECT" not in shown and "/srv" not in shown
        assert at.sidebar.radio(key="page").value == page  # the navigation stays usable
    assert "SELECT secret_column" in caplog.text
