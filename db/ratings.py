"""The rating hot path: the rater page's state and next trial, and storing an answer.

Concurrency: an answer takes the rater row first (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: ``SELECT
... FOR UPDATE``), so concurrent tabs of one rater never double-count. The unique key on
``rating.trial_id`` is the last line of defence: an ``IntegrityError`` becomes the idempotent
duplicate answer (or a rejection if the stored answer differs). Statements are built once with bind
parameters so each request costs little Python time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import numbers
import secrets

from sqlalchemy import bindparam, exists, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from db import assignment
from db.engine import Database
from db.errors import RatingRejected, StudyClosed
from db.models import PairChoice, Rater, Rating, Stimulus, StudyStatus, Trial, TrialMode, utcnow
from db.qc import record_rater_flags
from db.queries import done_count, rater_row
from db.views import RaterInfo, RaterState, SubmitResult, TrialView, stimulus_path

_S0, _SA, _SB = aliased(Stimulus), aliased(Stimulus), aliased(Stimulus)
_FIRST_OPEN = (
    select(Trial.id, Trial.position, Trial.mode, Trial.shown_at, _S0.sha256, _SA.sha256, _SB.sha256)
    .outerjoin(_S0, Trial.stimulus_id == _S0.id)
    .outerjoin(_SA, Trial.stimulus_a_id == _SA.id)
    .outerjoin(_SB, Trial.stimulus_b_id == _SB.id)
    .where(Trial.rater_id == bindparam("rid"), ~exists().where(Rating.trial_id == Trial.id))
    .order_by(Trial.position)
    .limit(1)
)
_TRIAL_FOR_ANSWER = (
    select(Trial.id, Trial.rater_id, Trial.mode, Trial.shown_at, Rating.id)
    .outerjoin(Rating, Rating.trial_id == Trial.id)
    .where(Trial.id == bindparam("tid"))
)
_MARK_SHOWN = (
    update(Trial)
    .where(Trial.id == bindparam("tid"), Trial.shown_at.is_(None))
    .values(shown_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)
_SHOWN_AT = select(Trial.shown_at).where(Trial.id == bindparam("tid"))
_INSERT_RATING = insert(Rating.__table__)  # Core insert: inserted_primary_key, no ORM unit of work
#: Longest plausible response time (a week), in ms.
MAX_RESPONSE_MS = 7 * 24 * 3600 * 1000


def _trial_view(r, t, done: int) -> TrialView:
    """The :class:`TrialView` of a :data:`_FIRST_OPEN` row ``t`` of rater row ``r``."""
    tid, pos, mode, shown_at, sha, sha_a, sha_b = t
    if mode == TrialMode.ACR:
        paths = dict(image_path=stimulus_path(r.stimuli_dir, sha))
    else:
        paths = dict(left_path=stimulus_path(r.stimuli_dir, sha_a), right_path=stimulus_path(r.stimuli_dir, sha_b))
    return TrialView(
        trial_id=tid, position=pos, total=r.n_trials, done=done, mode=TrialMode(mode),
        break_every=r.break_every, shown_at=shown_at, **paths,
    )


def rater_state(db: Database, token: str) -> RaterState:
    """The rater's progress, their study's status and break setting, and their first unanswered trial
    (position order), in one read transaction: what the rater page needs per answer. Nothing is written
    (:func:`show_trial` records the display). Raises :class:`~db.errors.UnknownRater`."""

    def read(s: Session) -> RaterState:
        r = rater_row(s, token)
        t = s.execute(_FIRST_OPEN, {"rid": r.id}).first()
        done = done_count(s, r.id)
        trial = None if t is None else _trial_view(r, t, done)
        return RaterState(RaterInfo.of(r, done), StudyStatus(r.status), r.break_every, trial)

    return db.run(read)


def show_trial(db: Database, trial: TrialView) -> TrialView:
    """``trial`` with ``shown_at`` set: recorded now at its first display, kept on later ones (a page
    refresh, a second tab: a conditional UPDATE, so only the first viewer sets it). A pair trial of an
    ``active`` study gets its pair here (:func:`db.assignment.choose_pair`): use the returned view."""
    if trial.shown_at is not None:
        return trial

    def as_stored(stored) -> TrialView:
        shown_at, folder, sha_a, sha_b = stored
        return dataclasses.replace(trial, shown_at=shown_at, left_path=stimulus_path(folder, sha_a),
                                   right_path=stimulus_path(folder, sha_b))

    def mark_shown(s: Session) -> TrialView | None:
        if trial.mode == TrialMode.PAIR and assignment.needs_choice(s, trial.trial_id):
            return None  # active sampling: the pair is chosen first (below)
        now = utcnow()
        if s.execute(_MARK_SHOWN, {"tid": trial.trial_id, "now": now}).rowcount == 1:
            return dataclasses.replace(trial, shown_at=now)
        if trial.mode == TrialMode.PAIR:  # shown meanwhile (active sampling: maybe another pair than read)
            return as_stored(assignment.stored_pair(s, trial.trial_id))
        return dataclasses.replace(trial, shown_at=s.scalar(_SHOWN_AT, {"tid": trial.trial_id}))

    # A short write transaction of its own: the read that found the trial took no lock.
    view = db.run(mark_shown, write=True)
    if view is not None:
        return view
    # Active sampling: choose from every answer so far without the write lock (may be slightly stale),
    # then store it with shown_at in one conditional UPDATE (a concurrent show of this trial wins).
    choice = db.run(lambda s: assignment.choose_pair(s, trial.trial_id))
    return as_stored(db.run(lambda s: assignment.fix_pair(s, trial.trial_id, choice, utcnow()), write=True))


def next_trial(db: Database, token: str) -> TrialView | None:
    """The rater's first unanswered trial (position order), or ``None`` when all are answered.

    The first call for a trial records ``shown_at`` (later calls, e.g. a page refresh, keep it).
    Raises :class:`~db.errors.UnknownRater`, and :class:`~db.errors.StudyClosed` if trials remain
    but the study is closed.
    """
    state = rater_state(db, token)
    if state.trial is None:
        return None
    if state.status != StudyStatus.OPEN:
        raise StudyClosed(f"study {state.rater.study_name!r} is closed; thank you for taking part")
    return show_trial(db, state.trial)


def _bounded_int(name: str, v, lo: int, hi: int) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise RatingRejected(f"{name} must be a number, got {v!r}")
    if not lo <= v <= hi:
        raise RatingRejected(f"{name} must be between {lo} and {hi}, got {v}")
    return int(round(v))


@dataclasses.dataclass(frozen=True)
class _Answer:
    """A validated answer as it will be stored (``score`` xor ``choice``)."""

    score: int | None
    choice: PairChoice | None
    response_ms: int | None
    viewport_w: int | None
    viewport_h: int | None
    device_pixel_ratio: float | None

    @classmethod
    def check(cls, score, choice, response_ms, viewport_w, viewport_h, device_pixel_ratio) -> _Answer:
        """Validate the client's values; raises :class:`RatingRejected`."""
        if score is not None:
            whole = isinstance(score, numbers.Integral) or (
                isinstance(score, numbers.Real) and float(score).is_integer()
            )
            if isinstance(score, bool) or not whole:
                raise RatingRejected(f"score must be a whole number from 1 (bad) to 5 (excellent), got {score!r}")
            score = int(score)
            if not 1 <= score <= 5:
                raise RatingRejected(f"score must be from 1 (bad) to 5 (excellent), got {score}")
        if choice is not None:
            if choice not in tuple(PairChoice):
                raise RatingRejected(f"choice must be one of {tuple(c.value for c in PairChoice)}, got {choice!r}")
            choice = PairChoice(choice)
        if score is None and choice is None:
            raise RatingRejected("no answer given: send a score (ACR trial) or a choice (pair trial)")
        if score is not None and choice is not None:
            raise RatingRejected("send either a score (ACR trial) or a choice (pair trial), not both")
        response_ms = _bounded_int("response_ms", response_ms, 0, MAX_RESPONSE_MS)
        viewport_w = _bounded_int("viewport_w", viewport_w, 1, 100_000)
        viewport_h = _bounded_int("viewport_h", viewport_h, 1, 100_000)
        dpr = device_pixel_ratio
        if dpr is not None:
            if isinstance(dpr, bool) or not isinstance(dpr, numbers.Real) or not math.isfinite(dpr) or not 0 < dpr <= 16:
                raise RatingRejected(f"device_pixel_ratio must be a number in (0, 16], got {dpr!r}")
            dpr = float(dpr)
        return cls(score, choice, response_ms, viewport_w, viewport_h, dpr)


