"""Does the study have the sample size its statistics need? The report's warning block and the guards
on the subject model (issue 20, scope 6).

* :func:`guard_mle`: the P.913 sec. 12.6 maximum-likelihood fit collapses with few votes (a rater's
  inconsistency v_s = 0, its chi-square interval [0, 0], and near-zero-width quality intervals: the
  observed information of a vote with variance v_s^2 + a_c^2 ~ 0 is infinite). Collapsed raters are
  marked (``mle_collapsed``) and their intervals, and then every quality interval, are set undefined
  (NaN); zero-width quality intervals too; the other quality intervals are clipped to
  the 1-5 scale (the model's quality is on the vote scale; clipping is said in a note).
* :func:`warnings`: plain sentences for the report's warning block, each with the number that is
  short and what it costs (e.g. the smallest p-value the Wilcoxon test can reach with n images).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from srkeras.mos.scores import SCALE, scored
from srkeras.mos.significance import min_signed_rank_p, samples_needed

#: ITU-R BT.500-14 sec. 2.5 / ITU-T P.910 (2008) sec. 6.3: "at least 15 observers" (P.913 asks 24 in
#: a controlled environment, 35 in a public one); fewer raters make every interval of the report wide.
MIN_RATERS = 15
#: A rater inconsistency below this (vote-scale units) is a collapsed fit, not a perfect rater.
COLLAPSE_V = 1e-3
ALPHA = 0.05


def guard_mle(fit: dict) -> tuple[dict, list[str]]:
    """(``fit`` with collapse and scale guards, notes). See the module docstring."""
    raters, stim = fit["raters"].copy(), fit["stimuli"].copy()
    notes = []
    raters["mle_collapsed"] = raters["mle_inconsistency"] < COLLAPSE_V
    collapsed = list(raters.loc[raters["mle_collapsed"], "rater"])
    if collapsed:
        raters.loc[raters["mle_collapsed"], ["mle_inconsistency_ci95_low", "mle_inconsistency_ci95_high"]] = np.nan
        notes.append(f"The subject model (MLE) collapsed: {len(collapsed)} rater(s) got inconsistency 0 (it "
                     "explains their votes exactly, which happens with few votes per rater), so its intervals "
                     "are undefined (left empty) and its MLE values are not reliable; read the MOS instead.")
    width = stim["mle_ci95_high"] - stim["mle_ci95_low"]
    zero = (width < COLLAPSE_V) | bool(collapsed)  # a collapsed rater's near-zero variance narrows every x_e
    if zero.any():
        stim.loc[zero, ["mle_ci95_low", "mle_ci95_high"]] = np.nan
    lo, hi = SCALE
    outside = (stim["mle_ci95_low"] < lo) | (stim["mle_ci95_high"] > hi)
    if outside.any():
        stim["mle_ci95_low"] = stim["mle_ci95_low"].clip(lower=lo)
        stim["mle_ci95_high"] = stim["mle_ci95_high"].clip(upper=hi)
        notes.append(f"{int(outside.sum())} MLE quality interval(s) reached past the 1-5 scale and were clipped "
                     "to it: the model's normal approximation is poor with this few votes.")
    return {**fit, "raters": raters, "stimuli": stim}, notes


def _acr_warnings(acr: pd.DataFrame, wilcoxon: pd.DataFrame | None) -> list[str]:
    a = scored(acr)
    out = []
    votes = a.groupby(["method", "image"]).size()
    if votes.min() < 2:
        out.append(f"{int((votes < 2).sum())} stimulus/stimuli have a single vote: their interval is undefined; "
                   "at least 2 votes per stimulus are needed (a useful interval needs far more).")
    flat = a.groupby(["method", "image"])["score"].std(ddof=1).fillna(0).eq(0) & votes.ge(2)
    if flat.any():
        out.append(f"{int(flat.sum())} stimulus/stimuli have all their votes equal: their interval is left "
                   "undefined rather than shown with zero width.")
    if wilcoxon is not None and len(wilcoxon):
        n = int(wilcoxon["n_images"].max())
        m = len(wilcoxon)
        floor = min(1.0, m * min_signed_rank_p(n))
        if floor >= ALPHA:
            out.append(f"Only {n} image(s) per method pair: the Wilcoxon signed-rank test (two-sided, exact) cannot "
                       f"go below p = 2/2^{n} = {min_signed_rank_p(n):.3g}, and Holm's correction over {m} pair(s) "
                       f"raises the smallest reachable p to {floor:.3g}. No difference can be significant at "
                       f"{ALPHA} whatever the votes say (\"not significant\" here means \"not testable\"); "
                       f"{samples_needed(m, ALPHA)} images are needed.")
    return out


def _pair_warnings(pairs: pd.DataFrame) -> list[str]:
    p = pairs[~pairs["repeat"].astype(bool)] if "repeat" in pairs.columns else pairs
    per = p.groupby([p[["method_a", "method_b"]].min(1), p[["method_a", "method_b"]].max(1)]).size()
    k = int(per.min())
    if min_signed_rank_p(k) >= ALPHA:
        return [f"The least compared method pair has {k} answer(s): a two-sided sign test on them cannot go below "
                f"p = 2/2^{k} = {min_signed_rank_p(k):.3g}; at least {samples_needed(1, ALPHA)} per pair are needed "
                "for one pair to reach p < 0.05."]
    return []


def warnings(acr: pd.DataFrame | None, pairs: pd.DataFrame | None, raters: pd.DataFrame,
             wilcoxon: pd.DataFrame | None = None, ranking_n: int | None = None) -> list[str]:
    """The warning block: every count below what the report's statistics need, and what follows."""
    out = []
    n = len(raters)
    kept = int((~raters["rejected"]).sum())
    if n < MIN_RATERS:
        out.append(f"Only {n} rater(s) ({kept} kept by screening): ITU-R BT.500 and ITU-T P.910 ask for at least "
                   f"{MIN_RATERS} (P.913: 24 in a lab, 35 in a crowd). Intervals are wide, and the screening rules "
                   "that compare raters (correlation with the others: >= 3 other raters on 8 stimuli; MLE "
                   "inconsistency: >= 6 raters) may have had too few to judge.")
    if acr is not None:
        out += _acr_warnings(acr, wilcoxon)
    if pairs is not None:
        out += _pair_warnings(pairs)
    if ranking_n is not None and ranking_n < 10:
        out.append(f"The metric correlations rest on {ranking_n} point(s): their bootstrap intervals are wide and "
                   "no metric ranking should be read from them.")
    return out
