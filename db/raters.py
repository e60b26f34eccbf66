"""Raters: starting one (balanced assignment of their whole trial list) and reading their progress."""

from __future__ import annotations

import datetime as dt
import secrets
from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import assignment
from db.engine import Database
from db.errors import RatingRejected, StudyClosed, StudyFull
from db.models import Rater, Rating, Study, StudyMode, StudyStatus, Trial, TrialMode, utcnow
from db.queries import done_count, rater_row, stimulus_methods, study_row, test_stimuli, vote_key, vote_rows
from db.studies import min_budget
from db.views import RaterInfo

#: A rater inactive this long (no answer, no trial shown) and not finished counts as gone: their
#: unanswered trials stop counting as votes, so new raters get those stimuli. Nothing is deleted;
#: if they come back they continue their list (the stimulus then gets a surplus vote).
ABANDONED_AFTER = dt.timedelta(hours=2)
#: The same for a rater who has not answered any trial yet (consent given, then Back, a closed tab, a
#: second start): their list holds its stimuli only this long, so unstarted lists never exhaust a study.
UNSTARTED_AFTER = dt.timedelta(minutes=15)


def _aware(t: dt.datetime | None) -> dt.datetime | None:
    return t if t is None or t.tzinfo else t.replace(tzinfo=dt.UTC)


def _active_raters(s: Session, study_id: int, now: dt.datetime) -> set[int]:
    """Raters not finished whose last sign of life (start, or a trial shown) is within
    :data:`ABANDONED_AFTER`, or within :data:`UNSTARTED_AFTER` for raters with no answer yet."""
    last_shown = dict(
        s.execute(
            select(Trial.rater_id, func.max(Trial.shown_at))
            .join(Rater, Trial.rater_id == Rater.id)
            .where(Rater.study_id == study_id)
            .group_by(Trial.rater_id)
        ).all()
    )
    started = set(  # raters with at least one answer
        s.scalars(
            select(Rating.rater_id).join(Rater, Rating.rater_id == Rater.id).where(Rater.study_id == study_id).distinct()
        )
    )
    active = set()
    for rid, created, completed in s.execute(
        select(Rater.id, Rater.created_at, Rater.completed_at).where(Rater.study_id == study_id)
    ):
        last = max(x for x in (_aware(created), _aware(last_shown.get(rid))) if x is not None)
        window = ABANDONED_AFTER if rid in started else UNSTARTED_AFTER
        if completed is None and last >= now - window:
            active.add(rid)
    return active


def assigned_counts(s: Session, study_id: int, now: dt.datetime | None = None) -> Counter:
    """Votes per :attr:`db.assignment.Item.key`, repeats excluded: answered trials, plus unanswered
    trials of raters still active (see :data:`ABANDONED_AFTER` and :data:`UNSTARTED_AFTER`)."""
    active = _active_raters(s, study_id, now or utcnow())
    method_of = stimulus_methods(s, study_id)
    counts: Counter = Counter()
    for rid, mode, sid, a, b, answered in vote_rows(s, study_id):
        if answered is not None or rid in active:
            counts[vote_key(mode, sid, a, b, method_of)] += 1
    return counts


def budgets(st: Study, n_items: dict[TrialMode, int], n_methods: int) -> dict[TrialMode, int]:
    """Non-repeat trials per trial mode for one rater: every item, or the cap minus the repeats,
    split between ACR and pairs in proportion to their item counts (each at least its minimum)."""
    if st.trials_per_rater is None:
        return dict(n_items)
    total = max(1, st.trials_per_rater - st.repeats)
    if len(n_items) == 1:
        ((m, n),) = n_items.items()
        return {m: min(n, total)}
    lo = min_budget(StudyMode.BOTH, n_methods)
    na, np_ = n_items[TrialMode.ACR], n_items[TrialMode.PAIR]
    ba = min(na, max(lo[TrialMode.ACR], round(total * na / max(1, na + np_))))
    return {TrialMode.ACR: ba, TrialMode.PAIR: min(np_, max(lo[TrialMode.PAIR], total - ba))}


