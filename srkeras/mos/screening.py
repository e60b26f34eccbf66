"""Rater screening: the one place that decides who is screened out of a MOS study, and why.

:func:`screen` returns one row per rater with the numbers behind every rule, the ``reasons`` (each
starting with its code) and ``rejected``; nothing is dropped silently: the report computes scores with
and without the rejected raters, the database records the flags (:mod:`db.qc`) and the admin Study page
and Dashboard show this same table. Rules, each threshold defined only here (nearest neighbour is the
"bad" anchor, HR the "excellent" one, as in the SRGAN protocol, Ledig et al. 2017 sec. 3.4):

* ``bt500``: ITU-R BT.500-14 Annex 1 sec. 2.3.1 outlier (:func:`bt500`). It compares a rater with the
  others, so it changes as votes arrive: reported, never stored as a flag.
* ``gold`` (:attr:`QcFlag.GOLD_FAIL`): under 75 % of the hidden anchor trials answered as expected. ACR:
  a ``low_anchor`` stimulus scored <= 2, a ``high_anchor`` one >= 4; pair: in a low-vs-high anchor pair
  the high anchor chosen (``tie`` counts as wrong). First answers only (repeats are for the retest).
* ``retest`` (:attr:`QcFlag.RETEST_INCONSISTENT`): under 50 % of test-retest repeats agree with the
  rater's first answer on the same item: ACR within one point; pair: the same winner (the repeat may
  show the two sides swapped, so winners are compared, not sides; ``tie`` agrees with ``tie``).
* ``too_fast`` (:attr:`QcFlag.TOO_FAST`): over 25 % of all answers (repeats included, unknown times
  left out) given in under 1.5 s, faster than one can inspect an image.
* ``straight_lining`` (:attr:`QcFlag.STRAIGHT_LINING`): the rater's ACR scores in answer order
  (``trial``; repeats included) are all equal over at least 5 scores, or hold a run of at least 8
  equal scores in a row (answer orders are randomised per rater, so long runs are not the stimuli's).
* ``incomplete`` (:attr:`QcFlag.INCOMPLETE`): the rater did not finish their session; only where
  completion is known (``completed``, from the database), never for CSV files.

Three more rules compare a rater with the others (numbers from :mod:`srkeras.mos.consistency`), so,
like ``bt500``, they are computed on the whole study only (``with_bt500``); they catch the random
clicker whose outlying votes are one-sided, whom BT.500 keeps (P >> Q):

* ``p913_correlation`` (:attr:`QcFlag.LOW_CORRELATION`): ITU-T P.913 (2016) sec. 11.4, the rule of the
  VQEG MM Phase I test plan Annex VI (NTIA's reference ``screening.m``): rejected when the Pearson r
  with the MOS per stimulus r1 < 0.75 AND per method r2 < 0.8 (with under 3 methods r2 is undefined
  and r1 < 0.75 alone decides, the VQEG HDTV test plan Annex I rule). The MOS is the other raters'
  (leave-one-out); at least 8 stimuli each voted by >= 3 others are needed, else the rule is silent.
* ``mle_inconsistency`` (:attr:`QcFlag.MLE_INCONSISTENT`): the rater's inconsistency v_s of the P.913
  sec. 12.6 subject model is an outlier among the raters: v_s > median + 3 x 1.4826 x MAD (Hampel's
  identifier, the "very conservative" 3 of Leys et al. 2013, robust to the outliers it looks for) AND
  v_s > 1.5 x median (so a tight honest panel, MAD ~ 0, does not reject its ordinary spread). Needs
  >= 6 raters and a median > 0 (a collapsed fit, v_s = 0 for most raters, says nothing).
* ``pair_consistency`` (:attr:`QcFlag.PAIR_INCONSISTENT`): pair studies. The share of the rater's
  answers (ties left out) that pick the winner the Bradley-Terry fit of the OTHER raters predicts is
  below what an honest Bradley-Terry rater would reach, significantly (one-sided, 1 %: share <
  expected - 2.326 sd, Poisson-binomial sd) AND by more than half the way to chance (share <
  (0.5 + expected) / 2, so a big study does not reject small differences in taste). Needs >= 20
  non-tie answers.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Mapping

import numpy as np
import pandas as pd

from srkeras.mos import consistency
from srkeras.mos.scores import scored
from srkeras.mos.vocabulary import MethodRole, PairChoice, QcFlag

BT500_RATIO = 0.05  # reject when (P + Q) / n > 0.05 ...
BT500_SYMMETRY = 0.3  # ... and |P - Q| / (P + Q) < 0.3  (BT.500-14 Annex 1 sec. 2.3.1)
GOLD_LOW_MAX, GOLD_HIGH_MIN = 2.0, 4.0  # NN anchor expected "poor" or "bad", HR "good" or "excellent"
GOLD_MIN_ACCURACY = 0.75
RETEST_TOLERANCE = 1.0  # ACR repeat agrees when within one point
RETEST_MIN_AGREEMENT = 0.5
FAST_MS = 1500  # answers below this many ms are "too fast"
FAST_MAX_FRACTION = 0.25
STRAIGHT_MIN_N = 5  # zero variance over at least this many ACR scores ...
STRAIGHT_MIN_RUN = 8  # ... or a run of at least this many equal consecutive ACR scores
CORR_R1, CORR_R2 = 0.75, 0.8  # P.913 sec. 11.4 / VQEG MM Annex VI: reject when r1 < 0.75 and r2 < 0.8
CORR_MIN_OTHERS, CORR_MIN_STIMULI = 3, 8  # a stimulus counts with >= 3 other raters; r1 needs >= 8 of them
MLE_MAD_K, MLE_MIN_RATIO, MLE_MIN_RATERS = 3.0, 1.5, 6  # v > median + 3 * 1.4826 MAD and v > 1.5 median
PAIR_Z, PAIR_MIN_N = 2.326, 20  # one-sided 1 % below the honest share, and below its midpoint with 0.5

#: Columns of :func:`screen` beyond the report's rater table (the admin QC numbers; see :func:`qc_records`).
QC_DETAIL = ("n_ratings", "gold_correct", "retest_mean_abs_diff", "fast_n", "median_response_ms", "score_std",
             "longest_same_score_run", "flags")
_COUNTS = ("n_ratings", "gold_n", "gold_correct", "retest_n", "fast_n", "longest_same_score_run")


def bt500(acr: pd.DataFrame, ddof: int = 1) -> pd.DataFrame:
    """ITU-R BT.500-14 Annex 1 sec. 2.3.1 observer screening on ACR votes.

    Per stimulus: mean u, standard deviation s (``ddof=1`` as in the Recommendation; sureal uses 0) and
    beta2 = m4 / m2^2. A vote counts in P_i when >= u + k s and in Q_i when <= u - k s, with k = 2 when
    2 <= beta2 <= 4 (normal) else sqrt(20). Rater i is rejected when (P_i + Q_i) / n_i > 0.05 and
    |P_i - Q_i| / (P_i + Q_i) < 0.3, n_i = the rater's number of votes. Zero-variance stimuli count nothing.
    Returns ``rater, n, bt500_p, bt500_q, bt500_ratio, bt500_symmetry, bt500_reject``.
    """
    a = scored(acr)[["rater", "method", "image", "score"]].copy()
    g = a.groupby(["method", "image"])["score"]
    mu = g.transform("mean")
    dev = a["score"] - mu
    m2 = dev.pow(2).groupby([a["method"], a["image"]]).transform("mean")
    m4 = dev.pow(4).groupby([a["method"], a["image"]]).transform("mean")
    sd = g.transform(lambda s: np.std(s, ddof=ddof) if len(s) > ddof else np.nan)
    beta2 = m4 / m2.pow(2)
    k = np.where((beta2 >= 2) & (beta2 <= 4), 2.0, np.sqrt(20.0))
    ok = sd > 0
    a["p"] = (ok & (a["score"] >= mu + k * sd)).astype(int)
    a["q"] = (ok & (a["score"] <= mu - k * sd)).astype(int)
    r = a.groupby("rater").agg(n=("score", "size"), bt500_p=("p", "sum"), bt500_q=("q", "sum"))
    pq = r["bt500_p"] + r["bt500_q"]
    r["bt500_ratio"] = pq / r["n"]
    r["bt500_symmetry"] = (r["bt500_p"] - r["bt500_q"]).abs() / pq.replace(0, np.nan)
    r["bt500_reject"] = (r["bt500_ratio"] > BT500_RATIO) & (r["bt500_symmetry"] < BT500_SYMMETRY)
    return r.reset_index()


@dataclasses.dataclass
class _Answers:
    """One rater's answers as the rules read them (plain Python: fast for one rater, as at completion)."""

    gold: list[bool] = dataclasses.field(default_factory=list)  # anchor trials answered as expected
    retest: list[bool] = dataclasses.field(default_factory=list)  # repeats agreeing with the first answer
    retest_diffs: list[float] = dataclasses.field(default_factory=list)  # ACR repeats: |score - first score|
    times: list[float] = dataclasses.field(default_factory=list)  # known response times (ms)
    scores: list[tuple[float, float]] = dataclasses.field(default_factory=list)  # ACR (trial, score)
    n_ratings: int = 0


