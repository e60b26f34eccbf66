"""Issue 12, phase 2: the report of a study in the database equals the report of its CSV export; the
wrappers ``mos_table`` / ``preference_table`` over :mod:`srkeras.mos`; QC flags recorded only
by the explicit call; spreadsheet-formula neutralisation of every CSV written (OWASP CSV injection)."""

from __future__ import annotations

import csv
import io
import json
import random

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from db import (
    export_long_csv,
    export_ratings_csv,
    mos_table,
    next_trial,
    preference_table,
    rater_qc,
    rating_frames,
    start_rater,
    submit_rating,
)
from db.models import Rater, Trial
from pipelines import report as cli
from srkeras.mos.schema import neutralise, read_acr_csv, read_metrics_csv, unneutralise

#: Latent quality of the test study's methods (the fill helper's truth).
QUALITY = {"nearest": 1.4, "bicubic": 3.0, "hr": 4.6}


def trial_methods(db, token: str) -> dict[int, tuple[str, ...]]:
    """{trial id: method names shown (left, right for pairs)} of one rater: admin-side knowledge."""
    with db.session() as s:
        rid = s.scalar(select(Rater.id).where(Rater.token == token))
        out = {}
        for t in s.scalars(select(Trial).where(Trial.rater_id == rid)):
            stims = [t.stimulus] if t.mode == "acr" else [t.stimulus_a, t.stimulus_b]
            out[t.id] = tuple(x.method.name for x in stims)
        return out


def fill_study(db, name: str, n_raters: int = 5, seed: int = 0, random_raters: int = 0, display=None) -> list[str]:
    """Raters answer every trial through ``service`` (next_trial / submit_rating) like the app does:
    ACR scores around :data:`QUALITY` with rater bias and noise, pair choices by noisy quality (some
    ties); the last ``random_raters`` raters answer at random. Returns the rater tokens."""
    rng = random.Random(seed)
    tokens = []
    for k in range(n_raters):
        tok = start_rater(db, name, display=display)
        tokens.append(tok)
        shown = trial_methods(db, tok)
        bias, noisy = rng.gauss(0, 0.3), k >= n_raters - random_raters
        while (t := next_trial(db, tok)) is not None:
            ms, ms_time = shown[t.trial_id], rng.randint(1800, 7000)
            if t.mode == "acr":
                q = rng.uniform(1, 5) if noisy else QUALITY[ms[0]] + bias + rng.gauss(0, 0.6)
                submit_rating(db, tok, t.trial_id, score=int(min(5, max(1, round(q)))), response_ms=ms_time)
            else:
                d = (QUALITY[ms[0]] - QUALITY[ms[1]]) * (0 if noisy else 1) + rng.gauss(0, 0.8)
                choice = "none" if abs(d) < 0.15 else "A" if d > 0 else "B"
                submit_rating(db, tok, t.trial_id, choice=choice, response_ms=ms_time)
    return tokens


@pytest.fixture
def filled(make_study, db_url):
    st = make_study(db_url, mode="both", votes_per_stimulus=10, repeats=1)
    db = st.open()
    try:
        fill_study(db, st.name, n_raters=6, random_raters=1)
        yield st, db
    finally:
        db.close()


