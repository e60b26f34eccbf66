"""The numbers behind the screening rules that compare each rater with the others (no thresholds here:
every threshold and verdict lives in :mod:`srkeras.mos.screening`).

* :func:`correlations`: ITU-T P.913 sec. 11.4 / VQEG MM Phase I test plan Annex VI (after the VQEG HDTV
  test plan, Annex I): Pearson r between a rater's scores and the MOS, per stimulus (PVS, ``corr_r1``)
  and per method (HRC, ``corr_r2``: the rater's mean per method against the MOS per method). The MOS is
  that of the OTHER raters (leave-one-out), so a rater never correlates with their own votes; the
  plans average everyone, which makes a rater look a little better the fewer raters there are.
* :func:`inconsistency`: the subject-model inconsistency v_s (:func:`srkeras.mos.subject_models.mle`)
  with the median and MAD over raters (the robust centre and spread the outlier rule compares with).
* :func:`pair_agreement`: how often a rater's pair answers (ties left out) pick the winner that the
  Bradley-Terry fit of the OTHER raters' answers predicts, and how often an honest Bradley-Terry rater
  would (sum of max(p, 1 - p) over the rater's comparisons) with its standard deviation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from srkeras.mos import pairs as pairs_mod
from srkeras.mos.scores import scored
from srkeras.mos.vocabulary import A_SHARE


def _pearson(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def correlations(acr: pd.DataFrame, min_others: int = 3, min_stimuli: int = 8, min_methods: int = 3) -> pd.DataFrame:
    """Per rater: ``corr_r1`` (per stimulus), ``corr_r2`` (per method), ``corr_n`` (stimuli used).

    A stimulus enters a rater's r1 when at least ``min_others`` other raters voted on it; r1 needs
    ``min_stimuli`` such stimuli and r2 ``min_methods`` methods among them, else NaN (too few to judge).
    Repeats are left out; a rater's votes on one stimulus are averaged.
    """
    t = scored(acr).pivot_table(index=["method", "image"], columns="rater", values="score", aggfunc="mean")
    X = t.to_numpy(float)
    M = ~np.isnan(X)
    total, count = np.nansum(X, 1), M.sum(1)
    methods = t.index.get_level_values("method").to_numpy()
    rows = []
    for k, rater in enumerate(t.columns):
        ok = M[:, k] & (count - 1 >= min_others)
        own, others = X[ok, k], (total[ok] - X[ok, k]) / (count[ok] - 1)
        r1 = _pearson(own, others) if ok.sum() >= min_stimuli else float("nan")
        per = pd.DataFrame({"m": methods[ok], "own": own, "others": others}).groupby("m").mean()
        r2 = _pearson(per["own"], per["others"]) if ok.sum() >= min_stimuli and len(per) >= min_methods \
            else float("nan")
        rows.append((str(rater), r1, r2, int(ok.sum())))
    return pd.DataFrame(rows, columns=["rater", "corr_r1", "corr_r2", "corr_n"])


def inconsistency(mle_raters: pd.DataFrame) -> pd.DataFrame:
    """Per rater: ``mle_inconsistency`` and the study's ``mle_inconsistency_median`` / ``_mad`` (raw MAD)."""
    v = mle_raters.set_index("rater")["mle_inconsistency"].astype(float)
    med = float(np.median(v)) if len(v) else float("nan")
    mad = float(np.median(np.abs(v - med))) if len(v) else float("nan")
    return pd.DataFrame({"rater": v.index.astype(str), "mle_inconsistency": v.to_numpy(),
                         "mle_inconsistency_median": med, "mle_inconsistency_mad": mad})


def pair_agreement(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per rater: ``pair_n`` (non-tie first answers), ``pair_agreement`` (share agreeing with the winner
    the other raters' Bradley-Terry fit predicts), ``pair_expected`` and ``pair_expected_sd`` (the share
    an honest rater of that fit would reach and its standard deviation, a Poisson-binomial's)."""
    p = pairs[~pairs["repeat"].astype(bool)] if "repeat" in pairs.columns else pairs
    p = p[p["choice"] != "tie"]
    methods = sorted(set(p["method_a"]) | set(p["method_b"]))
    W_all = pairs_mod.win_matrix(p, methods).to_numpy()
    idx = {m: k for k, m in enumerate(methods)}
    rows = []
    for rater, g in p.groupby("rater", sort=True):
        W = W_all - pairs_mod.win_matrix(g, methods).to_numpy()
        s = pairs_mod.bradley_terry(W, prior=0.5, tol=1e-8, max_iter=20000)
        ia, ib = g["method_a"].map(idx).to_numpy(), g["method_b"].map(idx).to_numpy()
        pa = 1 / (1 + np.exp(s[ib] - s[ia]))  # P(a wins) under the others' fit
        known = pa != 0.5
        pa, chose_a = pa[known], g["choice"].map(A_SHARE).to_numpy()[known] == 1.0
        q = np.maximum(pa, 1 - pa)
        n = len(q)
        agree = float(np.mean(chose_a == (pa > 0.5))) if n else float("nan")
        rows.append((str(rater), n, agree, float(q.mean()) if n else float("nan"),
                     float(np.sqrt((q * (1 - q)).sum()) / n) if n else float("nan")))
    return pd.DataFrame(rows, columns=["rater", "pair_n", "pair_agreement", "pair_expected", "pair_expected_sd"])
