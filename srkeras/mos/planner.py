"""Sample-size planner (issue 20, scope 5): how many raters, images and pair comparisons a study needs to
detect a given difference with power 0.8 at alpha 0.05, by simulation from a pilot study's fitted
subject model.

ACR (:func:`plan_acr`): the pilot's P.913 sec. 12.6 model (:func:`srkeras.mos.subject_models.mle`) gives
the rater bias spread, each rater's inconsistency v_s, the content ambiguity a_c and the spread of the
stimulus qualities left when method and image effects are removed (the method x image interaction, its
sampling noise subtracted). Simulated studies: two methods whose latent quality differs by ``d`` (vote
scale, centred on the pilot's mean vote), ``images`` source images, ``raters`` raters each voting once
on every stimulus (so votes per stimulus = raters), votes rounded and clipped to 1..5 as real ones are.
The test is the report's (:mod:`srkeras.mos.significance`): a two-sided paired Wilcoxon signed-rank test
on per-image MOS (``test="t"``: a paired t test, whose power has a closed form to check against).
Alpha is per comparison: with k method pairs under Holm, plan with alpha / k (Bonferroni, Holm's first step).

Pairs (:func:`plan_pairs`): two methods whose Bradley-Terry log-strengths differ by ``delta`` (P(better
wins) = 1 / (1 + e^-delta)), ties with the pilot's tie rate; the test is a two-sided exact binomial
(sign) test on the non-tie answers of that pair.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
from scipy import stats

from srkeras.mos import subject_models
from srkeras.mos.scores import SCALE, scored

RATERS = (3, 5, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60)
IMAGES = (4, 6, 8, 10, 15, 20, 30)
COMPARISONS = (10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 300, 500)


def pilot_model(acr: pd.DataFrame) -> dict:
    """The simulation's parameters from a pilot's ACR votes (see the module docstring)."""
    fit = subject_models.mle(acr)
    st = fit["stimuli"]
    q = st.pivot_table(index="image", columns="method", values="mle")
    resid = q.sub(q.mean(1), axis=0).sub(q.mean(0), axis=1) + q.stack().mean()
    n_i, n_m = q.shape
    dof = max((n_i - 1) * (n_m - 1), 1)
    inter = float(np.nansum(resid.to_numpy() ** 2) / dof - np.mean(st["mle_std"] ** 2)) if n_i > 1 and n_m > 1 else 0.0
    v = fit["raters"]["mle_inconsistency"].to_numpy(float)
    return {"mean_vote": float(scored(acr)["score"].mean()), "bias_sd": float(np.std(fit["raters"]["mle_bias"], ddof=1)),
            "inconsistency": [float(x) for x in v], "inconsistency_median": float(np.median(v)),
            "ambiguity_rms": float(np.sqrt(np.mean(fit["images"]["ambiguity"] ** 2))),
            "interaction_sd": float(np.sqrt(max(inter, 0.0))),
            "image_sd": float(np.std(q.mean(1), ddof=1)) if n_i > 1 else 0.0,
            "pilot_raters": int(len(v)), "pilot_images": int(n_i)}


@functools.lru_cache(maxsize=128)
def _exact_cdf(n: int) -> np.ndarray:
    """P(W+ <= w), w = 0 .. n(n+1)/2, under the exact null (counts of the 2^n sign patterns of ranks 1..n)."""
    c = np.zeros(n * (n + 1) // 2 + 1)
    c[0] = 1
    for k in range(1, n + 1):
        c[k:] = c[k:] + c[:-k].copy()
    return np.cumsum(c) / c.sum()


def signed_rank_p(d) -> float:
    """Two-sided Wilcoxon signed-rank p of differences ``d`` (see :func:`signed_rank_rows`)."""
    return float(signed_rank_rows(np.asarray(d, float)[None, :])[0])


def signed_rank_rows(D: np.ndarray) -> np.ndarray:
    """Two-sided Wilcoxon signed-rank p of every row of ``D`` as scipy's ``wilcoxon`` gives it (zeros
    dropped): exact null distribution where the row's non-zero |d| have no ties, else the normal
    approximation with the tie-corrected variance; 1 for a row of zeros. Vectorised (scipy falls back
    to a slow permutation test on tied data, and the planner tests thousands of rows)."""
    a, nz = np.abs(D), D != 0
    n = nz.sum(1)
    z = (~nz).sum(1)
    r = stats.rankdata(a, axis=1) - z[:, None]  # zeros take the lowest ranks: shift the others down
    w = np.where(D > 0, r, 0).sum(1)
    t = ((a[:, :, None] == a[:, None, :]) & nz[:, None, :]).sum(2)  # size of each element's tie group
    tie = np.where(nz, t**2 - 1, 0).sum(1)  # = sum over groups of t^3 - t
    var = n * (n + 1) * (2 * n + 1) / 24 - tie / 48
    with np.errstate(invalid="ignore", divide="ignore"):
        p = 2 * stats.norm.sf(np.abs(w - n * (n + 1) / 4) / np.sqrt(var))
    p = np.where(var > 0, p, 1.0)
    exact = (tie == 0) & (n > 0)
    for k in np.unique(n[exact]):
        rows = exact & (n == k)
        cdf, wk = _exact_cdf(int(k)), np.rint(w[rows]).astype(int)
        lo, hi = cdf[wk], 1 - np.where(wk >= 1, cdf[np.maximum(wk - 1, 0)], 0.0)
        p[rows] = np.minimum(1.0, 2 * np.minimum(lo, hi))
    return np.where(n > 0, p, 1.0)


def _pvalues(diff: np.ndarray, test: str) -> np.ndarray:
    """Two-sided p of every row of per-image MOS differences (rows without a non-zero difference: 1)."""
    if test == "wilcoxon":
        return signed_rank_rows(diff)
    p = np.ones(len(diff))
    ok = np.any(diff != 0, axis=1)
    if ok.any():
        with np.errstate(invalid="ignore", divide="ignore"):
            p[ok] = np.nan_to_num(stats.ttest_1samp(diff[ok], 0.0, axis=1).pvalue, nan=1.0)
    return p


def simulate_power(model: dict, d: float, raters: int, images: int, alpha: float = 0.05, n_sim: int = 400,
                   seed: int = 0, test: str = "wilcoxon", discrete: bool = True) -> float:
    """Share of ``n_sim`` simulated two-method studies whose test rejects at ``alpha`` (``discrete=False``:
    votes left continuous, the normal model with known variances of the closed-form check)."""
    rng = np.random.default_rng([seed, raters, images])
    lo, hi = SCALE
    centre = np.array([-d / 2, d / 2]) + model["mean_vote"]
    q = (centre[None, None, :] + rng.normal(0, model["image_sd"], (n_sim, images, 1))
         + rng.normal(0, model["interaction_sd"], (n_sim, images, 2)))
    b = rng.normal(0, model["bias_sd"], (n_sim, raters, 1, 1))
    v = rng.choice(np.asarray(model["inconsistency"], float), (n_sim, raters, 1, 1))
    sd = np.sqrt(v**2 + model["ambiguity_rms"] ** 2)
    x = q[:, None] + b + sd * rng.standard_normal((n_sim, raters, images, 2))
    if discrete:
        x = np.clip(np.rint(x), lo, hi)
    mos = x.mean(1)
    return float(np.mean(_pvalues(mos[..., 1] - mos[..., 0], test) < alpha))


def analytic_t_power(model: dict, d: float, raters: int, images: int, alpha: float = 0.05) -> float:
    """Closed-form power of the paired t test in the continuous model: per-image MOS differences are
    N(d, s^2) with s^2 = 2 eta^2 + 2 E[v^2 + a^2] / raters (rater bias cancels in a paired difference),
    so T is noncentral t with n - 1 degrees of freedom and noncentrality d sqrt(n) / s."""
    v2 = float(np.mean(np.asarray(model["inconsistency"], float) ** 2))
    s = np.sqrt(2 * model["interaction_sd"] ** 2 + 2 * (v2 + model["ambiguity_rms"] ** 2) / raters)
    df, nc = images - 1, d * np.sqrt(images) / s
    c = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(c, df, nc) + stats.nct.cdf(-c, df, nc))


def plan_acr(acr: pd.DataFrame, d: float = 0.3, power: float = 0.8, alpha: float = 0.05, n_sim: int = 300,
             seed: int = 0, raters=RATERS, images=IMAGES, test: str = "wilcoxon") -> dict:
    """Power over a raters x images grid and, per image count, the fewest raters reaching ``power``."""
    model = pilot_model(acr)
    rows = [{"raters": r, "images": i, "votes_per_stimulus": r,
             "power": simulate_power(model, d, r, i, alpha, n_sim, seed, test)} for i in images for r in raters]
    needed = []
    for i in images:
        ok = [x["raters"] for x in rows if x["images"] == i and x["power"] >= power]
        needed.append({"images": i, "raters": min(ok) if ok else None})
    return {"difference": d, "power_target": power, "alpha": alpha, "simulations": n_sim, "model": model,
            "test": ("two-sided paired Wilcoxon signed-rank test on per-image MOS (the report's test)"
                     if test == "wilcoxon" else "two-sided paired t test on per-image MOS"),
            "table": rows, "needed": needed}


def sign_test_p(k, n) -> np.ndarray:
    """Two-sided exact binomial test of P = 1/2 (k wins of n): min(1, 2 min(P(K <= k), P(K >= k))), which is
    scipy's ``binomtest(k, n).pvalue`` for this symmetric null; 1 where n = 0."""
    k, n = np.asarray(k), np.asarray(n)
    p = np.minimum(1.0, 2 * np.minimum(stats.binom.cdf(k, n, 0.5), stats.binom.sf(k - 1, n, 0.5)))
    return np.where(n > 0, p, 1.0)


