"""``python -m pipelines.report``: SRGAN Table 2 round trip, outputs, pair-only input, errors, DB branch."""

from __future__ import annotations

import json
import re
import sys
import types
from xml.etree import ElementTree

import numpy as np
import pandas as pd
import pytest

from pipelines import report as cli
from srkeras.mos.simulate import SRGAN_TABLE2, simulate_pairs, srgan_study


@pytest.fixture(scope="module")
def srgan(tmp_path_factory):
    d = tmp_path_factory.mktemp("srgan")
    acr, met = srgan_study("BSD100", n_images=30, n_raters=26, seed=0)
    acr.to_csv(d / "votes.csv", index=False)
    met.to_csv(d / "metrics.csv", index=False)
    rc = cli.main(["--ratings-csv", str(d / "votes.csv"), "--metrics-csv", str(d / "metrics.csv"),
                   "--out", str(d / "out"), "--bootstrap", "500", "--quiet"])
    assert rc == 0
    return d / "out"


def test_srgan_table2_mos_within_ci_and_psnr_disagrees(srgan):
    s = json.loads((srgan / "summary.json").read_text())
    for m, (psnr, _ssim, mos) in SRGAN_TABLE2["BSD100"].items():
        lo, hi = s["methods"][m]["ci95"]
        assert lo <= mos <= hi, (m, mos, lo, hi)
        assert s["methods"][m]["psnr"] == (psnr if np.isfinite(psnr) else "inf")
    assert s["correlation"]["psnr"]["pearson"] < 0  # MOS and PSNR disagree (SRGAN: best MOS, low PSNR)
    assert s["correlation_methods"]["psnr"]["pearson"] < 0
    flagged = {(d["better_by_mos"], d["worse_by_mos"]) for d in s["metric_disagreements"]["psnr"]}
    assert ("SRGAN", "SRResNet") in flagged
    assert s["wilcoxon_holm"]["SRGAN|SRResNet"] < 0.05
    assert set(s["raters"]) and not any(r["rejected"] for r in s["raters"].values())
    assert 0 < s["alpha"] < 1


def test_output_files_and_columns(srgan):
    st = pd.read_csv(srgan / "stimuli.csv")
    assert list(st.columns[:10]) == cli.STIMULI_COLS and {"psnr", "ssim"} <= set(st.columns)
    assert list(pd.read_csv(srgan / "raters.csv").columns[:7]) == cli.RATER_COLS
    assert "mos" in pd.read_csv(srgan / "methods.csv").columns
    html = (srgan / "report.html").read_text()
    assert html.count("<svg") >= 5 and "How to read this" in html
    assert "<script" not in html and not re.search(r"""(src|href)=["']?https?:""", html)
    assert "@import" not in html and "url(" not in html
    for svg in re.findall(r"<svg.*?</svg>", html, re.S):  # every chart is well-formed inline SVG
        ElementTree.fromstring(svg)


def test_pairs_only(tmp_path):
    p = simulate_pairs({"a": 0.0, "b": 0.7, "c": 1.4}, n_raters=6, images=4, seed=2, tie_prob=0.1)
    p[["rater", "image", "method_a", "method_b", "choice"]].to_csv(tmp_path / "pairs.csv", index=False)
    rc = cli.main(["--pairs-csv", str(tmp_path / "pairs.csv"), "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 0
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["pairs"]["c"]["bt"] > s["pairs"]["a"]["bt"]
    assert len(s["pairs"]["a"]["ci95"]) == 2
    assert "<svg" in (tmp_path / "o" / "report.html").read_text()


def test_malformed_csv_exit_2(tmp_path, capsys):
    f = tmp_path / "bad.csv"
    f.write_text("rater,method,image,score\nr1,a,i,3\nr1,a,i2,x\n")
    assert cli.main(["--ratings-csv", str(f), "--out", str(tmp_path / "o")]) == 2
    assert "bad.csv, line 3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--out", str(tmp_path / "o")])


class _FakeDb(str):
    def close(self) -> None:
        pass


def test_db_branch_uses_db_rating_frames(tmp_path, monkeypatch):
    acr, met = srgan_study("Set5", n_images=5, n_raters=8, seed=1)
    calls = []
    fake_db = types.ModuleType("db")
    fake_db.rating_frames = lambda db, study: calls.append((db, study)) or (acr, None, met)
    fake_db.open_database = lambda url, migrate=True, must_exist=False: _FakeDb(f"DB({url})")
    fake_db.rater_completion = lambda db, study: dict.fromkeys(acr["rater"], True)
    monkeypatch.setitem(sys.modules, "db", fake_db)
    rc = cli.main(["--db", "sqlite:///x.db", "--study", "s1", "--out", str(tmp_path / "o"), "--bootstrap", "200",
                   "--quiet"])
    assert rc == 0 and calls == [("DB(sqlite:///x.db)", "s1")]
    assert "SRGAN" in json.loads((tmp_path / "o" / "summary.json").read_text())["methods"]


