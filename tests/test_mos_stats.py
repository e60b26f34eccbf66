"""srkeras.mos statistics against independent computations (SciPy, the krippendorff package, own fits)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from srkeras.mos import agreement, correlation, pairs, schema, scores, screening, significance
from srkeras.mos.simulate import simulate_acr, simulate_pairs


@pytest.fixture(scope="module")
def study():
    rng = np.random.default_rng(3)
    q = pd.DataFrame([(m, f"i{i}", loc + rng.normal(0, 0.3)) for m, loc in [("a", 2.0), ("b", 2.6), ("c", 3.6)]
                      for i in range(8)], columns=["method", "image", "quality"])
    acr, _ = simulate_acr(q, n_raters=12, seed=5)
    return acr


def test_t_interval_matches_scipy(study):
    st = scores.stimulus_scores(study)
    for _, r in st.head(5).iterrows():
        x = study[(study["method"] == r["method"]) & (study["image"] == r["image"])]["score"]
        lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
        assert (r["ci95_low"], r["ci95_high"]) == pytest.approx((lo, hi), abs=1e-12)


def test_wilcoxon_and_holm_match_scipy_and_hand(study):
    t = significance.wilcoxon_holm(study)
    means = study.groupby(["image", "method"])["score"].mean().unstack()
    raw = [stats.wilcoxon(means[a], means[b]).pvalue for a, b in zip(t["a"], t["b"])]
    np.testing.assert_allclose(t["p"], raw, rtol=1e-12)
    p = np.array([0.01, 0.04, 0.03, 0.005])  # Holm by hand: sorted .005,.01,.03,.04 times 4,3,2,1
    np.testing.assert_allclose(significance.holm(p), [0.03, 0.06, 0.06, 0.02])
    mat = significance.significance_matrix(t, ["a", "b", "c"])
    assert mat.loc["a", "c"] == mat.loc["c", "a"] == t.set_index(["a", "b"]).loc[("a", "c"), "p_holm"]


def _bt_reference(W):
    """Independent BT fit: direct maximisation of sum W_ij log sigmoid(s_i - s_j) with BFGS."""
    W = np.asarray(W, float)

    def nll(s):
        d = s[:, None] - s[None, :]
        return -(W * -np.logaddexp(0, -d)).sum() + 1e3 * s.mean() ** 2

    s = optimize.minimize(nll, np.zeros(len(W)), method="BFGS", options={"gtol": 1e-10}).x
    return s - s.mean(), optimize.approx_fprime


def test_bradley_terry_matches_direct_mle_and_fisher_se():
    p = simulate_pairs({"x": 0.0, "y": 0.8, "z": 1.6, "w": -0.8}, n_raters=10, images=6, seed=1, tie_prob=0.15)
    W = pairs.win_matrix(p)
    assert W.to_numpy().sum() == len(p)
    assert (p["choice"] == "tie").sum() > 0
    ours = pairs.bt_scores(p).set_index("method").loc[W.index]
    ref, _ = _bt_reference(W.to_numpy())
    np.testing.assert_allclose(ours["bt"], ref, atol=1e-5)
    # standard errors: numerical Hessian of the log-likelihood, gauge fixed by dropping the last method
    Wn = W.to_numpy()

    def ll(t):
        s = np.append(t, 0.0)
        return (Wn * -np.logaddexp(0, -(s[:, None] - s[None, :]))).sum()

    t0 = ref[:-1] - ref[-1]
    eps, k = 1e-4, len(t0)
    H = np.array([[(ll(t0 + eps * (np.eye(k)[i] + np.eye(k)[j])) - ll(t0 + eps * (np.eye(k)[i] - np.eye(k)[j]))
                    - ll(t0 - eps * (np.eye(k)[i] - np.eye(k)[j])) + ll(t0 - eps * (np.eye(k)[i] + np.eye(k)[j])))
                   / (4 * eps**2) for j in range(k)] for i in range(k)])
    cov_d = np.linalg.inv(-H)  # covariance of s_i - s_last
    full = np.zeros((k + 1, k + 1))
    full[:k, :k] = cov_d
    C = np.eye(k + 1) - 1 / (k + 1)  # centring map to the zero-mean gauge
    np.testing.assert_allclose(ours["bt_se"], np.sqrt(np.diag(C @ full @ C.T)), rtol=1e-3)
    assert list(ours.sort_values("bt").index) == ["w", "x", "y", "z"]
    th = pairs.thurstone_case_v(W.to_numpy())
    assert list(W.index[np.argsort(th)]) == ["w", "x", "y", "z"]


def _alpha_reference(R):
    """Krippendorff's alpha (interval) from the coincidence matrix, written out by hand."""
    vals = np.unique(R[~np.isnan(R)])
    o = np.zeros((len(vals), len(vals)))
    for u in R.T:
        u = u[~np.isnan(u)]
        if len(u) < 2:
            continue
        for i in range(len(u)):
            for j in range(len(u)):
                if i != j:
                    o[np.searchsorted(vals, u[i]), np.searchsorted(vals, u[j])] += 1 / (len(u) - 1)
    n_c, n = o.sum(1), o.sum()
    d = (vals[:, None] - vals[None, :]) ** 2
    return 1 - (n - 1) * (o * d).sum() / (np.outer(n_c, n_c) * d).sum()


