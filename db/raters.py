"""Raters: starting one (balanced assignment of their whole trial list) and reading their progress."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import secrets
from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db import assignment, crowd
from db.crowd import Participant
from db.engine import Database
from db.errors import RatingRejected, StudyClosed, StudyFull
from db.models import Rater, Rating, Stimulus, Study, StudyMode, StudyStatus, Trial, TrialMode, utcnow
from db.queries import done_count, rater_row, stimulus_methods, study_row, test_stimuli, vote_key, vote_rows
from db.studies import min_budget
from db.views import RaterInfo, StudyOutlook

#: A rater inactive this long (no answer, no trial shown) and not finished counts as gone: their
#: unanswered trials stop counting as votes, so new raters get those stimuli. Nothing is deleted;
#: if they come back they continue their list (the stimulus then gets a surplus vote).
ABANDONED_AFTER = dt.timedelta(hours=2)
#: The same for a rater who has not answered any trial yet (consent given, then Back, a closed tab, a
#: second start): their list steers new raters to other stimuli only this long, and never closes the
#: study (see :class:`Votes`), so any number of starts without answers cannot shut a study to others.
UNSTARTED_AFTER = dt.timedelta(minutes=15)


def _aware(t: dt.datetime | None) -> dt.datetime | None:
    return t if t is None or t.tzinfo else t.replace(tzinfo=dt.UTC)


def _activity(s: Session, study_id: int, now: dt.datetime) -> tuple[dict[int, dt.datetime], set[int]]:
    """({rater: last sign of life} of raters with an answer, not finished, active within
    :data:`ABANDONED_AFTER`; raters with no answer yet, active within :data:`UNSTARTED_AFTER`).
    A sign of life is the start or a trial shown."""
    last_shown = dict(
        s.execute(
            select(Trial.rater_id, func.max(Trial.shown_at))
            .join(Rater, Trial.rater_id == Rater.id)
            .where(Rater.study_id == study_id)
            .group_by(Trial.rater_id)
        ).all()
    )
    answering = set(  # raters with at least one answer
        s.scalars(
            select(Rating.rater_id).join(Rater, Rating.rater_id == Rater.id).where(Rater.study_id == study_id).distinct()
        )
    )
    started: dict[int, dt.datetime] = {}
    unstarted: set[int] = set()
    for rid, created, completed in s.execute(
        select(Rater.id, Rater.created_at, Rater.completed_at).where(Rater.study_id == study_id)
    ):
        last = max(x for x in (_aware(created), _aware(last_shown.get(rid))) if x is not None)
        if completed is not None:
            continue
        if rid in answering and last >= now - ABANDONED_AFTER:
            started[rid] = last
        elif rid not in answering and last >= now - UNSTARTED_AFTER:
            unstarted.add(rid)
    return started, unstarted


@dataclasses.dataclass
class Votes:
    """Votes per :attr:`db.assignment.Item.key`, repeats excluded, by how firm they are."""

    answered: Counter  # answered trials
    held: Counter  # open trials of raters who have answered and are still active (:data:`ABANDONED_AFTER`)
    unstarted: Counter  # open trials of raters with no answer yet, started within :data:`UNSTARTED_AFTER`
    released_at: dt.datetime | None  # when the first rater holding open trials counts as gone

    @property
    def firm(self) -> Counter:
        """Answered plus held: what decides whether an item has reached its target. Unstarted lists
        never do, so starting and leaving (any number of times) cannot close a study to others."""
        return self.answered + self.held

    @property
    def total(self) -> Counter:
        """Every vote and hold: what spreads new raters over the items."""
        return self.answered + self.held + self.unstarted


def vote_counts(s: Session, study_id: int, now: dt.datetime | None = None) -> Votes:
    """The study's :class:`Votes` at ``now``; votes of screened-out raters (:func:`db.assignment.screened_out`)
    are left out, so their items are handed out again (top-up)."""
    now = now or utcnow()
    started, unstarted = _activity(s, study_id, now)
    method_of = stimulus_methods(s, study_id)
    votes = Votes(Counter(), Counter(), Counter(), None)
    holders = set()
    screened = assignment.screened_out(s, study_id)  # top-up: their votes count toward no target
    for rid, mode, sid, a, b, answered in vote_rows(s, study_id):
        if rid in screened:
            continue
        key = vote_key(mode, sid, a, b, method_of)
        if answered is not None:
            votes.answered[key] += 1
        elif rid in started:
            votes.held[key] += 1
            holders.add(rid)
        elif rid in unstarted:
            votes.unstarted[key] += 1
    if holders:
        votes.released_at = min(started[r] for r in holders) + ABANDONED_AFTER
    return votes


def _full_message(s: Session, st: Study, votes: Votes, now: dt.datetime) -> str:
    """Why :class:`StudyFull`: the target is reached, or the remaining votes are held by raters rating now."""
    if votes.released_at is None:
        n = s.scalar(select(func.count()).select_from(Rating).join(Rater).where(Rater.study_id == st.id)) or 0
        return (
            f"study {st.name!r} has reached its target of {st.votes_per_stimulus} votes per stimulus "
            f"with {n} ratings stored; thank you, no more raters are needed"
        )
    minutes = max(1, math.ceil((votes.released_at - now).total_seconds() / 60))
    return (
        f"study {st.name!r}: every remaining vote is held by raters rating now; try again later "
        f"(within {minutes} minutes, if one of them stops answering, their trials are freed)"
    )


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
    now = utcnow()
    votes = vote_counts(s, st.id, now)
    firm, counts = votes.firm, votes.total
    all_items = [it for v in items.values() for it in v]
    reached, priority = assignment.targets(s, st, all_items, firm, votes.answered)  # per study.sampling
    if all_items and len(reached) == len({it.key for it in all_items}):
        raise StudyFull(_full_message(s, st, votes, now))
    n_methods = len({r.method_id for r in stim})
    budget = budgets(st, {m: len(v) for m, v in items.items()}, n_methods)
    chosen = {m: assignment.select_items(v, counts, budget[m], reached, priority) for m, v in items.items()}
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


def start_rater(db: Database, study_name: str, display: str | None = None, *, seed: int | None = None,
                participant: Participant | None = None) -> str:
    """Create a rater with a fresh opaque token and assign their whole trial list; returns the token.

    In one transaction holding the study lock: the least-voted items first (see :mod:`db.assignment`;
    votes = answered trials plus the open trials of raters still active: answered within the last
    :data:`ABANDONED_AFTER`, or started within :data:`UNSTARTED_AFTER` and no answer yet; items whose
    answered and held votes reach the target come last, and only those close the study: lists with no
    answer never do, see :class:`Votes`),
    every method included, the rater's own seeded order (``seed``: random unless given, stored on the
    rater) with no two versions of one source back to back, anchor trials flagged ``is_gold``,
    ``study.repeats`` test-retest copies, at most ``trials_per_rater`` trials.
    A crowd study (``study.crowd``) needs the platform's ``participant``; one who already has a rater in
    this study gets that rater's token back (a second visit resumes, even once the study is full or closed).
    Raises :class:`~db.errors.UnknownStudy`, :class:`~db.errors.StudyClosed`, :class:`~db.errors.StudyFull`
    (every item has its target in answered votes, or in answered votes plus trials held by raters
    answering now: the message says which), :class:`~db.errors.RatingRejected` (a ``ValueError``)
    for a ``display`` over 200 characters or a crowd study without a participant.
    """
    if display is not None:
        display = str(display).strip() or None
        if display is not None and len(display) > 200:
            raise RatingRejected("display description is limited to 200 characters")
    rater_seed = secrets.randbits(31) if seed is None else int(seed)

    def work(s: Session) -> str:
        st = study_row(s, study_name, lock=True)  # serialises assignment per study on PostgreSQL
        if participant is not None:
            known = _participant_token(s, st.id, participant.participant_id)
            if known is not None:
                return known
        elif st.crowd:
            raise RatingRejected(f"this study takes participants from {crowd.platform(st.crowd).label} only: "
                                 "please open it from there")
        if st.status != StudyStatus.OPEN:
            raise StudyClosed(f"study {study_name!r} is closed and takes no new raters")
        slots = _choose_slots(s, st, rater_seed)
        token = secrets.token_urlsafe(24)
        rater = Rater(study_id=st.id, token=token, display=display, seed=rater_seed, n_trials=len(slots))
        if participant is not None and st.crowd:
            rater.participant_id, rater.crowd_params = participant.participant_id, participant.params_json()
        s.add(rater)
        s.flush()
        _insert_trials(s, rater.id, slots)
        return token

    try:
        return db.run(work, write=True)
    except IntegrityError:  # the same participant started at once in another tab and won the race
        if participant is None:
            raise
        token = participant_rater(db, study_name, participant.participant_id)
        if token is None:
            raise
        return token


def _participant_token(s: Session, study_id: int, participant_id: str) -> str | None:
    return s.scalar(select(Rater.token).where(Rater.study_id == study_id, Rater.participant_id == participant_id))


def participant_rater(db: Database, study_name: str, participant_id: str) -> str | None:
    """The token of the rater of ``study_name`` with this crowd participant ID, or None."""
    return db.run(lambda s: _participant_token(s, study_row(s, study_name).id, participant_id))


#: Assumed answer times for the consent page's estimate (s), until the study has answers to measure.
SECONDS_PER_TRIAL = {TrialMode.ACR: 8.0, TrialMode.PAIR: 10.0}


def study_outlook(db: Database, study_name: str) -> StudyOutlook:
    """What a new rater of ``study_name`` would face now (a read; nothing is assigned or stored): whether the
    study takes raters (``open`` | ``closed`` | ``full``), the trials of the list they would get, the
    median answer time so far (or :data:`SECONDS_PER_TRIAL`), and the largest stimulus. Raises
    :class:`~db.errors.UnknownStudy`."""

    def work(s: Session) -> StudyOutlook:
        st = study_row(s, study_name)
        per_mode, status, retry = Counter(), StudyStatus(st.status).value, None
        if st.status == StudyStatus.OPEN:
            try:
                per_mode = Counter(sl.item.mode for sl in _choose_slots(s, st, 0))
            except StudyFull:
                status = "full"
                released = vote_counts(s, st.id).released_at
                if released is not None:
                    retry = max(1, math.ceil((released - utcnow()).total_seconds() / 60))
        seconds = {}
        for mode in StudyMode(st.mode).trial_modes:
            times = sorted(s.scalars(
                select(Rating.response_ms).join(Trial, Rating.trial_id == Trial.id).join(Rater, Rating.rater_id == Rater.id)
                .where(Rater.study_id == st.id, Trial.mode == mode, Rating.response_ms.is_not(None)).limit(2000)))
            seconds[mode] = times[len(times) // 2] / 1000 if len(times) >= 20 else SECONDS_PER_TRIAL[mode]
        widths, heights = zip(*[(w, h) for w, h in s.execute(select(Stimulus.width, Stimulus.height)
                                                             .where(Stimulus.study_id == st.id))] or [(0, 0)])
        return StudyOutlook(status, retry, StudyMode(st.mode), dict(per_mode), seconds, max(widths), max(heights))

    return db.run(work)


def completion_redirect(db: Database, token: str) -> str | None:
    """Where the finished rater ``token`` is sent: their study's completion URL template filled with their
    completion code and captured parameters; None before completion or without a template.
    The result is a credential: give it to that rater's browser only, never log it."""

    def work(s: Session) -> str | None:
        row = s.execute(
            select(Rater.completion_code, Rater.completed_at, Rater.participant_id, Rater.crowd_params,
                   Study.completion_url, Study.crowd)
            .join(Study, Rater.study_id == Study.id).where(Rater.token == token)
        ).first()
        if row is None or row.completed_at is None or not row.completion_url:
            return None
        return crowd.completion_url(row.completion_url, row.completion_code, row.participant_id, row.crowd_params,
                                    row.crowd)

    return db.run(work)


def get_rater(db: Database, token: str) -> RaterInfo:
    """Progress of the rater with ``token``; raises :class:`~db.errors.UnknownRater`."""

    def work(s: Session) -> RaterInfo:
        r = rater_row(s, token)
        return RaterInfo.of(r, done_count(s, r.id))

    return db.run(work)