def _records(frame: pd.DataFrame | None, cols) -> list[dict]:
    if frame is None:
        return []
    have = [c for c in cols if c in frame.columns]
    return frame[have].to_dict("records")


def _acr_answers(acr: pd.DataFrame | None, out: dict[str, _Answers]) -> None:
    rows = _records(acr, ("rater", "method", "image", "score", "role", "repeat", "trial", "response_ms"))
    first = {}
    for k, x in enumerate(rows):
        a = out.setdefault(x["rater"], _Answers())
        a.n_ratings += 1
        a.scores.append((x.get("trial", k), x["score"]))
        if not pd.isna(x.get("response_ms", np.nan)):
            a.times.append(x["response_ms"])
        if x.get("repeat", False):
            continue
        first.setdefault((x["rater"], x["method"], x["image"]), x["score"])
        if x.get("role") == MethodRole.LOW_ANCHOR:
            a.gold.append(x["score"] <= GOLD_LOW_MAX)
        elif x.get("role") == MethodRole.HIGH_ANCHOR:
            a.gold.append(x["score"] >= GOLD_HIGH_MIN)
    for x in rows:
        before = first.get((x["rater"], x["method"], x["image"]))
        if x.get("repeat", False) and before is not None:
            diff = abs(x["score"] - before)
            out[x["rater"]].retest.append(diff <= RETEST_TOLERANCE)
            out[x["rater"]].retest_diffs.append(diff)


