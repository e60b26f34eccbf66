"""The one home of rater screening (srkeras.mos.screening) and of the study vocabularies
(srkeras.mos.vocabulary): the rules that only the database had before (straight-lining, unfinished
sessions), the QC numbers of the admin table, pair retest by winner, and metric merging for reports."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from srkeras.mos import schema, screening
from srkeras.mos.vocabulary import A_SHARE, FRAME_CHOICES, MethodRole, PairChoice, QcFlag


def _acr(rows):
    """rows: (rater, trial, score[, response_ms]); one test stimulus per trial."""
    df = pd.DataFrame([(r, "m", f"i{t}", float(sc), "test", False, float(t), ms)
                       for r, t, sc, *rest in rows for ms in [rest[0] if rest else 3000.0]],
                      columns=["rater", "method", "image", "score", "role", "repeat", "trial", "response_ms"])
    return df


def test_straight_lining_zero_variance_or_long_run_in_answer_order():
    varied = [1, 2, 3, 4, 5, 4, 3, 2, 1, 2]
    rows = [("flat", t, 3) for t in range(5)]  # 5 equal scores: zero variance
    rows += [("few", t, 3) for t in range(4)]  # 4 equal scores: too few to tell
    rows += [("run", t, 4 if 1 <= t <= 8 else varied[t]) for t in range(10)]  # 8 equal in a row
    rows += [("seven", t, 4 if 1 <= t <= 7 else varied[t]) for t in range(10)]  # 7 in a row: fine
    # The run rule reads answer order (``trial``), not file order (a run of 6 in file order here).
    rows += [("shuffled", t, 4 if 1 <= t <= 8 else varied[t]) for t in (5, 0, 6, 9, 1, 7, 2, 8, 3, 4)]
    s = screening.screen(_acr(rows)).set_index("rater")
    assert s.loc["flat", "reasons"] == ["straight_lining (all 5 scores equal)"]
    assert s.loc["flat", "flags"] == [QcFlag.STRAIGHT_LINING] and s.loc["flat", "score_std"] == 0
    assert not s.loc["few", "rejected"] and s.loc["few", "longest_same_score_run"] == 4
    assert s.loc["run", "reasons"] == ["straight_lining (8 equal scores in a row)"]
    assert not s.loc["seven", "rejected"] and s.loc["seven", "longest_same_score_run"] == 7
    assert s.loc["shuffled", "longest_same_score_run"] == 8 and s.loc["shuffled", "rejected"]


def test_incomplete_only_where_completion_is_known():
    acr = _acr([(r, t, 1 + (t % 5)) for r in ("done", "left") for t in range(10)])
    assert not screening.screen(acr)["rejected"].any()  # CSV files know no completion
    s = screening.screen(acr, completed={"done": True, "left": False, "never": False}).set_index("rater")
    assert not s.loc["done", "rejected"]
    assert s.loc["left", "reasons"] == ["incomplete (session not finished)"]
    assert s.loc["left", "flags"] == [QcFlag.INCOMPLETE]
    assert s.loc["never", "flags"] == [QcFlag.INCOMPLETE] and s.loc["never", "n_ratings"] == 0  # no answers at all


def test_qc_records_are_plain_numbers_and_none_where_undefined():
    acr = _acr([("r", t, 1 + (t % 5), 1000.0 if t < 3 else 4000.0) for t in range(10)])
    acr.loc[acr["trial"] == 9, "repeat"] = True
    acr.loc[acr["trial"] == 9, "image"] = "i4"  # a repeat of trial 4 (score 5) scored 5: agrees
    rec = screening.qc_records(screening.screen(acr, completed={"r": True, "idle": False}))
    r = rec["r"]
    assert r["n_ratings"] == 10 and r["fast_n"] == 3 and r["fast_fraction"] == pytest.approx(0.3)
    assert r["retest_n"] == 1 and r["retest_agreement"] == 1.0 and r["retest_mean_abs_diff"] == 0.0
    assert r["median_response_ms"] == 4000.0 and r["gold_n"] == 0 and r["gold_accuracy"] is None
    assert r["flags"] == [QcFlag.TOO_FAST] and r["rejected"] and r["reasons"][0].startswith("too_fast")
    assert all(type(r[k]) is int for k in ("n_ratings", "gold_n", "gold_correct", "retest_n", "fast_n"))
    idle = rec["idle"]
    assert idle["n_ratings"] == idle["fast_n"] == idle["longest_same_score_run"] == 0
    assert idle["fast_fraction"] is None and idle["score_std"] is None and idle["flags"] == [QcFlag.INCOMPLETE]
    # the too-fast limit is a parameter, its default the one threshold
    assert screening.qc_records(screening.screen(acr, fast_ms=900))["r"]["fast_n"] == 0


def test_pair_retest_compares_winners_not_sides():
    """A repeat may show the two methods swapped: choosing the same method agrees, the same side does not."""
    p = pd.DataFrame({"rater": ["same", "same", "side", "side", "tie", "tie"], "image": ["i"] * 6,
                      "method_a": ["x", "y"] * 3, "method_b": ["y", "x"] * 3,
                      "choice": ["a", "b", "a", "a", "tie", "tie"], "repeat": [False, True] * 3})
    s = screening.screen(None, p).set_index("rater")
    assert s.loc["same", "retest_agreement"] == 1.0 and s.loc["tie", "retest_agreement"] == 1.0
    assert s.loc["side", "retest_agreement"] == 0.0 and s.loc["side", "flags"] == [QcFlag.RETEST_INCONSISTENT]


def test_report_table_keeps_the_report_columns():
    acr = _acr([(r, t, 1 + ((t + k) % 5)) for k, r in enumerate("abc") for t in range(6)])
    full = screening.screen(acr)
    assert list(screening.report_table(full).columns) == [
        "rater", "n", "bt500_p", "bt500_q", "bt500_ratio", "bt500_symmetry", "bt500_reject", "corr_r1",
        "corr_r2", "corr_n", "corr_reject", "mle_inconsistency", "mle_inconsistency_median", "mle_inconsistency_mad",
        "mle_limit", "mle_reject", "n_pairs", "gold_n",
        "gold_accuracy", "retest_n", "retest_agreement", "fast_fraction", "reasons", "rejected"]
    assert set(full.columns) - set(screening.report_table(full).columns) == set(screening.QC_DETAIL)


def test_pair_choice_spellings_are_one_enum():
    assert [c.value for c in PairChoice] == ["A", "B", "none"]  # stored (database, rater app)
    assert FRAME_CHOICES == ("a", "b", "tie") == schema.CHOICES  # rating frames and their CSV files
    assert all(PairChoice.of_frame(c.frame) is c and PairChoice(c.value) is c for c in PairChoice)
    assert A_SHARE == {"a": 1.0, "b": 0.0, "tie": 0.5}
    assert schema.ROLES == tuple(MethodRole) == ("low_anchor", "high_anchor", "test")
    assert [f.value for f in QcFlag] == ["gold_fail", "retest_inconsistent", "too_fast", "straight_lining",
                                         "incomplete", "low_correlation", "mle_inconsistent", "pair_inconsistent"]


def test_merge_metrics_adds_columns_and_the_file_wins():
    stored = pd.DataFrame({"method": ["nn", "nn", "hr"], "image": ["i1", "i2", "i1"],
                           "psnr": [20.0, 21.0, np.inf], "ssim": [0.5, 0.6, 1.0]})
    given = pd.DataFrame({"method": ["nn", "hr", "other"], "image": ["i1", "i1", "i1"],
                          "psnr": [25.0, np.nan, 30.0], "lpips": [0.4, 0.0, 0.9]})
    merged, replaced = schema.merge_metrics(stored, given)
    assert replaced == ["psnr"]
    assert list(merged.columns) == ["method", "image", "psnr", "ssim", "lpips"]
    assert list(zip(merged["method"], merged["image"])) == [("nn", "i1"), ("nn", "i2"), ("hr", "i1")]
    assert merged["psnr"].tolist() == [25.0, 21.0, np.inf]  # the file's value where it has one
    assert merged["lpips"].tolist()[::2] == [0.4, 0.0] and math.isnan(merged["lpips"][1])
    assert merged["ssim"].tolist() == [0.5, 0.6, 1.0]
    assert schema.merge_metrics(None, given) == (given, []) and schema.merge_metrics(stored, None) == (stored, [])
