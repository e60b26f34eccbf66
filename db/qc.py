"""Per-rater quality control of a MOS study. Flags are recorded, never used to drop data silently.

Checks (ITU-T P.910 / BT.500-style screening adapted to the SRGAN protocol, where nearest neighbour
is the "bad" (1) and HR the "excellent" (5) anchor):

* **gold accuracy**: hidden anchor trials answered as expected: NN scored <= 2, HR scored >= 4; in a
  NN-vs-HR pair the HR side chosen ("none" counts as wrong);
* **test-retest**: repeated trials agree: ACR scores within 1 point, pair choices identical;
* **too fast**: answers quicker than ``fast_ms`` (1500 ms: faster than one can inspect an image);
* **straight-lining**: all ACR scores identical (zero variance) or a long run of the same score.

Flag names (``Rater.qc_flags``, comma-separated): ``gold_fail``, ``retest_inconsistent``, ``too_fast``,
``straight_lining``, ``incomplete``.
"""

from __future__ import annotations

import statistics

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from db.models import Method, Rater, Rating, Stimulus, Study, Trial

FAST_MS = 1500  # answers below this are "too fast"
GOLD_MIN_ACCURACY = 0.75  # flag below this fraction of anchor trials answered as expected
RETEST_MIN_AGREEMENT = 0.5  # flag below this fraction of repeats agreeing
FAST_MAX_FRACTION = 0.25  # flag when more than this fraction of answers is too fast
STRAIGHT_MIN_RUN = 8  # flag a run of >= this many identical consecutive ACR scores ...
STRAIGHT_MIN_N = 5  # ... or zero variance over at least this many ACR scores


def _records(s: Session, study_id: int, rater_ids=None) -> dict[int, list[dict]]:
    """Answered trials per rater in position order, with the anchor role of each shown stimulus."""
    sa_, sb_, s0 = aliased(Stimulus), aliased(Stimulus), aliased(Stimulus)
    ma, mb, m0 = aliased(Method), aliased(Method), aliased(Method)
    q = (
        select(
            Trial.rater_id,
            Trial.id,
            Trial.position,
            Trial.mode,
            Trial.is_gold,
            Trial.is_repeat_of,
            Rating.score,
            Rating.choice,
            Rating.response_ms,
            m0.role,
            ma.role,
            mb.role,
        )
        .join(Rating, Rating.trial_id == Trial.id)
        .join(Rater, Trial.rater_id == Rater.id)
        .outerjoin(s0, Trial.stimulus_id == s0.id)
        .outerjoin(m0, s0.method_id == m0.id)
        .outerjoin(sa_, Trial.stimulus_a_id == sa_.id)
        .outerjoin(ma, sa_.method_id == ma.id)
        .outerjoin(sb_, Trial.stimulus_b_id == sb_.id)
        .outerjoin(mb, sb_.method_id == mb.id)
        .where(Rater.study_id == study_id)
        .order_by(Trial.rater_id, Trial.position)
    )
    if rater_ids is not None:
        q = q.where(Trial.rater_id.in_(list(rater_ids)))
    out: dict[int, list[dict]] = {}
    for row in s.execute(q):
        rid, tid, pos, mode, gold, rep, score, choice, ms, role, role_a, role_b = row
        out.setdefault(rid, []).append(
            dict(
                trial_id=tid,
                position=pos,
                mode=mode,
                is_gold=bool(gold),
                repeat_of=rep,
                score=score,
                choice=choice,
                response_ms=ms,
                role=role,
                role_a=role_a,
                role_b=role_b,
            )
        )
    return out


def gold_correct(rec: dict) -> bool | None:
    """Whether a gold trial was answered as the anchors demand (None for non-gold trials)."""
    if not rec["is_gold"]:
        return None
    if rec["mode"] == "acr":
        if rec["role"] == "low_anchor":
            return rec["score"] <= 2
        if rec["role"] == "high_anchor":
            return rec["score"] >= 4
        return None
    hr_side = "A" if rec["role_a"] == "high_anchor" else "B"
    return rec["choice"] == hr_side


