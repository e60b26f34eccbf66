"""Rater screening: ITU-R BT.500 Annex 1 (beta2 test), gold (hidden anchor) trials, test-retest, speed.

Every rejection carries its reasons; nothing is dropped silently: :func:`screen` returns one row per
rater and the caller computes scores with and without the rejected raters.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from srkeras.mos.scores import scored

BT500_RATIO = 0.05  # reject when (P + Q) / n > 0.05 ...
BT500_SYMMETRY = 0.3  # ... and |P - Q| / (P + Q) < 0.3  (BT.500-14 Annex 1 sec. 2.3.1)
GOLD_LOW_MAX, GOLD_HIGH_MIN = 2.0, 4.0  # NN anchor expected "poor" or "bad", HR "good" or "excellent"
GOLD_MIN_ACCURACY = 0.75
RETEST_TOLERANCE = 1.0  # ACR repeat agrees when within one point
RETEST_MIN_AGREEMENT = 0.5
FAST_MS = 1500.0
FAST_MAX_FRACTION = 0.25


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
        lo, hi = a[a["role"] == "low_anchor"], a[a["role"] == "high_anchor"]
        parts += [pd.DataFrame({"rater": lo["rater"], "ok": lo["score"] <= GOLD_LOW_MAX}),
                  pd.DataFrame({"rater": hi["rater"], "ok": hi["score"] >= GOLD_HIGH_MIN})]
    if pairs is not None and {"role_a", "role_b"} <= set(pairs.columns):
        p = pairs[~pairs["repeat"]]
        ab = p[(p["role_a"] == "low_anchor") & (p["role_b"] == "high_anchor")]
        ba = p[(p["role_a"] == "high_anchor") & (p["role_b"] == "low_anchor")]
        parts += [pd.DataFrame({"rater": ab["rater"], "ok": ab["choice"] == "b"}),
                  pd.DataFrame({"rater": ba["rater"], "ok": ba["choice"] == "a"})]
    g = pd.concat(parts) if parts else pd.DataFrame({"rater": [], "ok": []})
    return g.groupby("rater")["ok"].agg(gold_n="size", gold_accuracy="mean")


def _retest(acr: pd.DataFrame | None, pairs: pd.DataFrame | None) -> pd.DataFrame:
    parts = []
    if acr is not None and acr["repeat"].any():
        key = ["rater", "method", "image"]
        first = acr[~acr["repeat"]].groupby(key, as_index=False)["score"].first()
        rep = acr[acr["repeat"]].merge(first, on=key, suffixes=("", "_first"))
        parts.append(pd.DataFrame({"rater": rep["rater"],
                                   "ok": (rep["score"] - rep["score_first"]).abs() <= RETEST_TOLERANCE}))
    if pairs is not None and pairs["repeat"].any():
        p = pairs.copy()
        win = np.where(p["choice"] == "a", p["method_a"], np.where(p["choice"] == "b", p["method_b"], "="))
        p["winner"] = win
        p["pair"] = [tuple(sorted(t)) for t in zip(p["method_a"], p["method_b"])]
        first = p[~p["repeat"]].groupby(["rater", "image", "pair"], as_index=False)["winner"].first()
        rep = p[p["repeat"]].merge(first, on=["rater", "image", "pair"], suffixes=("", "_first"))
        parts.append(pd.DataFrame({"rater": rep["rater"], "ok": rep["winner"] == rep["winner_first"]}))
    g = pd.concat(parts) if parts else pd.DataFrame({"rater": [], "ok": []})
    return g.groupby("rater")["ok"].agg(retest_n="size", retest_agreement="mean")


def _speed(acr, pairs) -> pd.Series:
    parts = [f[["rater", "response_ms"]] for f in (acr, pairs) if f is not None and "response_ms" in f]
    ms = pd.concat(parts).dropna() if parts else pd.DataFrame({"rater": [], "response_ms": []})
    return (ms["response_ms"] < FAST_MS).groupby(ms["rater"]).mean().rename("fast_fraction")


def screen(acr: pd.DataFrame | None, pairs: pd.DataFrame | None = None, ddof: int = 1) -> pd.DataFrame:
    """All checks per rater: ``rater, n, n_pairs, bt500_*, gold_*, retest_*, fast_fraction, rejected, reasons``.

    Reasons (list of str, each starting with its code): ``bt500`` (BT.500 Annex 1 outlier), ``gold``
    (hidden anchors answered as expected < 75%), ``retest`` (< 50% of repeats agree: ACR within one
    point, pairs the same answer), ``too_fast`` (> 25% of answers under 1.5 s).
    """
    raters = sorted(set(acr["rater"] if acr is not None else []) | set(pairs["rater"] if pairs is not None else []))
    r = pd.DataFrame(index=pd.Index(raters, name="rater"))
    if acr is not None and len(acr):
        r = r.join(bt500(acr, ddof).set_index("rater"))
    r["n"] = r.get("n", pd.Series(0, index=r.index)).fillna(0).astype(int)
    n_pairs = pairs[~pairs["repeat"]].groupby("rater").size() if pairs is not None else pd.Series(dtype=int)
    r["n_pairs"] = n_pairs.reindex(r.index).fillna(0).astype(int)
    r = r.join(_gold(acr, pairs)).join(_retest(acr, pairs)).join(_speed(acr, pairs))
    reasons = []
    for _, x in r.iterrows():
        why = []
        if x.get("bt500_reject") is True:
            why.append(f"bt500 ({x['bt500_ratio']:.0%} of votes outside the band, |P-Q|/(P+Q)={x['bt500_symmetry']:.2f})")
        if pd.notna(x.get("gold_accuracy")) and x["gold_accuracy"] < GOLD_MIN_ACCURACY:
            why.append(f"gold ({x['gold_accuracy']:.0%} of {int(x['gold_n'])} anchor trials as expected)")
        if pd.notna(x.get("retest_agreement")) and x["retest_agreement"] < RETEST_MIN_AGREEMENT:
            why.append(f"retest ({x['retest_agreement']:.0%} of {int(x['retest_n'])} repeats agree)")
        if pd.notna(x.get("fast_fraction")) and x["fast_fraction"] > FAST_MAX_FRACTION:
            why.append(f"too_fast ({x['fast_fraction']:.0%} of answers under {FAST_MS / 1000:g} s)")
        reasons.append(why)
    r["reasons"] = reasons
    r["rejected"] = [bool(w) for w in reasons]
    return r.reset_index()
