"""Admin page friction (issue 23) through AppTest: the rater-QC table shows its flags and speed columns
first at sensible widths, "N ratings" is explained against the Dashboard's votes (repeats), and a method
has the same colour in every Dashboard chart."""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("streamlit")

from tests.test_dashboard import _ok, open_admin  # noqa: E402
from tests.test_report_db import fill_study  # noqa: E402

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def filled(make_study, sqlite_url):
    st = make_study(sqlite_url, mode="both", votes_per_stimulus=6, repeats=2)
    db = st.open()
    try:
        fill_study(db, st.name, n_raters=4, random_raters=1)
    finally:
        db.close()
    return st


def _color_scales(spec: dict) -> list[dict]:
    """Every colour encoding on the field ``method`` in a Vega-Lite spec (layers included)."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            enc = node.get("encoding", {})
            c = enc.get("color") if isinstance(enc, dict) else None
            if isinstance(c, dict) and c.get("field") == "method":
                found.append(c.get("scale", {}))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)
    return found


def test_qc_table_counts_and_one_colour_per_method(filled, monkeypatch):
    at = open_admin(filled.url, monkeypatch)
    qc = next(d for d in at.dataframe if "flags" in d.value.columns)
    cols = list(qc.value.columns)
    # the verdict, flags and speed lead (after the rater's name: a pseudonym once tokens leave the page)
    assert cols.index("rejected") <= 2 and cols.index("flags") <= 3 and cols.index("median_response_ms") <= 7, cols
    assert "token" not in cols[:8], cols
    config = json.loads(qc.proto.columns)
    assert config["flags"]["width"] == "medium" and config["median_response_ms"]["width"] == "small"
    assert all(isinstance(v, str) for v in qc.value["flags"])
    caption = next(c.value for c in at.caption if " repeats: a repeat asks" in c.value)
    n, votes, repeats = map(int, re.match(r"(\d+) ratings = (\d+) votes \+ (\d+) repeats", caption).groups())
    assert repeats > 0 and n == votes + repeats

    at.sidebar.radio(key="page").set_value("Dashboard").run()
    _ok(at)
    dash = next(c.value for c in at.caption if "ACR votes" in c.value)
    acr, pair = map(int, re.match(r"(\d+) ACR votes, (\d+) pair votes", dash).groups())
    assert acr + pair == votes  # the same count, now explained on the Study page
    scales = [s for ch in at.get("vega_lite_chart") for s in _color_scales(json.loads(ch.proto.spec))]
    assert len(scales) >= 4  # MOS, the PSNR/SSIM scatters, Bradley-Terry
    assert all(s == scales[0] for s in scales) and len(scales[0]["domain"]) >= 3, scales