def _winner(x: dict) -> str:
    """The method a pair answer chose (``=`` for a tie), so a repeat with the sides swapped compares."""
    return {PairChoice.A.frame: x["method_a"], PairChoice.B.frame: x["method_b"]}.get(x["choice"], "=")


def _pair_answers(pairs: pd.DataFrame | None, out: dict[str, _Answers]) -> None:
    rows = _records(pairs, ("rater", "image", "method_a", "method_b", "choice", "role_a", "role_b", "repeat",
                            "response_ms"))
    anchors = (MethodRole.LOW_ANCHOR, MethodRole.HIGH_ANCHOR)
    first = {}
    for x in rows:
        a = out.setdefault(x["rater"], _Answers())
        a.n_ratings += 1
        if not pd.isna(x.get("response_ms", np.nan)):
            a.times.append(x["response_ms"])
        if x["repeat"]:
            continue
        first.setdefault((x["rater"], x["image"], *sorted((x["method_a"], x["method_b"]))), _winner(x))
        if (x.get("role_a"), x.get("role_b")) in (anchors, anchors[::-1]):  # NN vs HR: the HR side expected
            a.gold.append(x["choice"] == (PairChoice.A if x["role_a"] == MethodRole.HIGH_ANCHOR else PairChoice.B).frame)
    for x in rows:
        before = first.get((x["rater"], x["image"], *sorted((x["method_a"], x["method_b"]))))
        if x["repeat"] and before is not None:
            out[x["rater"]].retest.append(_winner(x) == before)


def longest_run(values) -> int:
    """Length of the longest run of equal consecutive values (0 for none)."""
    best = cur = 0
    prev = object()
    for v in values:
        cur = cur + 1 if v == prev else 1
        prev = v
        best = max(best, cur)
    return best


