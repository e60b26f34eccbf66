"""Per-rater quality control of a MOS study. Flags are recorded, never used to drop data silently.

Checks (ITU-T P.910 / BT.500-style screening adapted to the SRGAN protocol, where nearest neighbour
is the "bad" (1) and HR the "excellent" (5) anchor):

* **gold accuracy**: hidden anchor trials answered as expected: NN scored <= 2, HR scored >= 4; in a
  NN-vs-HR pair the HR side chosen ("none" counts as wrong);
* **test-retest**: repeated trials agree: ACR scores within 1 point, pair choices identical;
* **too fast**: answers quicker than ``fast_ms`` (1500 ms: faster than one can inspect an image);
* **straight-lining**: all ACR scores identical (zero variance) or a long run of the same score.

Flags (:class:`db.models.QcFlag`, stored comma-separated in ``Rater.qc_flags``): ``gold_fail``,
``retest_inconsistent``, ``too_fast``, ``straight_lining``, ``incomplete``. The answered trials come from
the shared join :func:`db.queries.answered_trials` (the CSV export reads the same one).
"""

from __future__ import annotations

import statistics

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.engine import Database
from db.models import MethodRole, PairChoice, QcFlag, Rater, Rating, Trial, TrialMode
from db.queries import TrialJoin, answered_trials, study_row

FAST_MS = 1500  # answers below this are "too fast"
GOLD_MIN_ACCURACY = 0.75  # flag below this fraction of anchor trials answered as expected
RETEST_MIN_AGREEMENT = 0.5  # flag below this fraction of repeats agreeing
FAST_MAX_FRACTION = 0.25  # flag when more than this fraction of answers is too fast
STRAIGHT_MIN_RUN = 8  # flag a run of >= this many identical consecutive ACR scores ...
STRAIGHT_MIN_N = 5  # ... or zero variance over at least this many ACR scores

_RECORD_FIELDS = (
    "trial_id", "position", "mode", "is_gold", "repeat_of", "score", "choice", "response_ms", "role", "role_a", "role_b"
)


def _record_columns(j: TrialJoin) -> tuple:
    return (
        Trial.rater_id, Trial.id, Trial.position, Trial.mode, Trial.is_gold, Trial.is_repeat_of,
        Rating.score, Rating.choice, Rating.response_ms, j.method.role, j.method_a.role, j.method_b.role,
    )


def _records(s: Session, study_id: int, rater_ids=None) -> dict[int, list[dict]]:
    """Answered trials per rater in position order, with the anchor role of each shown stimulus."""
    out: dict[int, list[dict]] = {}
    for rid, *values in s.execute(answered_trials(study_id, _record_columns, rater_ids)):
        rec = dict(zip(_RECORD_FIELDS, values))
        rec["is_gold"] = bool(rec["is_gold"])
        out.setdefault(rid, []).append(rec)
    return out


def gold_correct(rec: dict) -> bool | None:
    """Whether a gold trial was answered as the anchors demand (None for non-gold trials)."""
    if not rec["is_gold"]:
        return None
    if rec["mode"] == TrialMode.ACR:
        if rec["role"] == MethodRole.LOW_ANCHOR:
            return rec["score"] <= 2
        if rec["role"] == MethodRole.HIGH_ANCHOR:
            return rec["score"] >= 4
        return None
    hr_side = PairChoice.A if rec["role_a"] == MethodRole.HIGH_ANCHOR else PairChoice.B
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
        if a["mode"] == TrialMode.ACR:
            d = abs(a["score"] - b["score"])
            diffs.append(d)
            agree.append(d <= 1)
        else:
            agree.append(a["choice"] == b["choice"])
    times = [r["response_ms"] for r in recs if r["response_ms"] is not None]
    fast = [t for t in times if t < fast_ms]
    scores = [r["score"] for r in recs if r["mode"] == TrialMode.ACR]
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
        flags.append(QcFlag.GOLD_FAIL)
    if agree and q["retest_agreement"] < RETEST_MIN_AGREEMENT:
        flags.append(QcFlag.RETEST_INCONSISTENT)
    if times and q["fast_fraction"] > FAST_MAX_FRACTION:
        flags.append(QcFlag.TOO_FAST)
    if (len(scores) >= STRAIGHT_MIN_N and std == 0) or run >= STRAIGHT_MIN_RUN:
        flags.append(QcFlag.STRAIGHT_LINING)
    if not completed:
        flags.append(QcFlag.INCOMPLETE)
    q["flags"] = flags
    return q


def store_rater_flags(s: Session, rater: Rater, fast_ms: int = FAST_MS) -> dict:
    """Compute one rater's QC inside an open write session and record the flags on the rater row."""
    q = compute_qc(_records(s, rater.study_id, [rater.id]).get(rater.id, []), rater.completed_at is not None, fast_ms)
    rater.qc_flags = ",".join(q["flags"])
    return q


def study_qc(s: Session, study_id: int, fast_ms: int = FAST_MS) -> list[tuple[Rater, dict]]:
    """(rater row, :func:`compute_qc` result) for every rater of a study, creation order; nothing written."""
    recs = _records(s, study_id)
    raters = s.scalars(select(Rater).where(Rater.study_id == study_id).order_by(Rater.id))
    return [(r, compute_qc(recs.get(r.id, []), r.completed_at is not None, fast_ms)) for r in raters]


def rater_qc(db: Database, name: str, fast_ms: int = FAST_MS, store: bool = True) -> list[dict]:
    """QC of every rater of study ``name`` (creation order); with ``store`` records the flags in the DB.

    Recording is this explicit call (and a rater's completion, :func:`store_rater_flags`); exports and
    reports compute the current flags read-only. Each dict: token, display, completed, n_trials,
    n_ratings, gold_n, gold_correct, gold_accuracy, retest_n, retest_agreement, retest_mean_abs_diff,
    fast_n, fast_fraction, median_response_ms, score_std, longest_same_score_run, flags (list of
    :class:`QcFlag`). Ratios are None when undefined.
    """

    def work(s: Session) -> list[dict]:
        out = []
        for r, q in study_qc(s, study_row(s, name).id, fast_ms):
            flags = ",".join(q["flags"])
            if store and r.qc_flags != flags:
                r.qc_flags = flags
            out.append(
                {"token": r.token, "display": r.display, "completed": r.completed_at is not None,
                 "n_trials": r.n_trials, **q}
            )
        return out

    return db.run(work, write=store)


def current_flags(db: Database, name: str, fast_ms: int = FAST_MS) -> dict[str, list[str]]:
    """``{rater token: current QC flags}`` of study ``name``, computed now and not recorded."""
    return {q["token"]: [str(f) for f in q["flags"]] for q in rater_qc(db, name, fast_ms, store=False)}
