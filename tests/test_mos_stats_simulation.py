"""Simulated studies with a known truth: planted random raters, order recovery, CI coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd

from srkeras.mos import scores, screening, subject_models
from srkeras.mos.simulate import _expected_score, simulate_acr

LOCS = {"m1": 1.8, "m2": 2.6, "m3": 3.3, "m4": 4.0}
IMG_SD, BIAS_SD, NOISE_SD = 0.3, 0.3, 0.7


def _study(seed, n_images=12, n_raters=15, n_random=0):
    rng = np.random.default_rng(seed)
    eff = rng.normal(0, IMG_SD, n_images)
    q = pd.DataFrame([(m, f"i{i}", loc + eff[i]) for m, loc in LOCS.items() for i in range(n_images)],
                     columns=["method", "image", "quality"])
    acr, planted = simulate_acr(q, n_raters=n_raters, bias_sd=BIAS_SD, noise_sd=NOISE_SD, n_random=n_random,
                                seed=seed + 1000)
    return q, acr, planted


def test_planted_random_raters_rejected_and_order_recovered():
    q, acr, planted = _study(7, n_images=20, n_raters=24, n_random=4)
    s = screening.screen(acr).set_index("rater")
    random = set(planted.loc[planted["random"], "rater"])
    assert set(s.index[s["rejected"]]) == random
    assert all(any(w.startswith("bt500") for w in s.loc[r, "reasons"]) for r in random)
    fit = subject_models.mle(acr)["raters"].set_index("rater")
    assert set(fit["mle_inconsistency"].nlargest(4).index) == random
    keep = acr[~acr["rater"].isin(random)]
    m = scores.cluster_bootstrap(keep, n_boot=200).set_index("method")
    assert list(m["mos"].sort_values().index) == list(LOCS)


def test_ci_coverage_near_nominal():
    stim_hits, meth_hits = [], []
    sd_all = np.sqrt(BIAS_SD**2 + NOISE_SD**2)
    for seed in range(60):
        q, acr, _ = _study(seed)
        st = scores.stimulus_scores(acr).merge(q, on=["method", "image"])
        truth = _expected_score(st["quality"].to_numpy(), sd_all)  # E over raters of the clipped vote
        stim_hits += list((st["ci95_low"] <= truth) & (truth <= st["ci95_high"]))
        m = scores.cluster_bootstrap(acr, n_boot=300, seed=seed)
        truth_m = _expected_score(np.array([LOCS[k] for k in m["method"]]), np.sqrt(IMG_SD**2 + sd_all**2))
        meth_hits += list((m["ci95_low"] <= truth_m) & (truth_m <= m["ci95_high"]))
    stim_cov, meth_cov = np.mean(stim_hits), np.mean(meth_hits)
    print(f"coverage: stimulus t {stim_cov:.3f} (n={len(stim_hits)}), method bootstrap {meth_cov:.3f} (n={len(meth_hits)})")
    assert 0.92 <= stim_cov <= 0.98
    # the two-way (pigeonhole) bootstrap is conservative when vote noise dominates (Owen 2007): >= nominal
    assert 0.93 <= meth_cov <= 1.0