def _numbers(a: _Answers, fast_ms: float) -> dict:
    """The per-rater numbers of every rule (None where a rule has nothing to count)."""
    # answer order: a stable sort on ``trial``, unknown trials last (as pandas sorts NaN)
    scores = [sc for _, sc in sorted(a.scores, key=lambda t: (pd.isna(t[0]), 0 if pd.isna(t[0]) else t[0]))]
    fast = [t < fast_ms for t in a.times]
    return dict(
        gold_n=len(a.gold) or None, gold_correct=sum(a.gold) if a.gold else None,
        gold_accuracy=sum(a.gold) / len(a.gold) if a.gold else None,
        retest_n=len(a.retest) or None, retest_agreement=sum(a.retest) / len(a.retest) if a.retest else None,
        retest_mean_abs_diff=statistics.fmean(a.retest_diffs) if a.retest_diffs else None,
        fast_n=sum(fast) if fast else None, fast_fraction=sum(fast) / len(fast) if fast else None,
        median_response_ms=statistics.median(a.times) if a.times else None,
        n_acr=len(scores), score_std=float(np.std(scores)) if len(scores) >= 2 else None,
        longest_same_score_run=longest_run(scores), n_ratings=a.n_ratings,
    )


_ANSWER_COUNTS = ("n_acr", "longest_same_score_run", "n_ratings")
#: dtype of each number column: counts are integers (float where some rater has none, as a join gives).
_DTYPES = dict(gold_n="int64", gold_correct="int64", gold_accuracy="float64", retest_n="int64",
               retest_agreement="float64", retest_mean_abs_diff="float64", fast_n="int64", fast_fraction="float64",
               median_response_ms="float64", n_acr="int64", score_std="float64", longest_same_score_run="int64",
               n_ratings="int64")


def _rule_numbers(acr, pairs, fast_ms: float, index: pd.Index) -> pd.DataFrame:
    answers: dict[str, _Answers] = {}
    _acr_answers(acr, answers)
    _pair_answers(pairs, answers)
    rows = {rater: _numbers(a, fast_ms) for rater, a in answers.items()}
    cols = {}
    for c, dtype in _DTYPES.items():
        known = {r: v[c] for r, v in rows.items() if v[c] is not None}
        cols[c] = pd.Series(known, dtype=dtype).reindex(index)
        if c in _ANSWER_COUNTS:  # a rater without answers has none of them
            cols[c] = cols[c].fillna(0).astype(dtype)
    return pd.DataFrame(cols, index=index)


def _pct(x: float) -> str:
    return f"{x:.0%}"


def comparisons(acr: pd.DataFrame | None, pairs: pd.DataFrame | None, mle_fit: dict | None = None) -> pd.DataFrame:
    """The numbers of the three rules that compare raters (:mod:`srkeras.mos.consistency`), per rater,
    with their verdicts ``corr_reject``, ``mle_reject`` and ``pair_reject``. ``mle_fit``: a fit of
    :func:`srkeras.mos.subject_models.mle` on ``acr`` (fitted here when None)."""
    parts = []
    raters = sorted(set(scored(acr)["rater"])) if acr is not None else []
    if raters:
        nan = np.full(len(raters), np.nan)
        c = pd.DataFrame({"rater": raters, "corr_r1": nan, "corr_r2": nan, "corr_n": 0, "corr_reject": False})
        if len(raters) > CORR_MIN_OTHERS:
            c = consistency.correlations(acr, CORR_MIN_OTHERS, CORR_MIN_STIMULI)
            c["corr_reject"] = (c["corr_r1"] < CORR_R1) & (c["corr_r2"].isna() | (c["corr_r2"] < CORR_R2))
        v = pd.DataFrame({"rater": raters, "mle_inconsistency": nan, "mle_inconsistency_median": nan,
                          "mle_inconsistency_mad": nan, "mle_limit": nan, "mle_reject": False})
        if len(raters) >= MLE_MIN_RATERS:  # fewer: the rule cannot judge, so no fit (it can take seconds)
            if mle_fit is None:
                from srkeras.mos.subject_models import mle  # lazy: scipy's optimiser only where it is needed

                mle_fit = mle(acr)
            v = consistency.inconsistency(mle_fit["raters"])
            med, mad = v["mle_inconsistency_median"], v["mle_inconsistency_mad"]
            v["mle_limit"] = np.maximum(med + MLE_MAD_K * 1.4826 * mad, MLE_MIN_RATIO * med)
            v["mle_reject"] = (med > 0) & (v["mle_inconsistency"] > v["mle_limit"])
        parts += [c, v]
    if pairs is not None and len(pairs):
        pa = consistency.pair_agreement(pairs)
        pa["pair_reject"] = ((pa["pair_n"] >= PAIR_MIN_N)
                             & (pa["pair_agreement"] < pa["pair_expected"] - PAIR_Z * pa["pair_expected_sd"])
                             & (pa["pair_agreement"] < (0.5 + pa["pair_expected"]) / 2))
        parts.append(pa)
    out = pd.DataFrame({"rater": pd.Series(dtype=str)})
    for part in parts:
        out = out.merge(part, on="rater", how="outer")
    return out.set_index("rater")


