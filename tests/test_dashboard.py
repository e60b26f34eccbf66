"""The admin dashboard page (mos_app/dashboard.py in mos_app/admin.py) through Streamlit's AppTest, on a
study filled through the data layer: every chart and table renders without an exception, filters work,
the report files are offered for download."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from tests.test_report_db import fill_study  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ADMIN = str(ROOT / "mos_app" / "admin.py")

pytestmark = pytest.mark.timeout(180)


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> list:
    return at.get("vega_lite_chart")


def open_dashboard(url: str, monkeypatch) -> AppTest:
    monkeypatch.setenv("MOS_DB_URL", url)
    monkeypatch.delenv("MOS_ADMIN_PASSWORD", raising=False)
    at = AppTest.from_file(ADMIN, default_timeout=120)
    at.secrets["admin_password"] = "s3cret"
    _ok(at.run())
    at.text_input(key="admin_pw").input("s3cret")
    at.button[0].click().run()
    _ok(at)
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
