"""MOS, confidence intervals, histograms, mean ranks and z-scored MOS (ITU-T P.1401, P.913, SRGAN).

Stimulus level: MOS = mean of the votes, 95% CI = MOS +- t(0.975, n-1) s / sqrt(n) (Student t,
ITU-T P.1401 sec. 7.2; ITU-R BT.500 Annex 2 sec. 2.2.1). Method level: MOS = mean of all votes of the
method (SRGAN Table 2) with a percentile bootstrap CI that resamples raters and images independently
(two-way cluster bootstrap: both are random samples, so both clusters enter the interval).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special, stats
from tqdm import tqdm

from srkeras.mos.vocabulary import MethodRole

LEVELS = (1, 2, 3, 4, 5)
SCALE = (1.0, 5.0)  # the ACR scale's ends (ITU-T P.910 five-grade scale)
#: Replicates of the method MOS interval (:func:`method_interval`) wherever it is shown: report, dashboard, admin.
N_BOOT = 2000


def scored(acr: pd.DataFrame) -> pd.DataFrame:
    """The votes that enter scores: test-retest repeats removed."""
    return acr.loc[~acr["repeat"].astype(bool)] if "repeat" in acr.columns else acr


def t_interval(x, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval of the mean (P.1401 eq. 7-3); NaN bounds when n < 2."""
    x = np.asarray(x, float)
    n, m = len(x), float(np.mean(x)) if len(x) else float("nan")
    if n < 2:
        return m, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * np.std(x, ddof=1) / np.sqrt(n)
    return m, m - half, m + half


def scale_interval(x, confidence: float = 0.95, scale: tuple[float, float] = SCALE) -> tuple[float, float, float]:
    """(mean, low, high): a Student-t interval of the mean that stays inside the rating scale.

    The mean is mapped to u = (mean - lo) / (hi - lo) in (0, 1) and the t interval is taken on logit(u)
    with the delta-method standard error se_u / (u (1 - u)), then mapped back (a logit transformation,
    as for proportions; Agresti 2013 sec. 1.4): always strictly inside the scale, asymmetric near its
    ends, equal to P.1401's t interval to first order in the middle. NaN bounds when n < 2 or when the
    votes have no spread (all equal: the data cannot say how wide the interval is, and a zero-width
    interval would claim certainty).
    """
    x = np.asarray(x, float)
    n, m = len(x), float(np.mean(x)) if len(x) else float("nan")
    sd = float(np.std(x, ddof=1)) if n >= 2 else 0.0
    if n < 2 or sd == 0:
        return m, float("nan"), float("nan")
    lo, hi = scale
    u = (m - lo) / (hi - lo)
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / (hi - lo) / np.sqrt(n) / (u * (1 - u))
    z = np.log(u / (1 - u))
    return m, lo + (hi - lo) * float(special.expit(z - half)), lo + (hi - lo) * float(special.expit(z + half))


def stimulus_scores(acr: pd.DataFrame, confidence: float = 0.95, interval: str = "t") -> pd.DataFrame:
    """Per (method, image): ``n, mos, std, ci95_low, ci95_high``: Student t (``interval="t"``, P.1401)
    or the scale-bounded :func:`scale_interval` (``"logit"``, what the report shows)."""
    rows = []
    ci = {"t": t_interval, "logit": scale_interval}[interval]
    for (m, i), g in scored(acr).groupby(["method", "image"], sort=True):
        mean, lo, hi = ci(g["score"].to_numpy(), confidence)
        sd = float(np.std(g["score"], ddof=1)) if len(g) > 1 else float("nan")
        rows.append((m, i, len(g), mean, sd, lo, hi))
    return pd.DataFrame(rows, columns=["method", "image", "n", "mos", "std", "ci95_low", "ci95_high"])


