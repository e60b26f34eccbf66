"""Paired two-sided Wilcoxon signed-rank tests between methods with Holm correction (SRGAN sec. 3.4)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats

from srkeras.mos.scores import scored


def holm(p) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values: p_(i) * (m - i + 1), running max, capped at 1."""
    p = np.asarray(p, float)
    order = np.argsort(p)
    m = len(p)
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def per_image_means(acr: pd.DataFrame) -> pd.DataFrame:
    """Images x methods table of per-image MOS (the paired samples of the test)."""
    return scored(acr).pivot_table(index="image", columns="method", values="score", aggfunc="mean")


def wilcoxon_holm(acr: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Every method pair: ``a, b, n_images, median_diff, statistic, p, p_holm, significant, min_p,
    min_p_holm`` (the smallest p, and Holm-adjusted p, that ``n_images`` allow: :func:`min_signed_rank_p`).

    Samples are per-image MOS of the two methods on the images both were rated on; scipy's two-sided
    ``wilcoxon`` (exact for small n without ties, normal approximation otherwise; zero differences
    dropped, Wilcoxon's convention). The family of all pairs is corrected with Holm.
    """
    t = per_image_means(acr)
    rows = []
    for a, b in itertools.combinations(sorted(t.columns), 2):
        d = t[[a, b]].dropna()
        diff = (d[a] - d[b]).to_numpy()
        if len(d) == 0 or not np.any(diff != 0):
            stat, p = float("nan"), 1.0
        else:
            res = stats.wilcoxon(d[a], d[b], alternative="two-sided")
            stat, p = float(res.statistic), float(res.pvalue)
        rows.append((a, b, len(d), float(np.median(diff)) if len(d) else float("nan"), stat, p))
    out = pd.DataFrame(rows, columns=["a", "b", "n_images", "median_diff", "statistic", "p"])
    out["p_holm"] = holm(out["p"].to_numpy()) if len(out) else []
    out["significant"] = out["p_holm"] < alpha
    out["min_p"] = [min_signed_rank_p(n) for n in out["n_images"]]
    out["min_p_holm"] = np.minimum(out["min_p"] * len(out), 1.0)
    return out


def min_signed_rank_p(n: int) -> float:
    """Smallest two-sided p the Wilcoxon signed-rank test can give with ``n`` paired samples: 2 / 2^n
    (exact null distribution: all 2^n sign patterns equally likely, the most extreme one each side);
    1 for n = 0. Zero differences and ties only make it larger."""
    return float(min(1.0, 2.0 / 2.0**n)) if n > 0 else 1.0


def samples_needed(pairs: int, alpha: float = 0.05) -> int:
    """Fewest paired samples (images) with which the smallest Holm-adjusted p of a family of ``pairs``
    tests, pairs x 2 / 2^n, falls below ``alpha``."""
    n = 1
    while max(pairs, 1) * min_signed_rank_p(n) >= alpha:
        n += 1
    return n


def significance_matrix(tests: pd.DataFrame, methods) -> pd.DataFrame:
    """Square methods x methods matrix of Holm-adjusted p-values (diagonal NaN)."""
    mat = pd.DataFrame(np.nan, index=list(methods), columns=list(methods))
    for _, r in tests.iterrows():
        mat.loc[r["a"], r["b"]] = mat.loc[r["b"], r["a"]] = r["p_holm"]
    return mat