def _existing(s: Session, token: str, trial_id: int, ans: _Answer) -> SubmitResult:
    """The stored answer of ``trial_id`` as a duplicate result, or a rejection if it differs."""
    r = rater_row(s, token)
    rt = s.execute(
        select(Rating.id, Rating.score, Rating.choice).where(Rating.trial_id == trial_id, Rating.rater_id == r.id)
    ).first()
    if rt is None:
        raise RatingRejected(f"trial {trial_id} does not belong to this rater")
    if (rt.score, rt.choice) != (ans.score, ans.choice):
        old = rt.score if rt.score is not None else rt.choice
        new = ans.score if ans.score is not None else ans.choice.value
        raise RatingRejected(f"trial {trial_id} was already answered ({old!r}); a different answer ({new!r}) is refused")
    return SubmitResult(
        trial_id=trial_id, rating_id=rt.id, duplicate=True, done=done_count(s, r.id), total=r.n_trials,
        completed=r.completed_at is not None, completion_code=r.completion_code,
    )


def _completion_code() -> str:
    raw = secrets.token_hex(4).upper()
    return f"MOS-{raw[:4]}-{raw[4:]}"


def _store(s: Session, token: str, trial_id: int, ans: _Answer) -> SubmitResult:
    """One answer inside a write transaction (see :func:`submit_rating`)."""
    r = rater_row(s, token, lock=True)  # serialises this rater's answers on PostgreSQL
    t = s.execute(_TRIAL_FOR_ANSWER, {"tid": trial_id}).first()
    if t is None or t.rater_id != r.id:
        raise RatingRejected(f"trial {trial_id} does not belong to this rater")
    tid, _, mode, shown_at, existing = t
    if existing is not None:
        return _existing(s, token, tid, ans)
    if r.status != StudyStatus.OPEN:
        raise StudyClosed(f"study {r.name!r} is closed; answers are no longer accepted")
    if mode == TrialMode.ACR and ans.score is None:
        raise RatingRejected(f"trial {trial_id} is a rating trial: send a score from 1 to 5, not a choice")
    if mode == TrialMode.PAIR and ans.choice is None:
        raise RatingRejected(f"trial {trial_id} is a comparison trial: send a choice A, B or none, not a score")
    if shown_at is None:
        raise RatingRejected(f"trial {trial_id} has not been shown yet; fetch it with next_trial first")
    now = utcnow()
    ms = ans.response_ms
    if ms is None:  # server-side fallback: time since the trial was first shown
        ms = max(0, int((now - shown_at.replace(tzinfo=shown_at.tzinfo or dt.UTC)).total_seconds() * 1000))
    values = {**vars(ans), "trial_id": tid, "rater_id": r.id, "answered_at": now, "response_ms": ms}
    # IntegrityError here if a concurrent transaction stored this trial's answer.
    rating_id = s.execute(_INSERT_RATING, values).inserted_primary_key[0]
    done = done_count(s, r.id)
    completed, code = r.completed_at is not None, r.completion_code
    if done >= r.n_trials and not completed:
        rater = s.get(Rater, r.id)
        rater.completed_at, rater.completion_code = now, _completion_code()
        completed, code = True, rater.completion_code
    return SubmitResult(
        trial_id=tid, rating_id=rating_id, duplicate=False, done=done, total=r.n_trials,
        completed=completed, completion_code=code,
    )


