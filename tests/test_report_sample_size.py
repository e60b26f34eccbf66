"""A report that knows its sample size (issue 20, scope 6): on 3 raters x 4 images the report shows the
warning block (with the smallest p the Wilcoxon test can reach), no interval leaves the 1-5 scale, the
collapsed subject model is flagged, and no metric is called best from overlapping intervals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipelines import report as cli
from srkeras.mos import analyze, correlation, scores, significance
from srkeras.mos.schema import validate_acr


def _tiny(tmp_path):
    """3 raters x 4 images x 2 methods, votes spread over the whole scale (as a new user's pilot)."""
    rng = np.random.default_rng(0)
    rows = [(f"r{r}", m, f"i{i}", float(np.clip(round(b + rng.normal(0, 1.2)), 1, 5)))
            for r in range(3) for m, b in (("bicubic", 2.0), ("srgan", 4.2)) for i in range(4)]
    rows += [("r0", "bicubic", "i0", 1.0), ("r1", "bicubic", "i0", 1.0), ("r2", "bicubic", "i0", 1.0)]  # all agree
    acr = pd.DataFrame(rows, columns=["rater", "method", "image", "score"]).drop_duplicates(
        ["rater", "method", "image"], keep="last")
    met = pd.DataFrame([(m, f"i{i}", rng.normal(25, 1), rng.random()) for m in ("bicubic", "srgan") for i in range(4)],
                       columns=["method", "image", "psnr", "ssim"])
    acr.to_csv(tmp_path / "ratings.csv", index=False)
    met.to_csv(tmp_path / "metrics.csv", index=False)
    return acr, met


def test_tiny_study_report_warns_and_stays_on_the_scale(tmp_path):
    _tiny(tmp_path)
    out = tmp_path / "out"
    assert cli.main(["--ratings-csv", str(tmp_path / "ratings.csv"), "--metrics-csv", str(tmp_path / "metrics.csv"),
                     "--out", str(out), "--bootstrap", "200", "--quiet"]) == 0
    html = (out / "report.html").read_text()
    assert "id='sample-size-warnings'" in html and "Sample size warning" in html
    assert "p = 2/2^4 = 0.125" in html and "6 images are needed" in html  # 2 x 2^-n < 0.05 first at n = 6
    assert "Only 3 rater(s)" in html
    assert "tracks the listeners best" not in html and "No metric" in html
    s = json.loads((out / "summary.json").read_text())
    assert len(s["warnings"]) >= 2
    lows, highs = [], []
    for name in ("stimuli.csv", "methods.csv"):
        t = pd.read_csv(out / name)
        for c in t.columns:
            if "ci95_low" in c and not c.startswith(("mle_bias", "mle_incons")):
                lows += list(t[c].dropna())
            if "ci95_high" in c and not c.startswith(("mle_bias", "mle_incons")):
                highs += list(t[c].dropna())
    for m in s["methods"].values():
        lows += [v for v in (m["ci95"][0], m["ci95_screened"][0]) if v is not None]
        highs += [v for v in (m["ci95"][1], m["ci95_screened"][1]) if v is not None]
    assert lows and highs and min(lows) >= 1 and max(highs) <= 5
    st = pd.read_csv(out / "stimuli.csv").set_index(["method", "image"])
    assert np.isnan(st.loc[("bicubic", "i0"), "ci95_low"])  # all three votes 1: undefined, not zero-width
    w = pd.read_csv(out / "methods.csv")
    assert (w["ci95_high"] > w["ci95_low"]).all()


def test_collapsed_subject_model_is_flagged(tmp_path):
    acr, _ = _tiny(tmp_path)
    rep = analyze(validate_acr(acr, "x"), n_boot=200)
    collapsed = rep.raters[rep.raters["mle_collapsed"].astype(bool)]
    if len(collapsed):  # with 3 raters x 8 votes the MLE puts >= 1 rater at inconsistency 0
        assert collapsed["mle_inconsistency_ci95_low"].isna().all()
        assert rep.stimuli["mle_ci95_low"].isna().all()
        assert any("collapsed" in n for n in rep.notes)
    assert not ((rep.raters["mle_inconsistency_ci95_low"] == 0) & (rep.raters["mle_inconsistency_ci95_high"] == 0)).any()


def test_scale_interval_hand_checked():
    x = np.array([1.0, 1.0, 2.0])  # mean 4/3, u = 1/12, sd = 1/sqrt(3)
    m, lo, hi = scores.scale_interval(x)
    u, se = 1 / 12, (1 / np.sqrt(3)) / 4 / np.sqrt(3)
    half = stats.t.ppf(0.975, 2) * se / (u * (1 - u))
    z = np.log(u / (1 - u))
    assert m == pytest.approx(4 / 3)
    assert (lo, hi) == pytest.approx((1 + 4 / (1 + np.exp(-(z - half))), 1 + 4 / (1 + np.exp(-(z + half)))))
    assert 1 < lo < m < hi < 5
    assert scores.t_interval(x)[1] < 1  # the plain t interval leaves the scale here
    big = np.random.default_rng(0).integers(2, 5, 400).astype(float)  # mid-scale, many votes: same as t
    assert scores.scale_interval(big) == pytest.approx(scores.t_interval(big), abs=2e-3)
    assert np.isnan(scores.scale_interval([3.0, 3.0, 3.0])[1]) and np.isnan(scores.scale_interval([2.0])[2])


def test_wilcoxon_floor_is_two_over_two_to_the_n():
    assert [significance.min_signed_rank_p(n) for n in (0, 1, 4, 5, 6)] == [1.0, 1.0, 0.125, 0.0625, 0.03125]
    d = np.arange(1, 5)  # all 4 differences positive: the most extreme pattern
    assert stats.wilcoxon(d, alternative="two-sided").pvalue == pytest.approx(significance.min_signed_rank_p(4))
    assert significance.samples_needed(1) == 6 and significance.samples_needed(3) == 7  # 3 * 2/2^7 = 0.047


def test_ranking_names_a_metric_only_from_separated_intervals():
    rng = np.random.default_rng(1)
    mos = rng.uniform(1, 5, 60)
    clear = {"good": {**correlation.correlate(mos, mos + rng.normal(0, 0.2, 60)),
                      **correlation.bootstrap_ci(mos, mos + rng.normal(0, 0.2, 60))},
             "noise": {**correlation.correlate(mos, rng.normal(0, 1, 60)),
                       **correlation.bootstrap_ci(mos, rng.normal(0, 1, 60))}}
    best, why = correlation.ranking_verdict(correlation.metric_ranking(clear))
    assert best == "good" and "tracks the listeners best" in why
    few = np.array([1.0, 2, 3, 4, 5, 3, 2, 4])
    close = {k: {**correlation.correlate(few, few + e), **correlation.bootstrap_ci(few, few + e)}
             for k, e in (("a", rng.normal(0, 1.0, 8)), ("b", rng.normal(0, 1.1, 8)))}
    best, why = correlation.ranking_verdict(correlation.metric_ranking(close))
    assert best is None and why.startswith("No metric")


def test_bootstrap_ci_brackets_the_estimate_and_narrows_with_n():
    rng = np.random.default_rng(2)
    x = rng.normal(size=400)
    y = x + rng.normal(size=400)
    ci = correlation.bootstrap_ci(x, y)
    r = correlation.correlate(x, y)
    assert ci["pearson_ci95"][0] < r["pearson"] < ci["pearson_ci95"][1]
    se = np.sqrt((1 - r["pearson"] ** 2) ** 2 / 400)  # large-sample se of Pearson's r under normality
    assert ci["pearson_ci95"][1] - ci["pearson_ci95"][0] == pytest.approx(2 * 1.96 * se, rel=0.25)
    small = correlation.bootstrap_ci(x[:20], y[:20])
    assert small["spearman_ci95"][1] - small["spearman_ci95"][0] > ci["spearman_ci95"][1] - ci["spearman_ci95"][0]
