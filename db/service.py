"""The MOS data layer used by the rater app, the study builder and the admin page.

Every function takes a :class:`db.engine.Database` and runs in one transaction (``next_trial``: a
read, then a short conditional UPDATE of ``shown_at`` the first time a trial is shown); writes take their
locks first (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: ``SELECT ... FOR UPDATE`` on the study row for
assignment and on the rater row for answers), so concurrent raters never lose or double-count a
rating. The unique key on ``rating.trial_id`` is the last line of defence: an ``IntegrityError`` is
turned into the idempotent duplicate answer (or a rejection if the stored answer differs).

Blindness: :class:`TrialView` and :class:`CalibrationExample` carry only opaque ids and stimulus file
paths ``<stimuli_dir>/<sha256>.png``; method names appear only in admin functions
(:func:`study_status`, :func:`export_ratings_csv`, :func:`rater_qc`, :func:`mos_table`,
:func:`preference_table`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import numbers
import secrets
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from sqlalchemy import bindparam, exists, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, aliased

from db import assignment
from db.engine import Database
from db.models import (
    PAIR_CHOICES,
    STUDY_MODES,
    Method,
    Rater,
    Rating,
    SourceImage,
    Stimulus,
    Study,
    Trial,
    utcnow,
)

T = TypeVar("T")

# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------


class RatingRejected(ValueError):
    """An answer (or a request on behalf of a rater) was refused; the message says why. Nothing stored."""


class UnknownRater(RatingRejected):
    """The rater token is not in the database (mistyped, forged, or from a deleted study)."""


class StudyClosed(RatingRejected):
    """The study no longer accepts raters or answers."""


class StudyFull(RuntimeError):
    """Every stimulus (or pair) already has its target number of votes; no new raters are needed."""


class UnknownStudy(LookupError):
    """No study with that name."""


class StudyExists(ValueError):
    """A study with that name is already registered."""


# ------------------------------------------------------------------------------------------------
# Views handed to the app (plain dataclasses, no ORM objects, no method names)
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StudyInfo:
    id: int
    name: str
    mode: str  # "acr" | "pair" | "both"
    status: str  # "open" | "closed"
    scale: int
    votes_per_stimulus: int  # target votes per stimulus (ACR) or per pair
    trials_per_rater: int | None  # cap (repeats included); None = every stimulus/pair once
    break_every: int  # suggest a break every N trials; 0 = never
    repeats: int  # test-retest repeats per rater
    crop: int | None  # HR crop size in px (None: whole images)
    stimuli_dir: str  # absolute folder of the stimulus files

    @property
    def is_open(self) -> bool:
        return self.status == "open"


@dataclasses.dataclass(frozen=True)
class RaterInfo:
    token: str
    study_name: str
    done: int  # answered trials
    total: int  # trials assigned
    completed: bool
    completion_code: str | None  # set once every trial is answered
    display: str | None


@dataclasses.dataclass(frozen=True)
class CalibrationExample:
    """An instruction image: a calibration source (never a trial) rendered by an anchor method."""

    image_path: str
    score: int  # 1 for nearest neighbour, 5 for HR
    label: str  # "bad" | "excellent" (ITU-T P.910 ACR labels)
    source_index: int  # 0, 1, ... : the two images of one calibration source share it


@dataclasses.dataclass(frozen=True)
class TrialView:
    """What the page shows for one trial. Paths are ``<stimuli_dir>/<sha256>.png``.

    ``position`` is 0-based (show ``position + 1`` of ``total``); ``done`` = trials answered so far.
    ACR: ``image_path`` set, pair: ``left_path`` (answer "A") and ``right_path`` (answer "B") set.
    """

    trial_id: int
    position: int
    total: int
    done: int
    mode: str  # "acr" | "pair"
    image_path: str | None = None
    left_path: str | None = None
    right_path: str | None = None
    break_every: int = 0
    shown_at: dt.datetime | None = None

    @property
    def break_due(self) -> bool:
        """True when a break prompt should come before this trial (every ``break_every`` trials)."""
        return self.break_every > 0 and self.position > 0 and self.position % self.break_every == 0


@dataclasses.dataclass(frozen=True)
class SubmitResult:
    trial_id: int
    rating_id: int
    duplicate: bool  # True: the same answer was already stored (double click/refresh); nothing new
    done: int
    total: int
    completed: bool
    completion_code: str | None


# Specs for register_study (the study builder fills them).
@dataclasses.dataclass(frozen=True)
class MethodSpec:
    name: str
    role: str = "test"  # "low_anchor" (nearest) | "high_anchor" (hr) | "test"
    spec: str | None = None


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    name: str
    hr_sha256: str
    width: int
    height: int
    is_calibration: bool = False


@dataclasses.dataclass(frozen=True)
class StimulusSpec:
    method: str  # MethodSpec.name
    source: str  # SourceSpec.name
    sha256: str  # of the PNG bytes; the file is <stimuli_dir>/<sha256>.png
    width: int
    height: int
    psnr: float | None  # None (or inf) for an image identical to HR
    ssim: float | None


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------

_RETRY_SQLSTATES = {"40001", "40P01"}  # PostgreSQL serialization failure, deadlock detected


def _retrying(fn: Callable[[], T], attempts: int = 6) -> T:
    """Run ``fn`` (one whole transaction) again after a transient lock error (deadlock/busy)."""
    for i in range(attempts):
        try:
            return fn()
        except OperationalError as e:
            code = getattr(getattr(e, "orig", None), "sqlstate", None)
            transient = code in _RETRY_SQLSTATES or "database is locked" in str(e)
            if not transient or i == attempts - 1:
                raise
            time.sleep(0.01 * (2**i))
        except DBAPIError as e:
            code = getattr(getattr(e, "orig", None), "sqlstate", None)
            if code not in _RETRY_SQLSTATES or i == attempts - 1:
                raise
            time.sleep(0.01 * (2**i))
    raise AssertionError("unreachable")


def _study_info(st: Study) -> StudyInfo:
    return StudyInfo(
        id=st.id,
        name=st.name,
        mode=st.mode,
        status=st.status,
        scale=st.scale,
        votes_per_stimulus=st.votes_per_stimulus,
        trials_per_rater=st.trials_per_rater,
        break_every=st.break_every,
        repeats=st.repeats,
        crop=st.crop,
        stimuli_dir=st.stimuli_dir,
    )


def _get_study(s: Session, name: str, lock: bool = False) -> Study:
    q = select(Study).where(Study.name == name)
    if lock:
        q = q.with_for_update()
    st = s.scalars(q).one_or_none()
    if st is None:
        raise UnknownStudy(f"no study named {name!r}")
    return st


def _get_rater(s: Session, token: str, lock: bool = False) -> Rater:
    if not isinstance(token, str) or not token or len(token) > 64:
        raise UnknownRater("unknown rater token: it is missing or malformed; start again from the study link")
    q = select(Rater).where(Rater.token == token)
    if lock:
        q = q.with_for_update()
    r = s.scalars(q).one_or_none()
    if r is None:
        raise UnknownRater("unknown rater token: no rater has this token; start again from the study link")
    return r


def _done_count(s: Session, rater_id: int) -> int:
    return s.scalar(_DONE, {"rid": rater_id}) or 0


def _path(st: Study, sha: str) -> str:
    return str(Path(st.stimuli_dir) / f"{sha}.png")


def _test_stimuli(s: Session, study_id: int) -> list[assignment.StimRow]:
    rows = s.execute(
        select(Stimulus.id, Stimulus.method_id, Stimulus.source_id, Method.role)
        .join(Method, Stimulus.method_id == Method.id)
        .join(SourceImage, Stimulus.source_id == SourceImage.id)
        .where(Stimulus.study_id == study_id, SourceImage.is_calibration.is_(False))
    ).all()
    return [assignment.StimRow(*r) for r in rows]


def _trial_modes(mode: str) -> tuple[str, ...]:
    return ("acr", "pair") if mode == "both" else (mode,)


#: A rater inactive this long (no start, no trial shown) and not finished counts as gone: their
#: unanswered trials stop counting as votes, so new raters get those stimuli. Nothing is deleted;
#: if they come back they continue their list (the stimulus then gets a surplus vote).
ABANDONED_AFTER = dt.timedelta(hours=2)


def _aware(t: dt.datetime | None) -> dt.datetime | None:
    return t if t is None or t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def _assigned_counts(s: Session, study_id: int, now: dt.datetime | None = None) -> Counter:
    """Votes per item key ('acr', stim) / ('pair', a, b) (a, b in method order), repeats excluded:
    answered trials, plus unanswered trials of raters still active (see :data:`ABANDONED_AFTER`)."""
    cutoff = (now or utcnow()) - ABANDONED_AFTER
    last_shown = dict(
        s.execute(
            select(Trial.rater_id, func.max(Trial.shown_at))
            .join(Rater, Trial.rater_id == Rater.id)
            .where(Rater.study_id == study_id)
            .group_by(Trial.rater_id)
        ).all()
    )
    active = set()
    for rid, created, completed in s.execute(
        select(Rater.id, Rater.created_at, Rater.completed_at).where(Rater.study_id == study_id)
    ):
        last = max(x for x in (_aware(created), _aware(last_shown.get(rid))) if x is not None)
        if completed is None and last >= cutoff:
            active.add(rid)
    method_of = dict(s.execute(select(Stimulus.id, Stimulus.method_id).where(Stimulus.study_id == study_id)).all())
    rows = s.execute(
        select(Trial.rater_id, Trial.mode, Trial.stimulus_id, Trial.stimulus_a_id, Trial.stimulus_b_id, Rating.id)
        .join(Rater, Trial.rater_id == Rater.id)
        .outerjoin(Rating, Rating.trial_id == Trial.id)
        .where(Rater.study_id == study_id, Trial.is_repeat_of.is_(None))
    )
    counts: Counter = Counter()
    for rid, mode, sid, a, b, answered in rows:
        if answered is None and rid not in active:
            continue
        if mode == "acr":
            counts[("acr", sid)] += 1
        else:
            pa, pb = sorted((a, b), key=lambda x: method_of[x])
            counts[("pair", pa, pb)] += 1
    return counts


def _completion_code() -> str:
    raw = secrets.token_hex(4).upper()
    return f"MOS-{raw[:4]}-{raw[4:]}"


# ------------------------------------------------------------------------------------------------
# Studies
# ------------------------------------------------------------------------------------------------


def list_studies(db: Database) -> list[StudyInfo]:
    """All studies, oldest first."""
    with db.session() as s:
        return [_study_info(st) for st in s.scalars(select(Study).order_by(Study.id))]


def get_study(db: Database, name: str) -> StudyInfo:
    """The study called ``name``; raises :class:`UnknownStudy`."""
    with db.session() as s:
        return _study_info(_get_study(s, name))


def register_study(
    db: Database,
    name: str,
    *,
    mode: str,
    scale: int,
    votes_per_stimulus: int,
    stimuli_dir: str | Path,
    methods: Sequence[MethodSpec],
    sources: Sequence[SourceSpec],
    stimuli: Sequence[StimulusSpec],
    trials_per_rater: int | None = None,
    break_every: int = 0,
    repeats: int = 2,
    seed: int = 0,
    crop: int | None = None,
) -> StudyInfo:
    """Store a new study (one transaction). Used by ``pipelines.prepare_study``; files must exist.

    Checks: mode; exactly one ``low_anchor`` and one ``high_anchor`` method; at least 2 test sources;
    every test source has a stimulus of every method; calibration sources have both anchors; the cap
    leaves room for every method (ACR) plus the repeats. Raises ``ValueError`` / :class:`StudyExists`.
    """
    if mode not in STUDY_MODES:
        raise ValueError(f"mode must be one of {STUDY_MODES}, got {mode!r}")
    if votes_per_stimulus < 1:
        raise ValueError("votes_per_stimulus must be >= 1")
    roles = Counter(m.role for m in methods)
    if roles["low_anchor"] != 1 or roles["high_anchor"] != 1:
        raise ValueError("a study needs exactly one low anchor (nearest) and one high anchor (hr) method")
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate method names: {sorted(n for n, c in Counter(names).items() if c > 1)}")
    if len(methods) < 2:
        raise ValueError("a study needs at least two methods")
    test_sources = [src.name for src in sources if not src.is_calibration]
    if len(test_sources) < 2:
        raise ValueError(
            f"a study needs at least 2 test (non-calibration) source images, got {len(test_sources)}: "
            "two versions of one source must never be shown back to back"
        )
    have = {(st.method, st.source) for st in stimuli}
    anchors = [m.name for m in methods if m.role != "test"]
    for src in sources:
        need = anchors if src.is_calibration else names
        miss = [m for m in need if (m, src.name) not in have]
        if miss:
            raise ValueError(f"source {src.name!r} has no stimulus for method(s) {miss}")
    if trials_per_rater is not None:
        need = sum(_min_budget(mode, len(methods)).values()) + repeats
        if trials_per_rater < need:
            raise ValueError(
                f"trials_per_rater={trials_per_rater} is too small: each rater must see all {len(methods)} "
                f"methods plus {repeats} test-retest repeats (>= {need})"
            )
    for st in stimuli:
        if not (Path(stimuli_dir) / f"{st.sha256}.png").is_file():
            raise ValueError(f"stimulus file {st.sha256}.png is missing from {stimuli_dir}")

    def tx():
        with db.session(write=True) as s:
            if s.scalar(select(Study.id).where(Study.name == name)) is not None:
                raise StudyExists(f"a study named {name!r} already exists; choose another --name")
            study = Study(
                name=name,
                mode=mode,
                status="open",
                scale=int(scale),
                votes_per_stimulus=int(votes_per_stimulus),
                trials_per_rater=trials_per_rater,
                break_every=int(break_every),
                repeats=int(repeats),
                seed=int(seed),
                crop=crop,
                stimuli_dir=str(Path(stimuli_dir).resolve()),
            )
            s.add(study)
            s.flush()
            mids = {}
            for m in methods:
                row = Method(study_id=study.id, name=m.name, role=m.role, spec=m.spec)
                s.add(row)
                s.flush()
                mids[m.name] = row.id
            sids = {}
            for src in sources:
                row = SourceImage(
                    study_id=study.id,
                    name=src.name,
                    hr_sha256=src.hr_sha256,
                    width=src.width,
                    height=src.height,
                    is_calibration=src.is_calibration,
                )
                s.add(row)
                s.flush()
                sids[src.name] = row.id
            for st in stimuli:
                psnr = None if st.psnr is None or math.isinf(st.psnr) else float(st.psnr)
                s.add(
                    Stimulus(
                        study_id=study.id,
                        method_id=mids[st.method],
                        source_id=sids[st.source],
                        sha256=st.sha256,
                        width=st.width,
                        height=st.height,
                        psnr=psnr,
                        ssim=None if st.ssim is None else float(st.ssim),
                    )
                )
            s.flush()
            return _study_info(study)

    try:
        return tx()
    except IntegrityError as e:
        raise StudyExists(f"a study named {name!r} already exists; choose another --name") from e


def close_study(db: Database, name: str) -> StudyInfo:
    """Stop the study: no new raters, no new answers (retries of stored answers still succeed)."""

    def tx():
        with db.session(write=True) as s:
            st = _get_study(s, name, lock=True)
            if st.status != "closed":
                st.status, st.closed_at = "closed", utcnow()
            return _study_info(st)

    return _retrying(tx)


def reopen_study(db: Database, name: str) -> StudyInfo:
    """Accept raters and answers again after :func:`close_study`."""

    def tx():
        with db.session(write=True) as s:
            st = _get_study(s, name, lock=True)
            st.status, st.closed_at = "open", None
            return _study_info(st)

    return _retrying(tx)


# ------------------------------------------------------------------------------------------------
# Raters
# ------------------------------------------------------------------------------------------------


def start_rater(db: Database, study_name: str, display: str | None = None, *, seed: int | None = None) -> str:
    """Create a rater with a fresh opaque token and assign their whole trial list; returns the token.

    In one transaction holding the study lock: the least-voted items first (see :mod:`db.assignment`;
    votes = answered trials plus the open trials of raters active in the last :data:`ABANDONED_AFTER`),
    every method included, the rater's own seeded order (``seed``: random unless given, stored on the
    rater) with no two versions of one source back to back, anchor trials flagged ``is_gold``,
    ``study.repeats`` test-retest copies, at most ``trials_per_rater`` trials.
    Raises :class:`UnknownStudy`, :class:`StudyClosed`, :class:`StudyFull` (every item already has its
    target votes), ``ValueError`` for a ``display`` over 200 characters.
    """
    if display is not None:
        display = str(display).strip() or None
        if display is not None and len(display) > 200:
            raise ValueError("display description is limited to 200 characters")
    rater_seed = secrets.randbits(31) if seed is None else int(seed)

    def tx() -> str:
        with db.session(write=True) as s:
            st = _get_study(s, study_name, lock=True)
            if st.status != "open":
                raise StudyClosed(f"study {study_name!r} is closed and takes no new raters")
            stim = _test_stimuli(s, st.id)
            items = {m: assignment.latin_items(stim, m, seed=st.seed) for m in _trial_modes(st.mode)}
            counts = _assigned_counts(s, st.id)
            all_items = [it for v in items.values() for it in v]
            if all_items and all(counts.get(it.key, 0) >= st.votes_per_stimulus for it in all_items):
                raise StudyFull(
                    f"study {study_name!r} has reached its target of {st.votes_per_stimulus} votes per "
                    "stimulus; thank you, no more raters are needed"
                )
            n_methods = len({r.method_id for r in stim})
            budgets = _budgets(st, {m: len(v) for m, v in items.items()}, n_methods)
            chosen = {m: assignment.select_items(v, counts, budgets[m]) for m, v in items.items()}
            n_rep = st.repeats
            if st.trials_per_rater is not None:
                n_rep = min(n_rep, max(0, st.trials_per_rater - sum(len(v) for v in chosen.values())))
            slots = assignment.build_rater_list(chosen.get("acr", []), chosen.get("pair", []), n_rep, rater_seed)
            token = secrets.token_urlsafe(24)
            rater = Rater(study_id=st.id, token=token, display=display, seed=rater_seed, n_trials=len(slots))
            s.add(rater)
            s.flush()
            rows: list[Trial] = []
            for pos, sl in enumerate(slots):
                it = sl.item
                t = Trial(rater_id=rater.id, position=pos, mode=it.mode, is_gold=it.is_gold)
                if it.mode == "acr":
                    t.stimulus_id = it.stimuli[0]
                else:
                    a, b = it.stimuli[::-1] if sl.swap else it.stimuli
                    t.stimulus_a_id, t.stimulus_b_id = a, b
                rows.append(t)
            s.add_all(rows)
            s.flush()
            for t, sl in zip(rows, slots):
                if sl.repeat_of is not None:
                    t.is_repeat_of = rows[sl.repeat_of].id
            return token

    return _retrying(tx)


def _min_budget(mode: str, n_methods: int) -> dict[str, int]:
    """Fewest non-repeat trials per trial mode that can show every method (a pair shows two)."""
    need = {"acr": n_methods, "pair": math.ceil(n_methods / 2)}
    return {m: need[m] for m in _trial_modes(mode)}


def _budgets(st: Study, n_items: dict[str, int], n_methods: int) -> dict[str, int]:
    """Non-repeat trials per trial mode for one rater: every item, or the cap minus the repeats,
    split between ACR and pairs in proportion to their item counts (each at least its minimum)."""
    if st.trials_per_rater is None:
        return dict(n_items)
    total = max(1, st.trials_per_rater - st.repeats)
    if len(n_items) == 1:
        ((m, n),) = n_items.items()
        return {m: min(n, total)}
    lo = _min_budget("both", n_methods)
    na, np_ = n_items["acr"], n_items["pair"]
    ba = min(na, max(lo["acr"], round(total * na / max(1, na + np_))))
    return {"acr": ba, "pair": min(np_, max(lo["pair"], total - ba))}


def get_rater(db: Database, token: str) -> RaterInfo:
    """Progress of the rater with ``token``; raises :class:`UnknownRater`."""
    with db.session() as s:
        r = _get_rater(s, token)
        return RaterInfo(
            token=r.token,
            study_name=r.study.name,
            done=_done_count(s, r.id),
            total=r.n_trials,
            completed=r.completed_at is not None,
            completion_code=r.completion_code,
            display=r.display,
        )


def calibration_examples(db: Database, study_name: str) -> list[CalibrationExample]:
    """For each calibration source (never used as a trial): its nearest-neighbour image (score 1,
    "bad") then its HR image (score 5, "excellent")."""
    with db.session() as s:
        st = _get_study(s, study_name)
        rows = s.execute(
            select(SourceImage.id, Method.role, Stimulus.sha256)
            .join(Stimulus, Stimulus.source_id == SourceImage.id)
            .join(Method, Stimulus.method_id == Method.id)
            .where(
                SourceImage.study_id == st.id,
                SourceImage.is_calibration.is_(True),
                Method.role.in_(("low_anchor", "high_anchor")),
            )
            .order_by(SourceImage.id, Method.role.desc())  # "low_anchor" before "high_anchor"
        ).all()
        out, index = [], {}
        for src_id, role, sha in rows:
            i = index.setdefault(src_id, len(index))
            score, label = (1, "bad") if role == "low_anchor" else (5, "excellent")
            out.append(CalibrationExample(_path(st, sha), score, label, i))
        return out


# ------------------------------------------------------------------------------------------------
# Trials and answers
# ------------------------------------------------------------------------------------------------


# Hot-path statements are built once (bind parameters) so each answer costs little Python time.
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
_RATER_ROW = (
    select(
        Rater.id, Rater.n_trials, Rater.completed_at, Rater.completion_code,
        Study.status, Study.name, Study.stimuli_dir, Study.break_every,
    )
    .join(Study, Rater.study_id == Study.id)
    .where(Rater.token == bindparam("token"))
)
_RATER_ROW_LOCKED = _RATER_ROW.with_for_update(of=Rater)
_DONE = select(func.count()).select_from(Rating).where(Rating.rater_id == bindparam("rid"))
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


def _first_open_trial(s: Session, rater_id: int):
    """(id, position, mode, shown_at, sha, sha_a, sha_b) of the first unanswered trial, or None."""
    return s.execute(_FIRST_OPEN, {"rid": rater_id}).first()


def _rater_row(s: Session, token: str, lock: bool = False):
    """(rater id, n_trials, completed_at, completion_code, study status, name, stimuli_dir, break_every)."""
    if not isinstance(token, str) or not token or len(token) > 64:
        raise UnknownRater("unknown rater token: it is missing or malformed; start again from the study link")
    row = s.execute(_RATER_ROW_LOCKED if lock else _RATER_ROW, {"token": token}).first()
    if row is None:
        raise UnknownRater("unknown rater token: no rater has this token; start again from the study link")
    return row


def next_trial(db: Database, token: str) -> TrialView | None:
    """The rater's first unanswered trial (position order), or ``None`` when all are answered.

    The first call for a trial records ``shown_at`` (later calls, e.g. a page refresh, keep it).
    Raises :class:`UnknownRater`, and :class:`StudyClosed` if trials remain but the study is closed.
    """

    def tx():
        with db.session() as s:
            r = _rater_row(s, token)
            t = _first_open_trial(s, r.id)
            if t is None:
                return None
            if r.status != "open":
                raise StudyClosed(f"study {r.name!r} is closed; thank you for taking part")
            done = _done_count(s, r.id)
        tid, pos, mode, shown_at, sha, sha_a, sha_b = t
        if shown_at is None:
            # A short write: conditional UPDATE, so only the first viewer (e.g. of two tabs) sets it.
            with db.session(write=True) as w:
                now = utcnow()
                n = w.execute(_MARK_SHOWN, {"tid": tid, "now": now}).rowcount
                shown_at = now if n == 1 else w.scalar(_SHOWN_AT, {"tid": tid})
        d = Path(r.stimuli_dir)
        paths = (
            dict(image_path=str(d / f"{sha}.png"))
            if mode == "acr"
            else dict(left_path=str(d / f"{sha_a}.png"), right_path=str(d / f"{sha_b}.png"))
        )
        return TrialView(
            trial_id=tid, position=pos, total=r.n_trials, done=done, mode=mode,
            break_every=r.break_every, shown_at=shown_at, **paths,
        )

    return _retrying(tx)


def _check_answer(score, choice, response_ms, viewport_w, viewport_h, device_pixel_ratio):
    if score is not None:
        whole = isinstance(score, numbers.Integral) or (isinstance(score, numbers.Real) and float(score).is_integer())
        if isinstance(score, bool) or not whole:
            raise RatingRejected(f"score must be a whole number from 1 (bad) to 5 (excellent), got {score!r}")
        score = int(score)
        if not 1 <= score <= 5:
            raise RatingRejected(f"score must be from 1 (bad) to 5 (excellent), got {score}")
    if choice is not None and choice not in PAIR_CHOICES:
        raise RatingRejected(f"choice must be one of {PAIR_CHOICES}, got {choice!r}")
    if score is None and choice is None:
        raise RatingRejected("no answer given: send a score (ACR trial) or a choice (pair trial)")
    if score is not None and choice is not None:
        raise RatingRejected("send either a score (ACR trial) or a choice (pair trial), not both")

    def _int(name, v, lo, hi):
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise RatingRejected(f"{name} must be a number, got {v!r}")
        if not lo <= v <= hi:
            raise RatingRejected(f"{name} must be between {lo} and {hi}, got {v}")
        return int(round(v))

    response_ms = _int("response_ms", response_ms, 0, 7 * 24 * 3600 * 1000)
    viewport_w = _int("viewport_w", viewport_w, 1, 100_000)
    viewport_h = _int("viewport_h", viewport_h, 1, 100_000)
    if device_pixel_ratio is not None:
        dpr = device_pixel_ratio
        if isinstance(dpr, bool) or not isinstance(dpr, numbers.Real) or not math.isfinite(dpr) or not 0 < dpr <= 16:
            raise RatingRejected(f"device_pixel_ratio must be a number in (0, 16], got {dpr!r}")
        device_pixel_ratio = float(dpr)
    return score, choice, response_ms, viewport_w, viewport_h, device_pixel_ratio


def _existing(s: Session, token: str, trial_id: int, score, choice) -> SubmitResult:
    """The stored answer of ``trial_id`` as a duplicate result, or a rejection if it differs."""
    r = _rater_row(s, token)
    rt = s.execute(
        select(Rating.id, Rating.score, Rating.choice).where(Rating.trial_id == trial_id, Rating.rater_id == r.id)
    ).first()
    if rt is None:
        raise RatingRejected(f"trial {trial_id} does not belong to this rater")
    if (rt.score, rt.choice) != (score, choice):
        old = rt.score if rt.score is not None else rt.choice
        new = score if score is not None else choice
        raise RatingRejected(f"trial {trial_id} was already answered ({old!r}); a different answer ({new!r}) is refused")
    return SubmitResult(
        trial_id=trial_id,
        rating_id=rt.id,
        duplicate=True,
        done=_done_count(s, r.id),
        total=r.n_trials,
        completed=r.completed_at is not None,
        completion_code=r.completion_code,
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
    Raises :class:`RatingRejected` (nothing stored) for a bad or missing score/choice, the wrong kind
    of answer for the trial, an unknown token (:class:`UnknownRater`), a trial of another rater or not
    yet shown, a closed study (:class:`StudyClosed`), or a different answer to an answered trial.
    ``response_ms`` defaults to the server-side time since ``shown_at``. The last answer completes the
    rater (completion code, QC flags stored).
    """
    score, choice, response_ms, viewport_w, viewport_h, device_pixel_ratio = _check_answer(
        score, choice, response_ms, viewport_w, viewport_h, device_pixel_ratio
    )
    if isinstance(trial_id, bool) or not isinstance(trial_id, numbers.Integral):
        raise RatingRejected(f"trial id must be an integer, got {trial_id!r}")
    trial_id = int(trial_id)

    def tx() -> SubmitResult:
        with db.session(write=True) as s:
            r = _rater_row(s, token, lock=True)  # serialises this rater's answers on PostgreSQL
            t = s.execute(_TRIAL_FOR_ANSWER, {"tid": trial_id}).first()
            if t is None or t.rater_id != r.id:
                raise RatingRejected(f"trial {trial_id} does not belong to this rater")
            tid, _, mode, shown_at, existing = t
            if existing is not None:
                return _existing(s, token, tid, score, choice)
            if r.status != "open":
                raise StudyClosed(f"study {r.name!r} is closed; answers are no longer accepted")
            if mode == "acr" and score is None:
                raise RatingRejected(f"trial {trial_id} is a rating trial: send a score from 1 to 5, not a choice")
            if mode == "pair" and choice is None:
                raise RatingRejected(f"trial {trial_id} is a comparison trial: send a choice A, B or none, not a score")
            if shown_at is None:
                raise RatingRejected(f"trial {trial_id} has not been shown yet; fetch it with next_trial first")
            now = utcnow()
            ms = response_ms
            if ms is None:
                shown = shown_at if shown_at.tzinfo else shown_at.replace(tzinfo=dt.timezone.utc)
                ms = max(0, int((now - shown).total_seconds() * 1000))
            res = s.execute(
                _INSERT_RATING,
                dict(
                    trial_id=tid,
                    rater_id=r.id,
                    score=score,
                    choice=choice,
                    answered_at=now,
                    response_ms=ms,
                    viewport_w=viewport_w,
                    viewport_h=viewport_h,
                    device_pixel_ratio=device_pixel_ratio,
                ),
            )  # IntegrityError here if a concurrent transaction stored this trial's answer
            rating_id = res.inserted_primary_key[0]
            done = _done_count(s, r.id)
            completed, code = r.completed_at is not None, r.completion_code
            if done >= r.n_trials and not completed:
                rater = s.get(Rater, r.id)
                rater.completed_at, rater.completion_code = now, _completion_code()
                s.flush()
                from db.qc import store_rater_flags

                store_rater_flags(s, rater)
                completed, code = True, rater.completion_code
            return SubmitResult(
                trial_id=tid, rating_id=rating_id, duplicate=False, done=done, total=r.n_trials,
                completed=completed, completion_code=code,
            )

    try:
        return _retrying(tx)
    except IntegrityError:
        # Lost a race against an identical (or different) answer: report what is stored.
        with db.session() as s:
            return _existing(s, token, trial_id, score, choice)