def _choose_slots(s: Session, st: Study, rater_seed: int) -> list[assignment.Slot]:
    """The new rater's ordered list (least-voted items first); raises :class:`StudyFull`."""
    stim = test_stimuli(s, st.id)
    items = {m: assignment.latin_items(stim, m, seed=st.seed) for m in StudyMode(st.mode).trial_modes}
    counts = assigned_counts(s, st.id)
    all_items = [it for v in items.values() for it in v]
    if all_items and all(counts.get(it.key, 0) >= st.votes_per_stimulus for it in all_items):
        raise StudyFull(
            f"study {st.name!r} has reached its target of {st.votes_per_stimulus} votes per "
            "stimulus; thank you, no more raters are needed"
        )
    n_methods = len({r.method_id for r in stim})
    budget = budgets(st, {m: len(v) for m, v in items.items()}, n_methods)
    chosen = {m: assignment.select_items(v, counts, budget[m]) for m, v in items.items()}
    n_rep = st.repeats
    if st.trials_per_rater is not None:
        n_rep = min(n_rep, max(0, st.trials_per_rater - sum(len(v) for v in chosen.values())))
    return assignment.build_rater_list(
        chosen.get(TrialMode.ACR, []), chosen.get(TrialMode.PAIR, []), n_rep, rater_seed
    )


def _insert_trials(s: Session, rater_id: int, slots: list[assignment.Slot]) -> None:
    rows: list[Trial] = []
    for pos, sl in enumerate(slots):
        it = sl.item
        t = Trial(rater_id=rater_id, position=pos, mode=it.mode, is_gold=it.is_gold)
        if it.mode == TrialMode.ACR:
            t.stimulus_id = it.stimuli[0]
        else:
            t.stimulus_a_id, t.stimulus_b_id = it.stimuli[::-1] if sl.swap else it.stimuli
        rows.append(t)
    s.add_all(rows)
    s.flush()  # ids for the repeat links
    for t, sl in zip(rows, slots):
        if sl.repeat_of is not None:
            t.is_repeat_of = rows[sl.repeat_of].id


def start_rater(db: Database, study_name: str, display: str | None = None, *, seed: int | None = None) -> str:
    """Create a rater with a fresh opaque token and assign their whole trial list; returns the token.

    In one transaction holding the study lock: the least-voted items first (see :mod:`db.assignment`;
    votes = answered trials plus the open trials of raters still active: answered within the last
    :data:`ABANDONED_AFTER`, or started within :data:`UNSTARTED_AFTER` and no answer yet),
    every method included, the rater's own seeded order (``seed``: random unless given, stored on the
    rater) with no two versions of one source back to back, anchor trials flagged ``is_gold``,
    ``study.repeats`` test-retest copies, at most ``trials_per_rater`` trials.
    Raises :class:`~db.errors.UnknownStudy`, :class:`~db.errors.StudyClosed`, :class:`~db.errors.StudyFull`
    (every item already has its target votes), :class:`~db.errors.RatingRejected` (a ``ValueError``)
    for a ``display`` over 200 characters.
    """
    if display is not None:
        display = str(display).strip() or None
        if display is not None and len(display) > 200:
            raise RatingRejected("display description is limited to 200 characters")
    rater_seed = secrets.randbits(31) if seed is None else int(seed)

    def work(s: Session) -> str:
        st = study_row(s, study_name, lock=True)  # serialises assignment per study on PostgreSQL
        if st.status != StudyStatus.OPEN:
            raise StudyClosed(f"study {study_name!r} is closed and takes no new raters")
        slots = _choose_slots(s, st, rater_seed)
        token = secrets.token_urlsafe(24)
        rater = Rater(study_id=st.id, token=token, display=display, seed=rater_seed, n_trials=len(slots))
        s.add(rater)
        s.flush()
        _insert_trials(s, rater.id, slots)
        return token

    return db.run(work, write=True)


def get_rater(db: Database, token: str) -> RaterInfo:
    """Progress of the rater with ``token``; raises :class:`~db.errors.UnknownRater`."""

    def work(s: Session) -> RaterInfo:
        r = rater_row(s, token)
        return RaterInfo.of(r, done_count(s, r.id))

    return db.run(work)
