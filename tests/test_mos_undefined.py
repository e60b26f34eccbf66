"""Reports whose statistics are undefined (issue 24, items 9 and 12): every rater screened out, every vote
equal. The report says what is undefined and why instead of aborting."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from srkeras.mos import agreement, analyze, scores, summary
from srkeras.mos.files import report_files
from srkeras.mos.report import ALL_REJECTED, ALPHA_UNDEFINED


def _acr(raters, n_images: int, score) -> pd.DataFrame:
    rows = [(r, m, f"i{t}", float(score(k, m, t)), "test", False, float(t), 3000.0)
            for k, r in enumerate(raters) for m in ("x", "y") for t in range(n_images)]
    return pd.DataFrame(rows, columns=["rater", "method", "image", "score", "role", "repeat", "trial", "response_ms"])


def test_every_rater_screened_out_leaves_the_screened_mos_undefined_with_a_note():
    acr = _acr("abc", 6, lambda k, m, t: 1 + (t + k + (m == "y")) % 5)
    rep = analyze(acr, completed={r: False for r in "abc"}, n_boot=50)  # nobody finished: all rejected
    assert rep.raters["rejected"].all() and ALL_REJECTED in rep.notes
    assert rep.methods["mos_screened"].isna().all() and rep.methods["mos"].notna().all()
    files = report_files(rep, "t")
    s = json.loads(files["summary.json"])
    assert s["methods"]["x"]["mos_screened"] is None and s["methods"]["x"]["ci95_screened"] == [None, None]
    assert s["notes"][0] == ALL_REJECTED and "Every rater was rejected" in files["report.html"].decode()


def test_cluster_bootstrap_of_no_votes_is_empty_not_a_division_by_zero():
    out = scores.cluster_bootstrap(_acr("a", 2, lambda *_: 3).iloc[:0], n_boot=10)
    assert out.empty and {"method", "mos", "ci95_low", "ci95_high"} <= set(out.columns)


def test_all_equal_votes_report_alpha_as_undefined():
    acr = _acr("abc", 2, lambda *_: 3)  # 4 votes each: too few for the straight-lining rule
    assert math.isnan(agreement.krippendorff_alpha(acr))
    rep = analyze(acr, n_boot=50)
    assert ALPHA_UNDEFINED in rep.notes and not rep.raters["rejected"].any()
    s = summary(rep)
    assert s["alpha"] is None and s["methods"]["x"]["mos"] == 3.0
    varied = _acr("abc", 4, lambda k, m, t: 1 + (t + k) % 5)
    assert np.isfinite(agreement.krippendorff_alpha(varied))
    assert ALPHA_UNDEFINED not in summary(analyze(varied, n_boot=20)).get("notes", [])  # (3 raters: MLE note only)
