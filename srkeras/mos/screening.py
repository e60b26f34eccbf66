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
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

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


def _gold(acr: pd.DataFrame | None, pairs: pd.DataFrame | None) -> pd.DataFrame:
    parts = []
    if acr is not None and "role" in acr.columns:
        a = scored(acr)
        lo, hi = a[a["role"] == MethodRole.LOW_ANCHOR], a[a["role"] == MethodRole.HIGH_ANCHOR]
        parts += [pd.DataFrame({"rater": lo["rater"], "ok": lo["score"] <= GOLD_LOW_MAX}),
                  pd.DataFrame({"rater": hi["rater"], "ok": hi["score"] >= GOLD_HIGH_MIN})]
    if pairs is not None and {"role_a", "role_b"} <= set(pairs.columns):
        p = pairs[~pairs["repeat"]]
        ab = p[(p["role_a"] == MethodRole.LOW_ANCHOR) & (p["role_b"] == MethodRole.HIGH_ANCHOR)]
        ba = p[(p["role_a"] == MethodRole.HIGH_ANCHOR) & (p["role_b"] == MethodRole.LOW_ANCHOR)]
        parts += [pd.DataFrame({"rater": ab["rater"], "ok": ab["choice"] == PairChoice.B.frame}),
                  pd.DataFrame({"rater": ba["rater"], "ok": ba["choice"] == PairChoice.A.frame})]
    g = pd.concat(parts) if parts else pd.DataFrame({"rater": [], "ok": []})
    return g.groupby("rater")["ok"].agg(gold_n="size", gold_correct="sum", gold_accuracy="mean")


def _pair_winners(p: pd.DataFrame) -> pd.DataFrame:
    """``p`` with ``winner`` (the chosen method, ``=`` for a tie) and ``pair`` (the two methods, sorted)."""
    p = p.copy()
    p["winner"] = np.where(p["choice"] == PairChoice.A.frame, p["method_a"],
                           np.where(p["choice"] == PairChoice.B.frame, p["method_b"], "="))
    p["pair"] = [tuple(sorted(t)) for t in zip(p["method_a"], p["method_b"])]
    return p


def _retest(acr: pd.DataFrame | None, pairs: pd.DataFrame | None) -> pd.DataFrame:
    parts = []
    if acr is not None and acr["repeat"].any():
        key = ["rater", "method", "image"]
        first = acr[~acr["repeat"]].groupby(key, as_index=False)["score"].first()
        rep = acr[acr["repeat"]].merge(first, on=key, suffixes=("", "_first"))
        diff = (rep["score"] - rep["score_first"]).abs()
        parts.append(pd.DataFrame({"rater": rep["rater"], "ok": diff <= RETEST_TOLERANCE, "diff": diff}))
    if pairs is not None and pairs["repeat"].any():
        p = _pair_winners(pairs)
        first = p[~p["repeat"]].groupby(["rater", "image", "pair"], as_index=False)["winner"].first()
        rep = p[p["repeat"]].merge(first, on=["rater", "image", "pair"], suffixes=("", "_first"))
        parts.append(pd.DataFrame({"rater": rep["rater"], "ok": rep["winner"] == rep["winner_first"],
                                   "diff": np.nan}))
    g = pd.concat(parts) if parts else pd.DataFrame({"rater": [], "ok": [], "diff": []})
    return g.groupby("rater").agg(retest_n=("ok", "size"), retest_agreement=("ok", "mean"),
                                  retest_mean_abs_diff=("diff", "mean"))


def _speed(acr, pairs, fast_ms: float) -> pd.DataFrame:
    parts = [f[["rater", "response_ms"]] for f in (acr, pairs) if f is not None and "response_ms" in f]
    ms = pd.concat(parts).dropna() if parts else pd.DataFrame({"rater": [], "response_ms": []})
    ms = ms.assign(fast=ms["response_ms"] < fast_ms)
    return ms.groupby("rater").agg(fast_n=("fast", "sum"), fast_fraction=("fast", "mean"),
                                   median_response_ms=("response_ms", "median"))