def zscored(acr: pd.DataFrame) -> pd.DataFrame:
    """Votes z-scored per rater, (score - mean_r) / sd_r with sample sd (P.913 sec. 12.5; sureal ZS_MOS)."""
    a = scored(acr).copy()
    g = a.groupby("rater")["score"]
    sd = g.transform(lambda s: np.std(s, ddof=1) if len(s) > 1 else np.nan).replace(0, np.nan)
    a["z"] = (a["score"] - g.transform("mean")) / sd
    return a


def zscore_mos(acr: pd.DataFrame) -> pd.DataFrame:
    """Per (method, image) mean of per-rater z-scores (``zmos``)."""
    return zscored(acr).groupby(["method", "image"], as_index=False)["z"].mean().rename(columns={"z": "zmos"})


def histogram(acr: pd.DataFrame, by=("method",)) -> pd.DataFrame:
    """Vote counts per score level 1..5 (columns ``hist_1`` .. ``hist_5``), SRGAN Fig. 5."""
    a = scored(acr)
    lv = np.clip(np.rint(a["score"]).astype(int), 1, 5)
    t = pd.crosstab([a[c] for c in by], lv).reindex(columns=list(LEVELS), fill_value=0)
    t.columns = [f"hist_{k}" for k in LEVELS]
    return t.reset_index()


def mean_rank(acr: pd.DataFrame) -> pd.Series:
    """Mean rank per method (1 = best) within each (rater, image) block of >= 2 methods, ties averaged."""
    a = scored(acr)
    a = a[a.groupby(["rater", "image"])["method"].transform("nunique") >= 2]
    if a.empty:
        return pd.Series(dtype=float, name="mean_rank")
    a = a.groupby(["rater", "image", "method"], as_index=False)["score"].mean()
    a["rank"] = a.groupby(["rater", "image"])["score"].rank(ascending=False, method="average")
    return a.groupby("method")["rank"].mean().rename("mean_rank")


def _cluster_means(y, w_idx, W, C, onehot):
    wts = W[:, w_idx[0]] * C[:, w_idx[1]]  # (b, n): rater count x image count of every vote
    return (wts * y) @ onehot / np.maximum(wts @ onehot, 1e-300)


def cluster_bootstrap(
    acr: pd.DataFrame,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    progress: bool = False,
    chunk: int = 100,
) -> pd.DataFrame:
    """Per method: ``n, mos, ci95_low, ci95_high, se`` with a two-way (raters x images) bootstrap.

    Each replicate draws raters and images with replacement (Davison & Hinkley 1997, sec. 3.8; Field &
    Welsh 2007); a vote's weight is (times its rater drawn) x (times its image drawn); the method MOS of
    the replicate is the weighted vote mean. CI = percentile interval of the replicates.
    No votes (every rater screened out): no rows, so the caller's merge leaves the MOS undefined (NaN).
    """
    a = scored(acr)
    if a.empty:
        return pd.DataFrame(columns=["method", "n", "mos", "ci95_low", "ci95_high", "se"])
    methods = sorted(a["method"].unique())
    r_codes, raters = pd.factorize(a["rater"])
    i_codes, images = pd.factorize(a["image"])
    m_codes = pd.Categorical(a["method"], categories=methods).codes
    onehot = np.zeros((len(a), len(methods)))
    onehot[np.arange(len(a)), m_codes] = 1.0
    y = a["score"].to_numpy(float)
    rng = np.random.default_rng(seed)
    reps = []
    todo = range(0, n_boot, chunk)
    for start in tqdm(todo, desc="bootstrap", unit="x100", disable=not progress, leave=False):
        b = min(chunk, n_boot - start)
        W = rng.multinomial(len(raters), np.full(len(raters), 1 / len(raters)), size=b).astype(float)
        C = rng.multinomial(len(images), np.full(len(images), 1 / len(images)), size=b).astype(float)
        reps.append(_cluster_means(y, (r_codes, i_codes), W, C, onehot))
    reps = np.vstack(reps)
    den = onehot.sum(0)
    reps[:, den == 0] = np.nan
    q = (1 - confidence) / 2
    lo, hi = np.nanquantile(reps, [q, 1 - q], axis=0)
    mos = (y @ onehot) / den
    return pd.DataFrame(
        {"method": methods, "n": den.astype(int), "mos": mos, "ci95_low": lo, "ci95_high": hi,
         "se": np.nanstd(reps, axis=0, ddof=1)}
    )