def exact_sign_power(n: int, delta: float, alpha: float = 0.05) -> float:
    """Closed-form power of the two-sided exact binomial test on ``n`` tie-free answers."""
    p = 1 / (1 + np.exp(-delta))
    k = np.arange(n + 1)
    return float(stats.binom.pmf(k, n, p)[sign_test_p(k, n) < alpha].sum())


def plan_pairs(pairs: pd.DataFrame | None, delta: float = 0.5, power: float = 0.8, alpha: float = 0.05,
               n_sim: int = 2000, seed: int = 0, comparisons=COMPARISONS) -> dict:
    """Power over numbers of answers per method pair, ties at the pilot's rate, and the fewest reaching it."""
    p_rep = pairs[~pairs["repeat"].astype(bool)] if pairs is not None and "repeat" in pairs else pairs
    tie = float((p_rep["choice"] == "tie").mean()) if p_rep is not None and len(p_rep) else 0.0
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-delta))
    rows = []
    for n in comparisons:
        m = rng.binomial(n, 1 - tie, n_sim)
        k = rng.binomial(m, p)
        rows.append({"comparisons_per_pair": n, "power": float(np.mean(sign_test_p(k, m) < alpha))})
    ok = [x["comparisons_per_pair"] for x in rows if x["power"] >= power]
    return {"bt_difference": delta, "win_probability": p, "tie_rate": tie, "power_target": power, "alpha": alpha,
            "simulations": n_sim, "test": "two-sided exact binomial (sign) test on the pair's non-tie answers",
            "table": rows, "needed": min(ok) if ok else None}