def test_krippendorff_alpha_matches_hand_computation(study):
    sub = study[study["rater"] != "r003"].copy()
    sub = sub.drop(sub.sample(frac=0.2, random_state=1).index)  # missing votes
    R = agreement.reliability_matrix(sub)
    assert agreement.krippendorff_alpha(sub) == pytest.approx(_alpha_reference(R), abs=1e-10)


def test_split_half_perfect_and_reasonable(study):
    same = study.assign(score=study.groupby(["method", "image"])["score"].transform("first"))
    assert agreement.split_half(same, n_splits=20)["r"] == pytest.approx(1.0)
    sh = agreement.split_half(study, n_splits=50)
    assert 0.5 < sh["r"] < sh["spearman_brown"] < 1


def test_correlations_match_scipy_and_skip_inf():
    x, y = np.array([1.0, 2, 3, 4, np.inf]), np.array([2.0, 1, 4, 3, 9])
    c = correlation.correlate(x, y)
    assert c["n"] == 4
    assert c["pearson"] == pytest.approx(stats.pearsonr(x[:4], y[:4])[0])
    assert c["kendall"] == pytest.approx(stats.kendalltau(x[:4], y[:4])[0])


def test_screening_gold_retest_speed():
    rows = []
    for r in ("good", "badgold", "flaky", "fast"):
        for i in range(8):
            lo = 4.0 if r == "badgold" else 1.0
            rows += [(r, "nn", f"i{i}", lo, "low_anchor", False, 900.0 if r == "fast" else 3000.0),
                     (r, "hr", f"i{i}", 5.0, "high_anchor", False, 900.0 if r == "fast" else 3000.0),
                     (r, "m", f"i{i}", 3.0, "test", False, 3000.0),
                     (r, "m", f"i{i}", 5.0 if r == "flaky" else 3.0, "test", True, 3000.0)]
    acr = pd.DataFrame(rows, columns=["rater", "method", "image", "score", "role", "repeat", "response_ms"])
    s = screening.screen(acr).set_index("rater")
    assert not s.loc["good", "rejected"]
    assert s.loc["badgold", "reasons"][0].startswith("gold")
    assert s.loc["flaky", "reasons"][0].startswith("retest")
    assert s.loc["fast", "reasons"][0].startswith("too_fast")
    assert s.loc["good", "n"] == 24  # repeats are not scored


def test_pair_gold_and_retest():
    p = pd.DataFrame({"rater": ["u"] * 4, "image": ["i"] * 4, "method_a": ["nn", "hr", "x", "y"],
                      "method_b": ["hr", "nn", "y", "x"], "choice": ["a", "b", "a", "a"],
                      "role_a": ["low_anchor", "high_anchor", "test", "test"],
                      "role_b": ["high_anchor", "low_anchor", "test", "test"], "repeat": [False, False, False, True]})
    s = screening.screen(None, p).set_index("rater")
    assert s.loc["u", "gold_accuracy"] == 0 and s.loc["u", "retest_agreement"] == 0
    assert s.loc["u", "rejected"]


def test_csv_errors_name_file_and_line(tmp_path):
    f = tmp_path / "votes.csv"
    f.write_text("rater,method,image,score\nr1,a,i1,3\nr1,b,i1,seven\n")
    with pytest.raises(schema.RatingsFileError, match=r"votes\.csv, line 3: column 'score'"):
        schema.read_acr_csv(f)
    f.write_text("rater,method,image,score\nr1,a,i1,3,4\n")
    with pytest.raises(schema.RatingsFileError, match="line 2: 5 fields"):
        schema.read_acr_csv(f)
    f.write_text("rater,method,score\nr1,a,3\n")
    with pytest.raises(schema.RatingsFileError, match="line 1: missing column"):
        schema.read_acr_csv(f)
    f.write_text("rater,method,image,score\nr1,a,i1,6\n")
    with pytest.raises(schema.RatingsFileError, match="outside 1..5"):
        schema.read_acr_csv(f)
    f.write_text("rater,image,method_a,method_b,choice\nr1,i,a,b,left\n")
    with pytest.raises(schema.RatingsFileError, match="line 2: column 'choice'"):
        schema.read_pairs_csv(f)
    f.write_text("method,image,psnr\na,i,x\n")
    with pytest.raises(schema.RatingsFileError, match="line 2: column 'psnr'"):
        schema.read_metrics_csv(f)


def test_csv_optional_columns_and_duplicates(tmp_path):
    f = tmp_path / "v.csv"
    f.write_text("rater,method,image,score,dataset,role\nr1,a,i1,3,Set5,test\nr1,a,i1,4,Set5,test\nr1,nn,i1,1,Set5,low_anchor\n")
    a = schema.read_acr_csv(f)
    assert list(a["image"]) == ["Set5/i1"] * 3
    # Without a repeat column no vote is a repeat: r1's second session on a/i1 counts (it was dropped).
    assert list(a["repeat"]) == [False, False, False]
    h = scores.histogram(a).set_index("method")
    assert h.loc["a", "hist_3"] == 1 and h.loc["a", "hist_4"] == 1
    assert scores.stimulus_scores(a).set_index("method").loc["a", "n"] == 2
