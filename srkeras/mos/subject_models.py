"""Subject models: ITU-T P.913 bias removal and the maximum-likelihood model of P.910 Annex E / P.913 12.6.

The MLE model (Li & Bampis 2017; Netflix sureal ``MaximumLikelihoodEstimationModel``) explains each vote
as X_es = x_e + B_es + A_es with B_es ~ N(b_s, v_s^2) (rater bias and inconsistency) and A_es ~
N(0, a_c(e)^2) (ambiguity of the content c(e), here the source image), so X_es ~ N(x_e + b_s, v_s^2 +
a_c^2). Stimulus e = (method, image), rater s, content c = image.
"""

from __future__ import annotations

import collections

import numpy as np
import pandas as pd
from scipy import optimize, stats

from srkeras.mos.scores import scored

_FLOOR = 1e-12  # keeps v_s^2 + a_c^2 > 0 when both reach their bound 0


def p913_bias(acr: pd.DataFrame) -> tuple[pd.Series, pd.DataFrame]:
    """P.913 sec. 12.4 bias removal: b_s = mean over the rater's stimuli of (X_es - MOS_e), eq. 12-2..12-4.

    Returns (bias per rater, the votes with ``score`` replaced by X_es - b_s).
    """
    a = scored(acr).copy()
    mos = a.groupby(["method", "image"])["score"].transform("mean")
    bias = (a["score"] - mos).groupby(a["rater"]).mean().rename("p913_bias")
    a["score"] = a["score"] - a["rater"].map(bias)
    return bias, a


def _nll(theta, X, M, cidx, E, S, C):
    x, b, v, a = theta[:E], theta[E:E + S], theta[E + S:E + 2 * S], theta[E + 2 * S:]
    ac = a[cidx][:, None]
    var = v[None, :] ** 2 + ac**2 + _FLOOR
    r = np.where(M, X - x[:, None] - b[None, :], 0.0)
    ll = M * (-0.5 * np.log(2 * np.pi * var) - r**2 / (2 * var))
    g_mean = M * r / var
    g_var = M * (r**2 / var**2 - 1 / var)  # d ll / d var, times 2 sigma below
    gx, gb = g_mean.sum(1), g_mean.sum(0)
    gv = v * g_var.sum(0)
    ga = a * np.bincount(cidx, weights=g_var.sum(1), minlength=C)
    return -ll.sum(), -np.concatenate([gx, gb, gv, ga])


def _matrix(acr: pd.DataFrame):
    a = scored(acr)
    t = a.pivot_table(index=["method", "image"], columns="rater", values="score", aggfunc="mean")
    images = sorted(t.index.get_level_values("image").unique())
    cidx = pd.Categorical(t.index.get_level_values("image"), categories=images).codes
    X = t.to_numpy(float)
    return t, images, cidx, X, ~np.isnan(X)


def _std(X, M, x, b, v, a, cidx):
    """Observed-information standard errors, as in sureal (diagonal of the Hessian, 'simplified')."""
    ac = a[cidx][:, None]
    var = v[None, :] ** 2 + ac**2 + _FLOOR
    r = np.where(M, X - x[:, None] - b[None, :], 0.0)
    x_std = 1 / np.sqrt((M / var).sum(1))
    b_std = 1 / np.sqrt((M / var).sum(0))
    lv = M * ((v[None, :] ** 2 - ac**2) / var**2 + r**2 * (ac**2 - 3 * v[None, :] ** 2) / var**3)
    la = M * ((ac**2 - v[None, :] ** 2) / var**2 + r**2 * (v[None, :] ** 2 - 3 * ac**2) / var**3)
    with np.errstate(divide="ignore"):  # no curvature (e.g. a rater with one vote): infinite standard error
        v_std = 1 / np.sqrt(np.maximum(0.0, -lv.sum(0)))
        a_std = 1 / np.sqrt(np.maximum(0.0, -np.bincount(cidx, weights=la.sum(1), minlength=len(a))))
    return x_std, b_std, v_std, a_std


_CACHE: collections.OrderedDict = collections.OrderedDict()
_CACHE_SIZE = 8