def _acr_text(plan: dict) -> list[str]:
    lines = [f"ACR: detect a MOS difference of {plan['difference']:g} with power {plan['power_target']:g} at alpha "
             f"{plan['alpha']:g} ({plan['test']}; {plan['simulations']} simulated studies per design; pilot: "
             f"{plan['model']['pilot_raters']} raters, {plan['model']['pilot_images']} images).",
             "  images  raters needed (= votes per stimulus)"]
    for x in plan["needed"]:
        lines.append(f"  {x['images']:>6}  {x['raters'] if x['raters'] is not None else 'more than ' + str(max(RATERS))}")
    return lines


def plan_files(acr, pairs, d: float = 0.3, delta: float = 0.5, power: float = 0.8, alpha: float = 0.05,
               n_sim: int = 300, seed: int = 0) -> tuple[dict[str, bytes], str]:
    """(``{"plan.json", "plan.csv"}`` as bytes, the table as text) of a pilot (ACR and/or pairs)."""
    import json

    from srkeras.mos.report import clean

    out, lines, rows = {}, [], []
    if acr is not None and len(acr):
        out["acr"] = plan_acr(acr, d, power, alpha, n_sim, seed)
        lines += _acr_text(out["acr"])
        rows += [{"design": "acr", **x} for x in out["acr"]["table"]]
    if pairs is not None and len(pairs):
        out["pairs"] = plan_pairs(pairs, delta, power, alpha, max(n_sim, 1000), seed)
        pp = out["pairs"]
        lines.append(f"Pairs: detect a Bradley-Terry difference of {delta:g} (the better method wins "
                     f"{pp['win_probability']:.0%}; ties {pp['tie_rate']:.0%}) with power {power:g} at alpha "
                     f"{alpha:g} ({pp['test']}): {pp['needed'] or 'more than ' + str(max(COMPARISONS))} answers "
                     "per method pair.")
        rows += [{"design": "pairs", **x} for x in pp["table"]]
    text = "\n".join(lines)
    return {"plan.json": json.dumps(clean(out), indent=2, allow_nan=False).encode(),
            "plan.csv": pd.DataFrame(rows).to_csv(index=False, lineterminator="\n").encode()}, text