def test_db_report_equals_csv_export_report(filled, tmp_path):
    """Acceptance: ``--db URL --study NAME`` and the same study exported to long CSV give one report."""
    st, db = filled
    files = export_long_csv(db, st.name)
    assert set(files) == {"ratings.csv", "pairs.csv", "metrics.csv"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    common = ["--bootstrap", "300", "--quiet", "--title", "t"]
    assert cli.main(["--db", st.url, "--study", st.name, "--out", str(tmp_path / "db"), *common]) == 0
    assert cli.main(["--ratings-csv", str(tmp_path / "ratings.csv"), "--pairs-csv", str(tmp_path / "pairs.csv"),
                     "--metrics-csv", str(tmp_path / "metrics.csv"), "--out", str(tmp_path / "csv"), *common]) == 0
    s_db = json.loads((tmp_path / "db" / "summary.json").read_text())
    s_csv = json.loads((tmp_path / "csv" / "summary.json").read_text())
    assert s_db == s_csv
    assert set(s_db["methods"]) == set(QUALITY) and s_db["counts"]["raters"] == 6
    assert s_db["methods"]["hr"]["mos"] > s_db["methods"]["bicubic"]["mos"] > s_db["methods"]["nearest"]["mos"]
    assert s_db["methods"]["bicubic"]["psnr"] > s_db["methods"]["nearest"]["psnr"]
    assert s_db["pairs"]["hr"]["bt"] > s_db["pairs"]["nearest"]["bt"]
    for f in ("stimuli.csv", "raters.csv", "methods.csv", "pairs.csv", "report.html"):
        assert (tmp_path / "db" / f).read_bytes() == (tmp_path / "csv" / f).read_bytes(), f


def test_db_report_merges_a_metrics_file(filled, tmp_path, capsys):
    """``--db`` with ``--metrics-csv``: the file's columns join the stored ones; on a shared column the file
    wins, and one line on stderr says so."""
    st, db = filled
    _, _, stored = rating_frames(db, st.name)
    given = stored[["method", "image"]].assign(psnr=10.0 + np.arange(len(stored)), lpips=0.1 * np.arange(len(stored)))
    given.to_csv(tmp_path / "m.csv", index=False)
    out = tmp_path / "o"
    assert cli.main(["--db", st.url, "--study", st.name, "--metrics-csv", str(tmp_path / "m.csv"), "--out", str(out),
                     "--bootstrap", "100", "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"note: {tmp_path / 'm.csv'} replaces the stored metric column(s) psnr"]
    methods = json.loads((out / "summary.json").read_text())["methods"]
    for m, g in given.groupby("method"):
        assert methods[m]["psnr"] == pytest.approx(g["psnr"].mean()) and methods[m]["lpips"] == pytest.approx(
            g["lpips"].mean())
        assert methods[m]["ssim"] == pytest.approx(stored.loc[stored["method"] == m, "ssim"].mean())
    assert "lpips" in pd.read_csv(out / "stimuli.csv").columns


def test_mos_and_preference_tables_are_srkeras_mos(filled):
    """The db tables are thin wrappers: same numbers as srkeras.mos on rating_frames."""
    from srkeras.mos.pairs import preference_table as mos_preference_table
    from srkeras.mos.scores import cluster_bootstrap, t_interval

    st, db = filled
    acr, pairs, _ = rating_frames(db, st.name)
    tab = mos_table(db, st.name, n_boot=300).set_index("method")
    assert list(tab.index) == ["nearest", "bicubic", "hr"] and list(tab["role"]) == ["low_anchor", "test", "high_anchor"]
    boot = cluster_bootstrap(acr, n_boot=300).set_index("method")
    for m, g in acr[~acr["repeat"]].groupby("method"):
        mean, lo, hi = t_interval(g["score"])
        assert tab.loc[m, "n"] == len(g) and tab.loc[m, "mos"] == pytest.approx(mean)
        assert (tab.loc[m, "ci95_low"], tab.loc[m, "ci95_high"]) == pytest.approx((lo, hi))
        assert (tab.loc[m, "boot_ci95_low"], tab.loc[m, "boot_ci95_high"]) == pytest.approx(
            (boot.loc[m, "ci95_low"], boot.loc[m, "ci95_high"]))
    pref = preference_table(db, st.name)
    pd.testing.assert_frame_equal(pref, mos_preference_table(pairs, ["nearest", "bicubic", "hr"]))
    assert (pref["n"] == pref["a_wins"] + pref["b_wins"] + pref["no_preference"]).all()


def test_qc_flags_recorded_only_by_the_explicit_call(make_study, db_url):
    st = make_study(db_url)
    db = st.open()
    try:
        tok = start_rater(db, st.name)
        t = next_trial(db, tok)
        submit_rating(db, tok, t.trial_id, score=3, response_ms=300)

        def stored():
            with db.session() as s:
                return s.scalar(select(Rater.qc_flags).where(Rater.token == tok))

        rows = list(csv.DictReader(io.StringIO(export_ratings_csv(db, st.name))))
        now = set(rows[0]["rater_qc_flags"].split(","))
        assert {"incomplete", "too_fast"} <= now  # computed for the file (gold_fail too if it was an anchor)
        mos_table(db, st.name, exclude_flags=("incomplete",), n_boot=100)
        rater_qc(db, st.name, store=False)
        assert stored() is None, "exports and reads never record flags"
        rater_qc(db, st.name)
        assert set(stored().split(",")) == now
    finally:
        db.close()


def test_neutralise():
    for bad in ("=HYPERLINK(\"http://evil\",\"x\")", "+1+2", "-2+3", "@SUM(A1)", "-abc", "\t=1", "\r=1"):
        assert neutralise(bad) == "'" + bad and unneutralise(neutralise(bad)) == bad
    for ok in ("-0.5", "+3", "-1e-3", ".5", "plain", "a=b", "", "'quoted", -0.5, 3, None, float("inf")):
        assert neutralise(ok) == ok if not isinstance(ok, float) else neutralise(ok) is ok
        if isinstance(ok, str):
            assert unneutralise(ok) == ok


def test_ratings_csv_formula_injection(make_study, db_url):
    evil = '=HYPERLINK("http://evil.example","click")'
    st = make_study(db_url)
    db = st.open()
    try:
        tok = fill_study(db, st.name, n_raters=1, display=evil)[0]
        text = export_ratings_csv(db, st.name)
    finally:
        db.close()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows and all(r["rater_display"] == "'" + evil for r in rows)
    assert all(r["rater"] == "rater-01" for r in rows) and tok not in text  # pseudonyms verbatim, never tokens
    assert all(r["score"].lstrip("-").isdigit() for r in rows)
    assert not any(c.startswith(("=", "+", "@")) for r in rows for c in r.values())


def test_report_csvs_formula_injection_and_round_trip(tmp_path):
    """Report CSVs neutralise text but keep numbers (a negative metric stays a number); the long CSV
    written neutralised reads back to the original names."""
    rng = random.Random(1)
    rows = [(r, m, f"img{i}", min(5, max(1, round(q + rng.gauss(0, 0.7)))))
            for r in ("=cmd|' /C calc'!A0", "@bob", "carol", "dave")
            for m, q in (("-nn", 1.5), ("+sr", 3.5), ("plain", 4.2)) for i in range(4)]
    acr = pd.DataFrame(rows, columns=["rater", "method", "image", "score"])
    met = pd.DataFrame([(m, f"img{i}", -0.5 + i + k, 0.1 * k) for k, m in enumerate(("-nn", "+sr", "plain"))
                        for i in range(4)], columns=["method", "image", "lpips_neg", "ssim"])
    from srkeras.mos.files import safe_frame

    safe_frame(acr).to_csv(tmp_path / "v.csv", index=False)
    safe_frame(met).to_csv(tmp_path / "m.csv", index=False)
    back = read_acr_csv(tmp_path / "v.csv")
    assert set(back["rater"]) == set(acr["rater"]) and set(back["method"]) == {"-nn", "+sr", "plain"}
    out = tmp_path / "o"
    assert cli.main(["--ratings-csv", str(tmp_path / "v.csv"), "--metrics-csv", str(tmp_path / "m.csv"),
                     "--out", str(out), "--bootstrap", "200", "--quiet"]) == 0
    raters = list(csv.DictReader(open(out / "raters.csv")))
    assert {r["rater"] for r in raters} == {"'=cmd|' /C calc'!A0", "'@bob", "carol", "dave"}
    stim = list(csv.DictReader(open(out / "stimuli.csv")))
    assert {r["method"] for r in stim} == {"'-nn", "'+sr", "plain"}
    assert min(float(r["lpips_neg"]) for r in stim) == -0.5  # numbers stay numbers
    assert any(r["lpips_neg"] == "-0.5" for r in stim)
    for f in ("stimuli.csv", "raters.csv", "methods.csv", "pairs.csv"):
        cells = [c for row in csv.reader(open(out / f)) for c in row]
        assert not [c for c in cells if c[:1] in ("=", "+", "@") or (c[:1] == "-" and not _is_number(c))], f
    assert "=cmd" in json.loads((out / "summary.json").read_text())["raters"].__repr__()  # JSON keeps names


def test_report_csv_headers_formula_injection(tmp_path):
    """A metric column named like a formula is neutralised in every CSV header (issue 24, item 10; the
    header was written raw), and a file written neutralised reads back to the original column name."""
    evil = '=hyperlink("http://evil.example","x")'
    votes = [(r, m, f"img{i}", s) for r in ("ann", "bob", "cat") for m, s in (("nn", 1), ("sr", 4)) for i in range(3)]
    pd.DataFrame(votes, columns=["rater", "method", "image", "score"]).to_csv(tmp_path / "v.csv", index=False)
    met = pd.DataFrame([(m, f"img{i}", i + k) for k, m in enumerate(("nn", "sr")) for i in range(3)],
                       columns=["method", "image", evil])
    met.to_csv(tmp_path / "m.csv", index=False)
    out = tmp_path / "o"
    assert cli.main(["--ratings-csv", str(tmp_path / "v.csv"), "--metrics-csv", str(tmp_path / "m.csv"),
                     "--out", str(out), "--bootstrap", "100", "--quiet"]) == 0
    headers = {f.name: next(csv.reader(open(f))) for f in out.glob("*.csv")}
    assert "'" + evil in headers["stimuli.csv"] and "'" + evil in headers["methods.csv"]
    assert not [(f, c) for f, h in headers.items() for c in h if c[:1] in ("=", "+", "-", "@")]
    from srkeras.mos.files import safe_frame

    safe_frame(met).to_csv(tmp_path / "m2.csv", index=False)
    assert evil in read_metrics_csv(tmp_path / "m2.csv").columns


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