def longest_run(values) -> int:
    """Length of the longest run of equal consecutive values (0 for none)."""
    best = cur = 0
    prev = object()
    for v in values:
        cur = cur + 1 if v == prev else 1
        prev = v
        best = max(best, cur)
    return best


def _straight(acr: pd.DataFrame | None) -> pd.DataFrame:
    """Per rater: ``n_acr`` (ACR answers, repeats included), ``score_std`` (population sd, from 2 scores)
    and ``longest_same_score_run`` of the scores in answer order."""
    rows = {}
    if acr is not None:
        ordered = acr.sort_values("trial", kind="stable") if "trial" in acr.columns else acr
        for rater, s in ordered.groupby("rater", sort=False)["score"]:
            rows[rater] = (len(s), float(np.std(s)) if len(s) >= 2 else np.nan, longest_run(s.tolist()))
    return pd.DataFrame.from_dict(rows, orient="index", columns=["n_acr", "score_std", "longest_same_score_run"])


def _answers(acr, pairs) -> pd.Series:
    frames = [f["rater"] for f in (acr, pairs) if f is not None]
    return (pd.concat(frames) if frames else pd.Series([], dtype=object)).value_counts().rename("n_ratings")


def _pct(x: float) -> str:
    return f"{x:.0%}"


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
    return out


def screen(acr: pd.DataFrame | None, pairs: pd.DataFrame | None = None, ddof: int = 1, *,
           completed: Mapping[str, bool] | None = None, fast_ms: float = FAST_MS) -> pd.DataFrame:
    """Every rule of the module docstring per rater, sorted by rater.

    Columns: ``rater, n`` (first ACR votes), ``bt500_*`` (with ACR votes), ``n_pairs, gold_n, gold_accuracy,
    retest_n, retest_agreement, fast_fraction, reasons`` (list of str, each starting with its rule's code),
    ``rejected``, then :data:`QC_DETAIL` (``flags``: the :class:`QcFlag` of the failed rules). ``completed``
    (``{rater: finished}``) adds the ``incomplete`` rule and lists its raters even without answers;
    ``fast_ms`` is the too-fast limit.
    """
    voters = set(acr["rater"] if acr is not None else []) | set(pairs["rater"] if pairs is not None else [])
    r = pd.DataFrame(index=pd.Index(sorted(voters | set(completed or ())), name="rater"))
    if acr is not None and len(acr):
        r = r.join(bt500(acr, ddof).set_index("rater"))
    r["n"] = r.get("n", pd.Series(0, index=r.index)).fillna(0).astype(int)
    n_pairs = pairs[~pairs["repeat"]].groupby("rater").size() if pairs is not None else pd.Series(dtype=int)
    r["n_pairs"] = n_pairs.reindex(r.index).fillna(0).astype(int)
    r = r.join(_gold(acr, pairs)).join(_retest(acr, pairs)).join(_speed(acr, pairs, fast_ms))
    r = r.join(_straight(acr)).join(_answers(acr, pairs))
    r[["n_acr", "longest_same_score_run", "n_ratings"]] = r[["n_acr", "longest_same_score_run", "n_ratings"]].fillna(0)
    r = r.reset_index()
    verdicts = [_verdict(x, fast_ms, completed) for _, x in r.iterrows()]
    r["reasons"] = [[why for _, why in v] for v in verdicts]
    r["rejected"] = [bool(v) for v in verdicts]
    r["flags"] = [[flag for flag, _ in v if flag is not None] for v in verdicts]
    history = [c for c in r.columns if c not in QC_DETAIL and c != "n_acr"]
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
    for _, x in screening.iterrows():
        rec = {k: _plain(x[k], k in _COUNTS) for k in numbers}
        out[x["rater"]] = {**rec, "flags": list(x["flags"]), "rejected": bool(x["rejected"]),
                           "reasons": list(x["reasons"])}
    return out