# ------------------------------------------------------------------------------------------------
# Admin
# ------------------------------------------------------------------------------------------------


def study_status(db: Database, name: str) -> dict:
    """Admin summary: raters started/completed, ratings per method, votes per item min/mean/max vs target.

    Keys: name, status, mode, raters, completed, ratings, ratings_per_method {method: n},
    votes_per_stimulus {min, mean, max, target, items} (ratings per test item, repeats excluded;
    items = stimuli for ACR plus pairs for pair mode), assigned_per_stimulus {min, mean, max}.
    """
    with db.session() as s:
        st = _get_study(s, name)
        raters = s.scalar(select(func.count()).select_from(Rater).where(Rater.study_id == st.id)) or 0
        completed = (
            s.scalar(
                select(func.count()).select_from(Rater).where(Rater.study_id == st.id, Rater.completed_at.is_not(None))
            )
            or 0
        )
        methods = {m.id: m.name for m in st.methods}
        stim_method = dict(s.execute(select(Stimulus.id, Stimulus.method_id).where(Stimulus.study_id == st.id)).all())
        rows = s.execute(
            select(Trial.mode, Trial.stimulus_id, Trial.stimulus_a_id, Trial.stimulus_b_id, Rating.id)
            .join(Rater, Trial.rater_id == Rater.id)
            .outerjoin(Rating, Rating.trial_id == Trial.id)
            .where(Rater.study_id == st.id, Trial.is_repeat_of.is_(None))
        ).all()
        per_method: Counter = Counter()
        votes: Counter = Counter()
        assigned: Counter = Counter()
        n_ratings = s.scalar(
            select(func.count()).select_from(Rating).join(Rater, Rating.rater_id == Rater.id).where(Rater.study_id == st.id)
        )
        for mode, sid, a, b, rid in rows:
            if mode == "acr":
                key, ms = ("acr", sid), [stim_method[sid]]
            else:
                pa, pb = sorted((a, b), key=lambda x: stim_method[x])
                key, ms = ("pair", pa, pb), [stim_method[a], stim_method[b]]
            assigned[key] += 1
            if rid is not None:
                votes[key] += 1
                for m in ms:
                    per_method[methods[m]] += 1
        items = [
            it.key
            for m in _trial_modes(st.mode)
            for it in assignment.latin_items(_test_stimuli(s, st.id), m, seed=st.seed)
        ]
        v = [votes.get(k, 0) for k in items] or [0]
        a_ = [assigned.get(k, 0) for k in items] or [0]
        return {
            "name": st.name,
            "status": st.status,
            "mode": st.mode,
            "raters": raters,
            "completed": completed,
            "ratings": n_ratings or 0,
            "ratings_per_method": {methods[m]: per_method.get(methods[m], 0) for m in methods},
            "votes_per_stimulus": {
                "min": min(v),
                "mean": sum(v) / len(v),
                "max": max(v),
                "target": st.votes_per_stimulus,
                "items": len(items),
            },
            "assigned_per_stimulus": {"min": min(a_), "mean": sum(a_) / len(a_), "max": max(a_)},
        }


# Re-exported admin analysis (implemented in their own modules).
from db.export import export_ratings_csv, mos_table, preference_table  # noqa: E402
from db.qc import rater_qc  # noqa: E402

__all__ = [
    "CalibrationExample",
    "MethodSpec",
    "RaterInfo",
    "RatingRejected",
    "SourceSpec",
    "StimulusSpec",
    "StudyClosed",
    "StudyExists",
    "StudyFull",
    "StudyInfo",
    "SubmitResult",
    "TrialView",
    "UnknownRater",
    "UnknownStudy",
    "calibration_examples",
    "close_study",
    "export_ratings_csv",
    "get_rater",
    "get_study",
    "list_studies",
    "mos_table",
    "next_trial",
    "preference_table",
    "rater_qc",
    "register_study",
    "reopen_study",
    "start_rater",
    "study_status",
    "submit_rating",
]
