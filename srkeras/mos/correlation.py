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


def _row_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = x - x.mean(1, keepdims=True), y - y.mean(1, keepdims=True)
    den = np.sqrt((x * x).sum(1) * (y * y).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (x * y).sum(1) / np.where(den > 0, den, 1), np.nan)


def bootstrap_ci(x, y, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict[str, list[float]]:
    """``{"pearson_ci95": [lo, hi], "spearman_ci95": [lo, hi]}``: percentile bootstrap over the points
    (stimuli or methods: rows resampled with replacement), pairs where both are finite; replicates with
    no spread are left out. The same ``seed`` draws the same rows for every metric of one study, so
    intervals of different metrics are paired. NaN when fewer than 3 points."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    nan = {"pearson_ci95": [float("nan")] * 2, "spearman_ci95": [float("nan")] * 2}
    if len(x) < 3:
        return nan
    idx = np.random.default_rng(seed).integers(0, len(x), (n_boot, len(x)))
    xs, ys = x[idx], y[idx]
    q = [50 * (1 - confidence), 50 * (1 + confidence)]
    out = {}
    for name, (a, b) in {"pearson": (xs, ys), "spearman": (stats.rankdata(xs, axis=1), stats.rankdata(ys, axis=1))}.items():
        r = _row_pearson(a, b)
        r = r[np.isfinite(r)]
        out[f"{name}_ci95"] = [float(v) for v in np.percentile(r, q)] if len(r) else nan[f"{name}_ci95"]
    return out


def metric_correlations(scores: pd.DataFrame, metrics: pd.DataFrame, on, value: str = "mos",
                        n_boot: int = 1000, seed: int = 0) -> dict[str, dict]:
    """Correlate ``scores[value]`` with every metric column, joined on ``on`` (stimulus or method level),
    each with the :func:`bootstrap_ci` intervals (``n_boot=0``: none)."""
    cols = metric_columns(metrics)
    if not cols or scores is None or scores.empty:
        return {}
    m = metrics.groupby(on, as_index=False)[cols].mean() if list(on) == ["method"] else metrics
    d = scores[[*on, value]].merge(m, on=list(on), how="inner")
    return {c: {**correlate(d[value], d[c]), **(bootstrap_ci(d[value], d[c], n_boot, seed) if n_boot else {})}
            for c in cols}


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
    out = {k: sign * float(c[k]) if c.get(k) is not None else float("nan") for k in ("spearman", "pearson", "kendall")}
    lo, hi = (sign * float(v) if v is not None else float("nan") for v in c.get("spearman_ci95", [None, None]))
    out["spearman_ci95_low"], out["spearman_ci95_high"] = (lo, hi) if sign > 0 else (hi, lo)
    return out


def metric_ranking(stimuli: dict, methods: dict | None = None, within_image: dict | None = None) -> list[dict]:
    """The metrics ranked by how well each would have replaced the survey.

    Per metric, the correlations of :func:`metric_correlations` with the sign of lower-is-better metrics
    flipped (:func:`orientation`), so that a higher value always means "agrees with the listeners" and
    metrics of both kinds compare: ``spearman`` / ``pearson`` / ``kendall`` of per-stimulus MOS
    (``stimuli``; with pair votes only, the mean within-image correlation of win rates,
    ``within_image``) with ``spearman_ci95_low/high`` (bootstrap over stimuli, oriented; NaN for the
    within-image basis), ``methods_spearman`` of per-method MOS, ``n`` and ``basis``. Ranked by that
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


def ranking_verdict(rows: list[dict]) -> tuple[str | None, str]:
    """(the metric that tracks the listeners best or None, one sentence saying so or why none does).

    A metric is named only when its oriented Spearman interval (bootstrap over stimuli) lies wholly
    above every other metric's and above 0; overlapping intervals make the metrics indistinguishable,
    whatever their point values (a ranking of overlapping intervals is noise).
    """
    if not rows:
        return None, "No metric to rank."
    best = rows[0]
    lo = best.get("spearman_ci95_low", float("nan"))
    if not np.isfinite(best["spearman"]) or not np.isfinite(lo):
        return None, (f"No metric is distinguishable: the correlations have no confidence interval here "
                      f"({best['n']} points), so the order of the table is not evidence.")
    if lo <= 0:
        return None, (f"No metric agrees with the listeners distinguishably from chance: the best one, "
                      f"{best['metric']}, has Spearman {best['spearman']:.3f} with a 95% interval "
                      f"[{lo:.3f}, {best['spearman_ci95_high']:.3f}] that includes 0.")
    overlap = [r["metric"] for r in rows[1:] if not r.get("spearman_ci95_high", np.inf) < lo]
    if overlap:
        return None, (f"No metric is distinguishable: {best['metric']} ranks first (Spearman {best['spearman']:.3f}, "
                      f"95% interval [{lo:.3f}, {best['spearman_ci95_high']:.3f}]) but its interval overlaps "
                      f"those of {', '.join(overlap)}.")
    return best["metric"], (f"{best['metric']} tracks the listeners best here (Spearman {best['spearman']:.3f}, 95% "
                            f"interval [{lo:.3f}, {best['spearman_ci95_high']:.3f}], above every other metric's).")


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
