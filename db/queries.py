"""Shared reads of the data layer: row getters and the joins several modules need.

Everything here takes an open :class:`~sqlalchemy.orm.Session` (the caller owns the transaction, see
:meth:`db.engine.Database.run`) and returns rows, never views.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.orm import Session, aliased

from db.assignment import StimRow
from db.errors import UnknownRater, UnknownStudy
from db.models import Method, Rater, Rating, SourceImage, Stimulus, Study, Trial, TrialMode


def study_row(s: Session, name: str, lock: bool = False) -> Study:
    """The study called ``name`` (``lock``: ``FOR UPDATE`` on PostgreSQL); raises :class:`UnknownStudy`."""
    q = select(Study).where(Study.name == name)
    if lock:
        q = q.with_for_update()
    st = s.scalars(q).one_or_none()
    if st is None:
        raise UnknownStudy(f"no study named {name!r}")
    return st


# Built once with bind parameters: this runs on every page view and every answer.
_RATER_ROW = (
    select(
        Rater.id, Rater.token, Rater.display, Rater.n_trials, Rater.completed_at, Rater.completion_code,
        Study.status, Study.name, Study.stimuli_dir, Study.break_every,
    )
    .join(Study, Rater.study_id == Study.id)
    .where(Rater.token == bindparam("token"))
)
_RATER_ROW_LOCKED = _RATER_ROW.with_for_update(of=Rater)
_DONE = select(func.count()).select_from(Rating).where(Rating.rater_id == bindparam("rid"))


def rater_row(s: Session, token: str, lock: bool = False):
    """(id, token, display, n_trials, completed_at, completion_code, status, name, stimuli_dir, break_every)
    of the rater with ``token`` and their study; ``lock`` takes the rater row (PostgreSQL ``FOR UPDATE``).
    Raises :class:`UnknownRater`."""
    if not isinstance(token, str) or not token or len(token) > 64:
        raise UnknownRater("unknown rater token: it is missing or malformed; start again from the study link")
    row = s.execute(_RATER_ROW_LOCKED if lock else _RATER_ROW, {"token": token}).first()
    if row is None:
        raise UnknownRater("unknown rater token: no rater has this token; start again from the study link")
    return row


def done_count(s: Session, rater_id: int) -> int:
    """Trials the rater has answered."""
    return s.scalar(_DONE, {"rid": rater_id}) or 0


def test_stimuli(s: Session, study_id: int) -> list[StimRow]:
    """The stimuli of the study's test (non-calibration) sources, with their method's role."""
    rows = s.execute(
        select(Stimulus.id, Stimulus.method_id, Stimulus.source_id, Method.role)
        .join(Method, Stimulus.method_id == Method.id)
        .join(SourceImage, Stimulus.source_id == SourceImage.id)
        .where(Stimulus.study_id == study_id, SourceImage.is_calibration.is_(False))
    ).all()
    return [StimRow(*r) for r in rows]


def stimulus_methods(s: Session, study_id: int) -> dict[int, int]:
    """Stimulus id -> method id, for every stimulus of the study."""
    return dict(s.execute(select(Stimulus.id, Stimulus.method_id).where(Stimulus.study_id == study_id)).all())


def vote_rows(s: Session, study_id: int) -> Sequence:
    """(rater id, mode, stimulus, stimulus A, stimulus B, rating id or None) of every non-repeat trial."""
    return s.execute(
        select(Trial.rater_id, Trial.mode, Trial.stimulus_id, Trial.stimulus_a_id, Trial.stimulus_b_id, Rating.id)
        .join(Rater, Trial.rater_id == Rater.id)
        .outerjoin(Rating, Rating.trial_id == Trial.id)
        .where(Rater.study_id == study_id, Trial.is_repeat_of.is_(None))
    ).all()


def vote_key(mode: str, stimulus: int | None, a: int | None, b: int | None, method_of: dict[int, int]) -> tuple:
    """The :attr:`db.assignment.Item.key` a trial votes on: ("acr", s) or ("pair", a, b) in method order."""
    if mode == TrialMode.ACR:
        return (TrialMode.ACR, stimulus)
    pa, pb = sorted((a, b), key=lambda x: method_of[x])
    return (TrialMode.PAIR, pa, pb)


@dataclasses.dataclass(frozen=True)
class TrialJoin:
    """Aliases of one answered trial's stimuli, their methods and sources (ACR: ``stimulus``; pair: A and B)."""

    stimulus: type[Stimulus]
    method: type[Method]
    source: type[SourceImage]
    stimulus_a: type[Stimulus]
    method_a: type[Method]
    source_a: type[SourceImage]
    stimulus_b: type[Stimulus]
    method_b: type[Method]


def answered_trials(
    study_id: int, columns: Callable[[TrialJoin], Sequence], rater_ids: Iterable[int] | None = None
) -> Select:
    """Answered trials of the study joined to rating, rater, stimuli, methods and sources, in rater then
    position order; ``columns(join)`` picks what to select (``Rating``, ``Trial``, ``Rater`` and the
    :class:`TrialJoin` aliases are all in the FROM clause). Used by the CSV export and QC."""
    j = TrialJoin(
        aliased(Stimulus), aliased(Method), aliased(SourceImage),
        aliased(Stimulus), aliased(Method), aliased(SourceImage),
        aliased(Stimulus), aliased(Method),
    )
    q = (
        select(*columns(j))
        .select_from(Rating)
        .join(Trial, Rating.trial_id == Trial.id)
        .join(Rater, Rating.rater_id == Rater.id)
        .outerjoin(j.stimulus, Trial.stimulus_id == j.stimulus.id)
        .outerjoin(j.method, j.stimulus.method_id == j.method.id)
        .outerjoin(j.source, j.stimulus.source_id == j.source.id)
        .outerjoin(j.stimulus_a, Trial.stimulus_a_id == j.stimulus_a.id)
        .outerjoin(j.method_a, j.stimulus_a.method_id == j.method_a.id)
        .outerjoin(j.source_a, j.stimulus_a.source_id == j.source_a.id)
        .outerjoin(j.stimulus_b, Trial.stimulus_b_id == j.stimulus_b.id)
        .outerjoin(j.method_b, j.stimulus_b.method_id == j.method_b.id)
        .where(Rater.study_id == study_id)
        .order_by(Rater.id, Trial.position)
    )
    if rater_ids is not None:
        q = q.where(Rater.id.in_(list(rater_ids)))
    return q