def method_interval(acr: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """THE 95 % interval of a method's MOS, one implementation for the report, the dashboard and the admin
    Study page (issue 23: they disagreed): ``method, mos, ci95_low, ci95_high`` of the raters x images
    :func:`cluster_bootstrap` with ``n_boot`` replicates (default :data:`N_BOOT`) and ``seed``."""
    return cluster_bootstrap(acr, n_boot=n_boot, seed=seed)[["method", "mos", "ci95_low", "ci95_high"]]


def method_scores(acr: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0, progress: bool = False) -> pd.DataFrame:
    """Per method: bootstrap MOS/CI, mean rank, z-scored MOS, vote histogram, raters and images."""
    a = scored(acr)
    out = cluster_bootstrap(a, n_boot=n_boot, seed=seed, progress=progress)  # = method_interval's numbers
    z = zscored(a).groupby("method")["z"].mean().rename("zmos")
    extra = a.groupby("method").agg(raters=("rater", "nunique"), images=("image", "nunique"))
    out = out.join(z, on="method").join(mean_rank(a), on="method").join(extra, on="method")
    return out.merge(histogram(a), on="method", how="left")


VOTE_TABLE = ["method", "role", "mos", "std", "n", "ci95", "ci95_low", "ci95_high", "boot_ci95_low", "boot_ci95_high",
              "psnr", "ssim", "n_stimuli"]


def vote_table(acr: pd.DataFrame, metrics: pd.DataFrame | None = None, roles: dict | None = None,
               n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """Quick per-method table (the admin's at-a-glance view; the report has the full analysis).

    One row per method of ``roles`` (``{method: role}``, in that order; default: the voted methods):
    ``mos``, ``std`` (sample) and ``n`` of the votes (repeats left out); ``ci95`` (half width),
    ``ci95_low``, ``ci95_high``: Student t over the votes as if they were independent (P.1401 applied
    to the pooled votes, too narrow when raters or images differ); ``boot_ci95_low``/``boot_ci95_high``:
    :func:`method_interval`, the interval the report and the dashboard show (same numbers); ``psnr``,
    ``ssim``, ``n_stimuli``: mean metric over the method's rows of ``metrics`` (PSNR ``inf`` for HR).
    """
    a = scored(acr)
    if roles is None:
        roles = dict(a.groupby("method")["role"].first()) if "role" in a else {m: MethodRole.TEST.value for m in a["method"]}
    boot = (method_interval(a, n_boot=n_boot, seed=seed).set_index("method") if len(a) else
            pd.DataFrame(columns=["ci95_low", "ci95_high"]))
    rows = []
    for m, role in roles.items():
        x = a.loc[a["method"] == m, "score"].to_numpy(float)
        mos, lo, hi = t_interval(x)
        met = metrics[metrics["method"] == m] if metrics is not None else pd.DataFrame()
        rows.append(dict(
            method=m, role=role, mos=mos, std=float(np.std(x, ddof=1)) if len(x) > 1 else float("nan"), n=len(x),
            ci95=(hi - mos), ci95_low=lo, ci95_high=hi,
            boot_ci95_low=boot["ci95_low"].get(m, float("nan")), boot_ci95_high=boot["ci95_high"].get(m, float("nan")),
            psnr=float(met["psnr"].mean()) if "psnr" in met and len(met) else float("nan"),
            ssim=float(met["ssim"].mean()) if "ssim" in met and met["ssim"].notna().any() else float("nan"),
            n_stimuli=len(met)))
    return pd.DataFrame(rows, columns=VOTE_TABLE)
