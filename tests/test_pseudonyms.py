"""Raters appear under pseudonyms (issue 20, scope 6): a rater token is a credential (it opens the rater's
session, which shows their completion code), so no token and no completion code may appear in
report.html, the report CSVs and JSON, the admin exports or the dashboard. Greps every output of a
filled study for every token and code."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db import export_long_csv, export_ratings_csv, rater_qc
from db.models import Rater
from pipelines import report as cli
from srkeras.mos.pseudonyms import pseudonyms, rename
from tests.test_report_db import fill_study


def test_pseudonyms_follow_creation_order_and_hide_the_token():
    names = pseudonyms(["tok-b", "tok-a", "tok-b", "tok-c"])
    assert names == {"tok-b": "rater-01", "tok-a": "rater-02", "tok-c": "rater-03"}
    assert list(pseudonyms(str(k) for k in range(120)).values())[-1] == "rater-120"
    import pandas as pd

    with pytest.raises(ValueError, match="without a pseudonym"):
        rename(pd.DataFrame({"rater": ["tok-a", "tok-x"]}), names)


def _secrets(db, name):
    def work(s):
        rows = s.execute(select(Rater.token, Rater.completion_code)).all()
        return [t for t, _ in rows], [c for _, c in rows if c]

    return db.run(work)


def _app_text(at) -> str:
    parts = [d.value.to_csv() for d in at.dataframe]
    parts += [str(c.proto) for c in at.get("vega_lite_chart")]
    for kind in ("markdown", "caption", "warning", "info", "text", "json", "subheader", "metric"):
        parts += [str(getattr(e, "value", e)) for e in at.get(kind)]
    return "\n".join(parts)


def test_no_token_or_completion_code_in_any_report_export_or_dashboard(make_study, db_url, tmp_path, monkeypatch):
    pytest.importorskip("streamlit")
    from tests.test_dashboard import open_admin

    st = make_study(db_url, mode="both", votes_per_stimulus=10, repeats=1)
    db = st.open()
    try:
        fill_study(db, st.name, n_raters=4, random_raters=1)
        tokens, codes = _secrets(db, st.name)
        outputs = {"ratings export": export_ratings_csv(db, st.name), **export_long_csv(db, st.name)}
        qc = rater_qc(db, st.name, store=False)
    finally:
        db.close()
    assert len(tokens) == 4 and len(codes) == 4
    assert [q["rater"] for q in qc] == [f"rater-0{k}" for k in range(1, 5)] and all("token" not in q for q in qc)
    assert cli.main(["--db", st.url, "--study", st.name, "--out", str(tmp_path / "rep"), "--bootstrap", "100",
                     "--quiet"]) == 0
    files = {p.name: p.read_text() for p in (tmp_path / "rep").iterdir()}
    assert {"report.html", "raters.csv", "stimuli.csv", "summary.json"} <= set(files)
    assert "rater-04" in files["raters.csv"] and "rater-04" in files["report.html"]
    outputs.update(files)
    at = open_admin(st.url, monkeypatch)  # the Study page (QC table, ratings export table) ...
    outputs["study page"] = _app_text(at)
    at.sidebar.radio(key="page").set_value("Dashboard").run()  # ... and the Dashboard
    assert not at.exception
    outputs["dashboard"] = _app_text(at)
    assert "rater-01" in outputs["dashboard"] and "rater-01" in outputs["study page"]
    for where, text in outputs.items():
        for secret in tokens + codes:
            assert secret not in text, f"a rater credential appears in {where}"
