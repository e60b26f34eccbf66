"""Inter-rater agreement: Krippendorff's alpha (interval metric) and split-half reliability of MOS."""

from __future__ import annotations

import warnings

import krippendorff
import numpy as np
import pandas as pd

from srkeras.mos.scores import scored


def reliability_matrix(acr: pd.DataFrame) -> np.ndarray:
    """Raters x stimuli matrix of votes, NaN where a rater did not rate a stimulus."""
    a = scored(acr)
    return a.pivot_table(index="rater", columns=["method", "image"], values="score", aggfunc="mean").to_numpy(float)


def krippendorff_alpha(acr: pd.DataFrame) -> float:
    """Krippendorff's alpha with the interval difference d = (c - k)^2 (Krippendorff 2011, eq. 2-3).

    NaN (undefined) without two raters on one stimulus, or when every vote has the same value: then the
    expected disagreement D_e of alpha = 1 - D_o / D_e is 0.
    """
    R = reliability_matrix(acr)
    if R.shape[0] < 2 or np.sum((~np.isnan(R)).sum(0) >= 2) == 0:
        return float("nan")
    if np.unique(R[~np.isnan(R)]).size < 2:
        return float("nan")
    return float(krippendorff.alpha(reliability_data=R, level_of_measurement="interval"))


def split_half(acr: pd.DataFrame, n_splits: int = 200, seed: int = 0) -> dict[str, float]:
    """Split the raters at random into halves, correlate the per-stimulus MOS of the halves (Pearson).

    Returns the mean r over ``n_splits`` splits and its Spearman-Brown full-panel value 2r / (1 + r).
    """
    a = scored(acr)
    t = a.pivot_table(index="rater", columns=["method", "image"], values="score", aggfunc="mean")
    X = t.to_numpy(float)
    if X.shape[0] < 2:
        return {"r": float("nan"), "spearman_brown": float("nan"), "splits": 0}
    rng = np.random.default_rng(seed)
    rs = []
    for _ in range(n_splits):
        perm = rng.permutation(X.shape[0])
        h1, h2 = perm[: len(perm) // 2], perm[len(perm) // 2:]
        with warnings.catch_warnings():  # a stimulus no rater of a half saw: NaN, left out below
            warnings.simplefilter("ignore", RuntimeWarning)
            m1, m2 = np.nanmean(X[h1], 0), np.nanmean(X[h2], 0)
        ok = ~np.isnan(m1) & ~np.isnan(m2)
        if ok.sum() >= 3 and np.std(m1[ok]) > 0 and np.std(m2[ok]) > 0:
            rs.append(np.corrcoef(m1[ok], m2[ok])[0, 1])
    r = float(np.mean(rs)) if rs else float("nan")
    return {"r": r, "spearman_brown": 2 * r / (1 + r) if rs else float("nan"), "splits": len(rs)}