def _yes(v) -> bool:
    return isinstance(v, bool | np.bool_) and bool(v)


def _comparison_verdict(x) -> list[tuple[QcFlag | None, str]]:
    out: list[tuple[QcFlag | None, str]] = []
    if _yes(x.get("corr_reject")):
        r2 = "" if pd.isna(x["corr_r2"]) else f", per method r2={x['corr_r2']:.2f} < {CORR_R2}"
        out.append((QcFlag.LOW_CORRELATION, f"p913_correlation (per stimulus r1={x['corr_r1']:.2f} < {CORR_R1}"
                                            f"{r2}, with the other raters' MOS)"))
    if _yes(x.get("mle_reject")):
        out.append((QcFlag.MLE_INCONSISTENT, f"mle_inconsistency ({x['mle_inconsistency']:.2f} against a median "
                                             f"of {x['mle_inconsistency_median']:.2f}; limit {x['mle_limit']:.2f})"))
    if _yes(x.get("pair_reject")):
        out.append((QcFlag.PAIR_INCONSISTENT, f"pair_consistency ({_pct(x['pair_agreement'])} of "
                                              f"{int(x['pair_n'])} answers pick the others' Bradley-Terry winner; "
                                              f"an honest rater {_pct(x['pair_expected'])})"))
    return out


def _verdict(x, fast_ms: float, completed: Mapping[str, bool] | None) -> list[tuple[QcFlag | None, str]]:
    """(flag, reason) of every rule rater row ``x`` fails, in the order of the module docstring."""
    out: list[tuple[QcFlag | None, str]] = []
    if x.get("bt500_reject") is True:
        out.append((None, f"bt500 ({_pct(x['bt500_ratio'])} of votes outside the band, "
                          f"|P-Q|/(P+Q)={x['bt500_symmetry']:.2f})"))
    if pd.notna(x.get("gold_accuracy")) and x["gold_accuracy"] < GOLD_MIN_ACCURACY:
        out.append((QcFlag.GOLD_FAIL, f"gold ({_pct(x['gold_accuracy'])} of {int(x['gold_n'])} anchor trials "
                                      "as expected)"))
    if pd.notna(x.get("retest_agreement")) and x["retest_agreement"] < RETEST_MIN_AGREEMENT:
        out.append((QcFlag.RETEST_INCONSISTENT,
                    f"retest ({_pct(x['retest_agreement'])} of {int(x['retest_n'])} repeats agree)"))
    if pd.notna(x.get("fast_fraction")) and x["fast_fraction"] > FAST_MAX_FRACTION:
        out.append((QcFlag.TOO_FAST, f"too_fast ({_pct(x['fast_fraction'])} of answers under {fast_ms / 1000:g} s)"))
    if x["n_acr"] >= STRAIGHT_MIN_N and x["score_std"] == 0:
        out.append((QcFlag.STRAIGHT_LINING, f"straight_lining (all {int(x['n_acr'])} scores equal)"))
    elif x["longest_same_score_run"] >= STRAIGHT_MIN_RUN:
        out.append((QcFlag.STRAIGHT_LINING,
                    f"straight_lining ({int(x['longest_same_score_run'])} equal scores in a row)"))
    if completed is not None and not completed.get(x["rater"], True):
        out.append((QcFlag.INCOMPLETE, "incomplete (session not finished)"))
    return out + _comparison_verdict(x)


