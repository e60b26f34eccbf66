"""One method-MOS interval (issue 23 friction: the admin page showed bicubic 2.25-3.50, the report
2.33-3.50): the admin Study page's table and chart, the Dashboard and ``pipelines.report`` all call
srkeras.mos.scores.method_interval with the same replicates and seed, and give the same numbers."""

from __future__ import annotations

import pandas as pd
import pytest

from db import mos_table
from pipelines import report as cli
from srkeras.mos import scores
from tests.test_report_db import fill_study


def _chart_frames(at) -> list[pd.DataFrame]:
    import pyarrow as pa

    out = []
    for c in at.get("vega_lite_chart"):
        for ds in c.proto.datasets:
            out.append(pa.ipc.open_stream(ds.data.data).read_pandas())
    return out


def test_admin_dashboard_and_report_give_one_interval(make_study, db_url, tmp_path, monkeypatch):
    pytest.importorskip("streamlit")
    from mos_app.dashboard import compute, load_frames
    from tests.test_dashboard import open_admin

    st = make_study(db_url, votes_per_stimulus=10)
    db = st.open()
    try:
        fill_study(db, st.name, n_raters=4)
        admin = mos_table(db, st.name).set_index("method")[["boot_ci95_low", "boot_ci95_high"]]
        acr, pairs, metrics, completed = load_frames(db, st.name)
    finally:
        db.close()
    assert cli.main(["--db", st.url, "--study", st.name, "--out", str(tmp_path / "r"), "--quiet"]) == 0
    rep = pd.read_csv(tmp_path / "r" / "methods.csv").set_index("method")[["ci95_low", "ci95_high"]]
    dash = compute.__wrapped__(acr, pairs, metrics, completed, "t")[0].methods.set_index("method")
    one = scores.method_interval(acr).set_index("method")
    for m in admin.index:
        ref = (one.loc[m, "ci95_low"], one.loc[m, "ci95_high"])
        assert ref[0] < ref[1]
        assert tuple(admin.loc[m]) == pytest.approx(ref, abs=1e-12)
        assert tuple(rep.loc[m]) == pytest.approx(ref, abs=1e-12)
        assert (dash.loc[m, "ci95_low"], dash.loc[m, "ci95_high"]) == pytest.approx(ref, abs=1e-12)
    at = open_admin(st.url, monkeypatch)  # the Study page's chart draws that interval too
    drawn = [f for f in _chart_frames(at) if {"lo", "hi", "method"} <= set(f.columns)]
    assert drawn
    d = drawn[0].drop_duplicates("method").set_index("method")
    for m in admin.index:
        assert (d.loc[m, "lo"], d.loc[m, "hi"]) == pytest.approx(tuple(admin.loc[m]), abs=1e-9)