def longest_run(values) -> int:
    best = cur = 0
    prev = object()
    for v in values:
        cur = cur + 1 if v == prev else 1
        prev = v
        best = max(best, cur)
    return best


def compute_qc(recs: list[dict], completed: bool, fast_ms: int = FAST_MS) -> dict:
    """QC numbers and flags for one rater's answered trials (``recs`` from :func:`_records`)."""
    golds = [g for g in (gold_correct(r) for r in recs if r["repeat_of"] is None) if g is not None]
    by_id = {r["trial_id"]: r for r in recs}
    pairs = [(by_id[r["repeat_of"]], r) for r in recs if r["repeat_of"] is not None and r["repeat_of"] in by_id]
    agree, diffs = [], []
    for a, b in pairs:
        if a["mode"] == "acr":
            d = abs(a["score"] - b["score"])
            diffs.append(d)
            agree.append(d <= 1)
        else:
            agree.append(a["choice"] == b["choice"])
    times = [r["response_ms"] for r in recs if r["response_ms"] is not None]
    fast = [t for t in times if t < fast_ms]
    scores = [r["score"] for r in recs if r["mode"] == "acr"]
    run = longest_run(scores)
    std = statistics.pstdev(scores) if len(scores) >= 2 else None

    q = {
        "n_ratings": len(recs),
        "gold_n": len(golds),
        "gold_correct": sum(golds),
        "gold_accuracy": (sum(golds) / len(golds)) if golds else None,
        "retest_n": len(pairs),
        "retest_agreement": (sum(agree) / len(agree)) if agree else None,
        "retest_mean_abs_diff": (sum(diffs) / len(diffs)) if diffs else None,
        "fast_n": len(fast),
        "fast_fraction": (len(fast) / len(times)) if times else None,
        "median_response_ms": statistics.median(times) if times else None,
        "score_std": std,
        "longest_same_score_run": run,
    }
    flags = []
    if golds and q["gold_accuracy"] < GOLD_MIN_ACCURACY:
        flags.append("gold_fail")
    if agree and q["retest_agreement"] < RETEST_MIN_AGREEMENT:
        flags.append("retest_inconsistent")
    if times and q["fast_fraction"] > FAST_MAX_FRACTION:
        flags.append("too_fast")
    if (len(scores) >= STRAIGHT_MIN_N and std == 0) or run >= STRAIGHT_MIN_RUN:
        flags.append("straight_lining")
    if not completed:
        flags.append("incomplete")
    q["flags"] = flags
    return q


def store_rater_flags(s: Session, rater: Rater, fast_ms: int = FAST_MS) -> dict:
    """Compute one rater's QC inside an open write session and record the flags on the rater row."""
    q = compute_qc(_records(s, rater.study_id, [rater.id]).get(rater.id, []), rater.completed_at is not None, fast_ms)
    rater.qc_flags = ",".join(q["flags"])
    return q


def rater_qc(db, name: str, fast_ms: int = FAST_MS) -> list[dict]:
    """QC of every rater of study ``name`` (creation order); records each rater's flags in the DB.

    Each dict: token, display, completed, n_trials, n_ratings, gold_n, gold_correct, gold_accuracy,
    retest_n, retest_agreement, retest_mean_abs_diff, fast_n, fast_fraction, median_response_ms,
    score_std, longest_same_score_run, flags (list of str). Ratios are None when undefined.
    """
    from db.service import _get_study, _retrying

    def tx():
        with db.session(write=True) as s:
            st: Study = _get_study(s, name)
            recs = _records(s, st.id)
            out = []
            for r in s.scalars(select(Rater).where(Rater.study_id == st.id).order_by(Rater.id)):
                q = compute_qc(recs.get(r.id, []), r.completed_at is not None, fast_ms)
                flags = ",".join(q["flags"])
                if r.qc_flags != flags:
                    r.qc_flags = flags
                out.append(
                    {"token": r.token, "display": r.display, "completed": r.completed_at is not None,
                     "n_trials": r.n_trials, **q}
                )
            return out

    return _retrying(tx)