def screen(acr: pd.DataFrame | None, pairs: pd.DataFrame | None = None, ddof: int = 1, *,
           completed: Mapping[str, bool] | None = None, fast_ms: float = FAST_MS,
           with_bt500: bool = True, mle_fit: dict | None = None) -> pd.DataFrame:
    """Every rule of the module docstring per rater, sorted by rater.

    Columns: ``rater, n`` (first ACR votes), ``bt500_*`` (with ACR votes), ``n_pairs, gold_n, gold_accuracy,
    retest_n, retest_agreement, fast_fraction, reasons`` (list of str, each starting with its rule's code),
    ``rejected``, then :data:`QC_DETAIL` (``flags``: the :class:`QcFlag` of the failed rules). ``completed``
    (``{rater: finished}``) adds the ``incomplete`` rule and lists its raters even without answers;
    ``fast_ms`` is the too-fast limit. ``with_bt500=False`` leaves out the rules that compare raters
    (``bt500`` and the three of :func:`comparisons`, whose numbers are columns too): one rater's flags at
    completion, from the rules on a rater's own answers. ``mle_fit``: the subject model already fitted.
    """
    voters = set(acr["rater"] if acr is not None else []) | set(pairs["rater"] if pairs is not None else [])
    r = pd.DataFrame(index=pd.Index(sorted(voters | set(completed or ())), name="rater"))
    n = scored(acr).groupby("rater").size() if acr is not None else pd.Series(dtype=int)
    r["n"] = n.reindex(r.index).fillna(0).astype(int)
    if with_bt500 and acr is not None and len(acr):
        r = r.join(bt500(acr, ddof).set_index("rater").drop(columns="n"))
    if with_bt500:
        r = r.join(comparisons(acr, pairs, mle_fit))
    n_pairs = pairs[~pairs["repeat"]].groupby("rater").size() if pairs is not None else pd.Series(dtype=int)
    r["n_pairs"] = n_pairs.reindex(r.index).fillna(0).astype(int)
    r = r.join(_rule_numbers(acr, pairs, fast_ms, r.index)).reset_index()
    verdicts = [_verdict(x, fast_ms, completed) for x in r.to_dict("records")]
    r["reasons"] = [[why for _, why in v] for v in verdicts]
    r["rejected"] = [bool(v) for v in verdicts]
    r["flags"] = [[flag for flag, _ in v if flag is not None] for v in verdicts]
    history = [c for c in r.columns if c not in QC_DETAIL and c != "n_acr"]  # n_acr: only for the rule
    return r[history + list(QC_DETAIL)]


def report_table(screening: pd.DataFrame) -> pd.DataFrame:
    """The rater columns of the statistics report: :func:`screen` without :data:`QC_DETAIL`."""
    return screening.drop(columns=list(QC_DETAIL))


def _plain(value, count: bool):
    if count:
        return 0 if pd.isna(value) else int(value)
    return None if pd.isna(value) else float(value)


def qc_records(screening: pd.DataFrame) -> dict[str, dict]:
    """``{rater: QC numbers}`` of a :func:`screen` table as plain Python for the admin QC table and the
    database: ``n_ratings, gold_n, gold_correct, gold_accuracy, retest_n, retest_agreement,
    retest_mean_abs_diff, fast_n, fast_fraction, median_response_ms, score_std, longest_same_score_run``
    (counts 0 and ratios None where there is nothing to count), ``flags`` (list of :class:`QcFlag`),
    ``rejected`` and ``reasons``."""
    numbers = ("n_ratings", "gold_n", "gold_correct", "gold_accuracy", "retest_n", "retest_agreement",
               "retest_mean_abs_diff", "fast_n", "fast_fraction", "median_response_ms", "score_std",
               "longest_same_score_run")
    out = {}
    for x in screening.to_dict("records"):
        rec = {k: _plain(x[k], k in _COUNTS) for k in numbers}
        out[x["rater"]] = {**rec, "flags": list(x["flags"]), "rejected": bool(x["rejected"]),
                           "reasons": list(x["reasons"])}
    return out