def mle(acr: pd.DataFrame, confidence: float = 0.95, tol: float = 1e-12) -> dict[str, pd.DataFrame]:
    """:func:`fit_mle`, remembered for the last few vote sets (screening and the report fit the same
    votes several times per admin page; a fit can take seconds). Returns copies: callers may modify."""
    a = scored(acr)[["rater", "method", "image", "score"]]
    key = (int(pd.util.hash_pandas_object(a, index=False).sum()), len(a), confidence, tol)
    if key not in _CACHE:
        _CACHE[key] = fit_mle(acr, confidence, tol)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return {k: v.copy() if isinstance(v, pd.DataFrame) else v for k, v in _CACHE[key].items()}


def fit_mle(acr: pd.DataFrame, confidence: float = 0.95, tol: float = 1e-12) -> dict[str, pd.DataFrame]:
    """Fit the P.910 Annex E / P.913 12.6 model by maximum likelihood (L-BFGS-B on the exact likelihood).

    Biases are shifted to zero mean (sureal ``force_subjbias_zeromean``). Standard errors are the
    observed-information ones of sureal; our CIs are Student t with n - 1 degrees of freedom (n = votes
    behind the parameter) for quality, bias and ambiguity, and chi-square for inconsistency (as sureal).
    Returns frames ``stimuli`` (method, image, mle, mle_std, mle_ci95_low/high), ``raters`` (rater,
    mle_bias, mle_bias_std, mle_bias_ci95_low/high, mle_inconsistency, ..._ci95_low/high) and ``images``
    (image, ambiguity, ambiguity_std, ambiguity_ci95_low/high), plus ``loglik`` (per vote).
    """
    t, images, cidx, X, M = _matrix(acr)
    E, S, C = X.shape[0], X.shape[1], len(images)
    mos = np.nanmean(X, 1)
    res = np.where(M, X - mos[:, None], np.nan)
    v0 = np.nan_to_num(np.nanstd(res, 0), nan=0.5) + 1e-3
    a0 = np.array([np.nanstd(res[cidx == c]) for c in range(C)]) + 1e-3
    theta0 = np.concatenate([mos, np.zeros(S), v0, np.nan_to_num(a0, nan=0.5)])
    bounds = [(None, None)] * (E + S) + [(0.0, None)] * (S + C)
    sol = optimize.minimize(_nll, theta0, args=(X, M, cidx, E, S, C), jac=True, method="L-BFGS-B",
                            bounds=bounds, options=dict(maxiter=50000, maxfun=100000, ftol=tol, gtol=1e-9))
    x, b, v, a = np.split(sol.x, [E, E + S, E + 2 * S])
    shift = b.mean()
    x, b = x + shift, b - shift
    x_std, b_std, v_std, a_std = _std(X, M, x, b, v, a, cidx)
    q = 0.5 + confidence / 2
    n_e, n_s = M.sum(1), M.sum(0)
    n_c = np.bincount(cidx, weights=n_e, minlength=C)
    te, ts, tc = (stats.t.ppf(q, np.maximum(n - 1, 1)) for n in (n_e, n_s, n_c))
    stim = t.index.to_frame(index=False)
    stim = stim.assign(mle=x, mle_std=x_std, mle_ci95_low=x - te * x_std, mle_ci95_high=x + te * x_std)
    raters = pd.DataFrame({
        "rater": t.columns.astype(str), "mle_bias": b, "mle_bias_std": b_std,
        "mle_bias_ci95_low": b - ts * b_std, "mle_bias_ci95_high": b + ts * b_std,
        "mle_inconsistency": v, "mle_inconsistency_std": v_std,
        "mle_inconsistency_ci95_low": v * np.sqrt(n_s / stats.chi2.ppf(q, n_s)),
        "mle_inconsistency_ci95_high": v * np.sqrt(n_s / stats.chi2.ppf(1 - q, n_s)),
    })
    imgs = pd.DataFrame({"image": images, "ambiguity": a, "ambiguity_std": a_std,
                         "ambiguity_ci95_low": np.maximum(a - tc * a_std, 0), "ambiguity_ci95_high": a + tc * a_std})
    return {"stimuli": stim, "raters": raters, "images": imgs, "loglik": -sol.fun / M.sum(),
            "converged": bool(sol.success)}