def submit_rating(
    db: Database,
    token: str,
    trial_id: int,
    *,
    score: int | None = None,
    choice: str | None = None,
    response_ms: int | None = None,
    viewport_w: int | None = None,
    viewport_h: int | None = None,
    device_pixel_ratio: float | None = None,
) -> SubmitResult:
    """Store the answer to one trial (ACR ``score`` 1..5, pair ``choice`` "A" (left) / "B" (right) / "none").

    Idempotent: resending the stored answer returns it with ``duplicate=True`` and stores nothing.
    Raises :class:`~db.errors.RatingRejected` (nothing stored) for a bad or missing score/choice, the
    wrong kind of answer for the trial, an unknown token (:class:`~db.errors.UnknownRater`), a trial of
    another rater or not yet shown, a closed study (:class:`~db.errors.StudyClosed`), or a different
    answer to an answered trial. ``response_ms`` defaults to the server-side time since ``shown_at``.
    The last answer completes the rater (completion code), and then their QC flags are recorded
    (:func:`db.qc.record_rater_flags`, after the answer's transaction: it takes no lock while screening).
    """
    ans = _Answer.check(score, choice, response_ms, viewport_w, viewport_h, device_pixel_ratio)
    if isinstance(trial_id, bool) or not isinstance(trial_id, numbers.Integral):
        raise RatingRejected(f"trial id must be an integer, got {trial_id!r}")
    trial_id = int(trial_id)
    try:
        result = db.run(lambda s: _store(s, token, trial_id, ans), write=True)
    except IntegrityError:
        # Lost a race against an identical (or different) answer: report what is stored.
        return db.run(lambda s: _existing(s, token, trial_id, ans))
    if result.completed and not result.duplicate:  # this answer completed the rater
        record_rater_flags(db, token)
    return result