def test_all_equal_votes_every_rater_screened_out_report_says_so(tmp_path):
    """Issue 24 items 9 and 12: every vote equal (every rater a straight-liner, so all screened out): the
    report is written, with the screened MOS and alpha empty and notes saying why (was a traceback)."""
    rows = [f"r{k},{m},i{t},3" for k in range(3) for m in ("a", "b") for t in range(5)]
    (tmp_path / "acr.csv").write_text("rater,method,image,score\n" + "\n".join(rows) + "\n")
    rc = cli.main(["--ratings-csv", str(tmp_path / "acr.csv"), "--out", str(tmp_path / "o"), "--quiet",
                   "--bootstrap", "100"])
    assert rc == 0
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["methods"]["a"]["mos"] == 3.0 and s["methods"]["a"]["mos_screened"] is None and s["alpha"] is None
    assert len(s["notes"]) == 3 and all(r["rejected"] for r in s["raters"].values())
    assert "collapsed" in s["notes"][2]  # issue 20: every vote equal, the subject model has nothing to fit


# ------------------------------------------------------------------ issue 24, item 11: messages, not tracebacks
def _votes_csv(tmp_path):
    acr, _ = srgan_study("Set5", n_images=3, n_raters=4, seed=1)
    acr.to_csv(tmp_path / "votes.csv", index=False)
    return tmp_path / "votes.csv"


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_db_errors_one_line_and_nothing_created(tmp_path, capsys):
    from db import open_database

    open_database(f"sqlite:///{tmp_path / 'mos.db'}").close()  # a MOS database without that study
    (tmp_path / "notes.txt").write_text("not a database\n")
    out = ["--out", str(tmp_path / "o"), "--quiet"]
    cases = {  # --db: what the message must say
        f"sqlite:///{tmp_path / 'mos.db'}": "no study named 'nope'",
        f"sqlite:///{tmp_path / 'typo.db'}": "typo.db: no such database file",
        f"sqlite:///{tmp_path / 'notes.txt'}": "notes.txt: cannot read the database (file is not a database)",
        "postgresql+psycopg://srk:hunter2@127.0.0.1:1/mos": "cannot read the database",
    }
    for url, said in cases.items():
        assert cli.main(["--db", url, "--study", "nope", *out]) == 2, url
        err = _one_line_error(capsys)
        assert said in err and "hunter2" not in err, err
    assert not (tmp_path / "typo.db").exists(), "a mistyped path created an empty database"
    assert (tmp_path / "notes.txt").read_text() == "not a database\n"
    assert not (tmp_path / "o").exists()


def test_out_checked_before_analysis(tmp_path, capsys, monkeypatch):
    votes = _votes_csv(tmp_path)
    monkeypatch.setattr(cli, "analyze", lambda *a, **k: pytest.fail("--out is checked after the analysis"))
    (tmp_path / "taken").write_text("a file")
    assert cli.main(["--ratings-csv", str(votes), "--out", str(tmp_path / "taken"), "--quiet"]) == 2
    assert "--out" in _one_line_error(capsys) and (tmp_path / "taken").read_text() == "a file"
    assert cli.main(["--ratings-csv", str(votes), "--out", str(tmp_path / "taken" / "sub"), "--quiet"]) == 2
    assert "is not a folder" in _one_line_error(capsys)


@pytest.mark.skipif(not hasattr(__import__("os"), "getuid") or __import__("os").getuid() == 0,
                    reason="root writes into read-only folders")
def test_out_read_only_folder(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert cli.main(["--ratings-csv", str(_votes_csv(tmp_path)), "--out", str(ro), "--quiet"]) == 2
        assert "cannot write in this folder" in _one_line_error(capsys)
        assert not list(ro.iterdir())
    finally:
        ro.chmod(0o755)


def test_disk_full_leaves_no_empty_report(tmp_path, capsys, monkeypatch):
    import errno
    import pathlib

    real = pathlib.Path.write_bytes

    def full(self, data):
        if "report" in self.name and self.suffix == ".html":
            real(self, b"")  # what a full disk leaves: the file created, nothing in it
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", full)
    out = tmp_path / "o"
    assert cli.main(["--ratings-csv", str(_votes_csv(tmp_path)), "--out", str(out), "--bootstrap", "100", "--quiet"]) == 1
    assert "no space left on the device" in _one_line_error(capsys)
    assert (out / "summary.json").stat().st_size > 0
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".html") == []


@pytest.mark.parametrize("column", ["mos", "n", "MOS"])
def test_metric_named_like_a_report_column(tmp_path, capsys, column):
    votes = _votes_csv(tmp_path)
    acr = pd.read_csv(votes)
    met = acr[["method", "image"]].drop_duplicates().assign(**{column: 1.0})
    met.to_csv(tmp_path / "m.csv", index=False)
    rc = cli.main(["--ratings-csv", str(votes), "--metrics-csv", str(tmp_path / "m.csv"), "--out",
                   str(tmp_path / "o"), "--quiet"])
    assert rc == 2
    err = _one_line_error(capsys)
    assert "m.csv, line 1" in err and f"metric column(s) {column.lower()} have the name of a column" in err


def test_report_columns_are_all_reserved(srgan):
    """Every column the report computes is in REPORT_COLUMNS (so no metric can take its name)."""
    from srkeras.mos.schema import REPORT_COLUMNS

    own = set(pd.read_csv(srgan / "stimuli.csv").columns) | set(pd.read_csv(srgan / "methods.csv").columns)
    s = json.loads((srgan / "summary.json").read_text())
    own |= {k for d in s["methods"].values() for k in d}
    assert own - {"method", "image", "psnr", "ssim"} <= REPORT_COLUMNS
