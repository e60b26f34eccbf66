"""Objective vs subjective: Pearson, Spearman and Kendall (tau-b) of MOS with every objective metric,
and the metrics ranked by how well they agree with the listeners (:func:`metric_ranking`).

Non-finite metric values (e.g. PSNR of HR = inf) are left out of that metric's correlation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from srkeras.metrics.registry import HIGHER_IS_BETTER, METRICS
from srkeras.mos.schema import metric_columns
from srkeras.mos.vocabulary import A_SHARE


def correlate(x, y) -> dict[str, float]:
    """``{"pearson", "spearman", "kendall", "n"}`` over the pairs where both are finite; NaN when n < 3."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return {"pearson": float("nan"), "spearman": float("nan"), "kendall": float("nan"), "n": int(len(x))}
    return {"pearson": float(stats.pearsonr(x, y)[0]), "spearman": float(stats.spearmanr(x, y)[0]),
            "kendall": float(stats.kendalltau(x, y)[0]), "n": int(len(x))}


def metric_correlations(scores: pd.DataFrame, metrics: pd.DataFrame, on, value: str = "mos") -> dict[str, dict]:
    """Correlate ``scores[value]`` with every metric column, joined on ``on`` (stimulus or method level)."""
    cols = metric_columns(metrics)
    if not cols or scores is None or scores.empty:
        return {}
    m = metrics.groupby(on, as_index=False)[cols].mean() if list(on) == ["method"] else metrics
    d = scores[[*on, value]].merge(m, on=list(on), how="inner")
    return {c: correlate(d[value], d[c]) for c in cols}


def method_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per-method mean of each metric (inf kept: HR PSNR stays inf)."""
    return metrics.groupby("method", as_index=False)[metric_columns(metrics)].mean()


def within_image(pairs: pd.DataFrame, metrics: pd.DataFrame) -> dict[str, dict]:
    """Pair studies: per image, correlate each method's win rate with the metric across methods; mean
    and median over images of each coefficient (images with < 3 finite methods are skipped)."""
    cols = metric_columns(metrics)
    p = pairs[~pairs["repeat"]] if "repeat" in pairs.columns else pairs
    wa = p["choice"].map(A_SHARE)
    long = pd.concat([
        pd.DataFrame({"image": p["image"], "method": p["method_a"], "win": wa}),
        pd.DataFrame({"image": p["image"], "method": p["method_b"], "win": 1 - wa}),
    ])
    rate = long.groupby(["image", "method"], as_index=False)["win"].mean().merge(metrics, on=["method", "image"])
    out = {}
    for c in cols:
        per = [correlate(g["win"], g[c]) for _, g in rate.groupby("image")]
        per = [r for r in per if not np.isnan(r["pearson"])]
        out[c] = {k: float(np.mean([r[k] for r in per])) if per else float("nan")
                  for k in ("pearson", "spearman", "kendall")}
        out[c].update({f"median_{k}": float(np.median([r[k] for r in per])) if per else float("nan")
                       for k in ("pearson", "spearman", "kendall")})
        out[c]["images"] = len(per)
    return out


#: Metrics where a lower value means better quality (the sign flips in :func:`disagreements` and
#: :func:`metric_ranking`): every metric of :mod:`srkeras.metrics` but those it marks higher-is-better
#: (PSNR, SSIM), and the usual lower-is-better names of metrics files made elsewhere.
LOWER_IS_BETTER = frozenset(set(METRICS) - HIGHER_IS_BETTER) | {"pi", "mse", "rmse", "mae", "fid"}


def orientation(metric: str) -> float:
    """-1 for a lower-is-better metric, +1 otherwise (unknown names are taken as higher-is-better)."""
    return -1.0 if metric.lower() in LOWER_IS_BETTER else 1.0


def _oriented(c: dict | None, sign: float) -> dict:
    c = c or {}
    return {k: sign * float(c[k]) if c.get(k) is not None else float("nan") for k in ("spearman", "pearson", "kendall")}


def metric_ranking(stimuli: dict, methods: dict | None = None, within_image: dict | None = None) -> list[dict]:
    """The metrics ranked by how well each would have replaced the survey.

    Per metric, the correlations of :func:`metric_correlations` with the sign of lower-is-better metrics
    flipped (:func:`orientation`), so that a higher value always means "agrees with the listeners" and
    metrics of both kinds compare: ``spearman`` / ``pearson`` / ``kendall`` of per-stimulus MOS
    (``stimuli``; with pair votes only, the mean within-image correlation of win rates,
    ``within_image``), ``methods_spearman`` of per-method MOS, ``n`` and ``basis``. Ranked by that
    Spearman, then Kendall and Pearson (NaN last); ``rank`` 1 is the best stand-in.
    """
    basis, corr = ("stimuli", stimuli) if stimuli else ("within_image", within_image or {})
    rows = []
    for metric, c in corr.items():
        sign = orientation(metric)
        r = {"metric": metric, "better": "lower" if sign < 0 else "higher", **_oriented(c, sign),
             "methods_spearman": _oriented((methods or {}).get(metric), sign)["spearman"],
             "n": int(c.get("n", c.get("images", 0)) or 0), "basis": basis}
        rows.append(r)

    def key(r):
        return tuple(-v if np.isfinite(v) else np.inf for v in (r["spearman"], r["kendall"], r["pearson"]))

    rows.sort(key=key)
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def disagreements(methods: pd.DataFrame, tests: pd.DataFrame, metric: str) -> list[dict]:
    """Method pairs the listeners separate significantly (Holm) that the metric ranks the other way."""
    if metric not in methods or tests is None or tests.empty:
        return []
    sign = orientation(metric)
    mos, val = methods.set_index("method")["mos"], methods.set_index("method")[metric]
    out = []
    for _, t in tests[tests["significant"]].iterrows():
        a, b = (t["a"], t["b"]) if mos[t["a"]] > mos[t["b"]] else (t["b"], t["a"])
        if np.isfinite(val[a]) and np.isfinite(val[b]) and sign * (val[a] - val[b]) < 0:
            out.append({"better_by_mos": a, "worse_by_mos": b, "mos": [float(mos[a]), float(mos[b])],
                        metric: [float(val[a]), float(val[b])], "p_holm": float(t["p_holm"])})
    return out
