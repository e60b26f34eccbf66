"""``pipelines.report --metrics-csv`` with a text column (issue 23): ignored with a one-line notice."""

from __future__ import annotations

import json

import pandas as pd

from pipelines import report as cli
from srkeras.mos.simulate import srgan_study


def test_text_column_is_ignored_with_a_notice_naming_it(tmp_path, capsys):
    acr, met = srgan_study("Set5", n_images=3, n_raters=4, seed=1)
    acr.to_csv(tmp_path / "votes.csv", index=False)
    met = met.assign(category=["photo" if i % 2 else "drawing" for i in range(len(met))], note="")
    met.to_csv(tmp_path / "m.csv", index=False)
    rc = cli.main(["--ratings-csv", str(tmp_path / "votes.csv"), "--metrics-csv", str(tmp_path / "m.csv"),
                   "--out", str(tmp_path / "o"), "--quiet", "--bootstrap", "100"])
    err = capsys.readouterr().err
    assert rc == 0, err
    notes = [line for line in err.splitlines() if "non-numeric" in line]
    assert notes == [f"note: {tmp_path / 'm.csv'}: ignoring non-numeric column(s) category"], err
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert "psnr" in s["correlation"] and "category" not in s["correlation"]
    assert "category" not in pd.read_csv(tmp_path / "o" / "stimuli.csv").columns


def test_a_stray_word_in_a_numeric_column_is_still_refused(tmp_path, capsys):
    acr, met = srgan_study("Set5", n_images=3, n_raters=4, seed=1)
    acr.to_csv(tmp_path / "votes.csv", index=False)
    met["psnr"] = met["psnr"].astype(object)
    met.loc[2, "psnr"] = "n/a"
    met.to_csv(tmp_path / "m.csv", index=False)
    rc = cli.main(["--ratings-csv", str(tmp_path / "votes.csv"), "--metrics-csv", str(tmp_path / "m.csv"),
                   "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "m.csv, line 4" in err and "'n/a' is not a number" in err and "Traceback" not in err, err
