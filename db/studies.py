"""Studies: registering one (the study builder), reading, closing and reopening, calibration images."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.crowd import check_crowd
from db.engine import Database
from db.errors import InvalidStudy, StudyExists
from db.models import (
    Method,
    MethodRole,
    Sampling,
    SourceImage,
    Stimulus,
    StimulusMetric,
    Study,
    StudyMode,
    StudyStatus,
    TrialMode,
    stimulus_file_name,
    utcnow,
)
from db.queries import study_row
from db.views import CalibrationExample, StudyInfo, stimulus_path


# Specs for register_study (the study builder fills them).
@dataclasses.dataclass(frozen=True)
class MethodSpec:
    name: str
    role: MethodRole = MethodRole.TEST  # LOW_ANCHOR (nearest) | HIGH_ANCHOR (hr) | TEST
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
    #: Further objective metrics by srkeras.metrics name (``{"lpips": 0.21, "niqe": 5.3}``); table stimulus_metric.
    metrics: dict = dataclasses.field(default_factory=dict)


def list_studies(db: Database) -> list[StudyInfo]:
    """All studies, oldest first."""
    return db.run(lambda s: [StudyInfo.of(st) for st in s.scalars(select(Study).order_by(Study.id))])


def get_study(db: Database, name: str) -> StudyInfo:
    """The study called ``name``; raises :class:`~db.errors.UnknownStudy`."""
    return db.run(lambda s: StudyInfo.of(study_row(s, name)))


def min_budget(mode: StudyMode, n_methods: int) -> dict[TrialMode, int]:
    """Fewest non-repeat trials per trial mode that can show every method (a pair shows two)."""
    need = {TrialMode.ACR: n_methods, TrialMode.PAIR: math.ceil(n_methods / 2)}
    return {m: need[m] for m in StudyMode(mode).trial_modes}


def _check_study(mode, votes_per_stimulus, stimuli_dir, methods, sources, stimuli, trials_per_rater, repeats):
    """Raise :class:`InvalidStudy` unless the definition can run (see :func:`register_study`)."""
    if mode not in tuple(StudyMode):
        raise InvalidStudy(f"mode must be one of {tuple(m.value for m in StudyMode)}, got {mode!r}")
    if votes_per_stimulus < 1:
        raise InvalidStudy("votes_per_stimulus must be >= 1")
    roles = Counter(m.role for m in methods)
    if roles[MethodRole.LOW_ANCHOR] != 1 or roles[MethodRole.HIGH_ANCHOR] != 1:
        raise InvalidStudy("a study needs exactly one low anchor (nearest) and one high anchor (hr) method")
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise InvalidStudy(f"duplicate method names: {sorted(n for n, c in Counter(names).items() if c > 1)}")
    if len(methods) < 2:
        raise InvalidStudy("a study needs at least two methods")
    test_sources = [src.name for src in sources if not src.is_calibration]
    if len(test_sources) < 2:
        raise InvalidStudy(
            f"a study needs at least 2 test (non-calibration) source images, got {len(test_sources)}: "
            "two versions of one source must never be shown back to back"
        )
    have = {(st.method, st.source) for st in stimuli}
    anchors = [m.name for m in methods if m.role != MethodRole.TEST]
    for src in sources:
        miss = [m for m in (anchors if src.is_calibration else names) if (m, src.name) not in have]
        if miss:
            raise InvalidStudy(f"source {src.name!r} has no stimulus for method(s) {miss}")
    if trials_per_rater is not None:
        need = sum(min_budget(mode, len(methods)).values()) + repeats
        if trials_per_rater < need:
            raise InvalidStudy(
                f"trials_per_rater={trials_per_rater} is too small: each rater must see all {len(methods)} "
                f"methods plus {repeats} test-retest repeats (>= {need})"
            )
    for st in stimuli:
        if not (Path(stimuli_dir) / stimulus_file_name(st.sha256)).is_file():
            raise InvalidStudy(f"stimulus file {stimulus_file_name(st.sha256)} is missing from {stimuli_dir}")
        bad = [k for k in st.metrics if not isinstance(k, str) or not k or len(k) > 64 or k in ("psnr", "ssim")]
        if bad:
            raise InvalidStudy(f"stimulus {st.method}/{st.source}: bad metric name(s) {bad} (psnr/ssim are fields)")


def _check_sampling(mode, sampling, target_half_width) -> None:
    """Raise :class:`InvalidStudy` unless ``sampling`` suits the study's trial modes."""
    if sampling not in tuple(Sampling):
        raise InvalidStudy(f"sampling must be one of {tuple(m.value for m in Sampling)}, got {sampling!r}")
    trial_modes = StudyMode(mode).trial_modes
    if sampling == Sampling.ACTIVE and TrialMode.PAIR not in trial_modes:
        raise InvalidStudy(f"sampling 'active' chooses pairs: it needs mode 'pair' or 'both', not {mode!r}")
    if sampling == Sampling.ADAPTIVE:
        if TrialMode.ACR not in trial_modes:
            raise InvalidStudy(f"sampling 'adaptive' allocates ACR votes: it needs mode 'acr' or 'both', not {mode!r}")
        if target_half_width is None or not math.isfinite(target_half_width) or target_half_width <= 0:
            raise InvalidStudy(f"sampling 'adaptive' needs a target half-width > 0 (MOS points), got {target_half_width!r}")
    elif target_half_width is not None:
        raise InvalidStudy("a target half-width is only used by sampling 'adaptive'")


def _insert_study(s: Session, study: Study, methods, sources, stimuli) -> StudyInfo:
    if s.scalar(select(Study.id).where(Study.name == study.name)) is not None:
        raise StudyExists(f"a study named {study.name!r} already exists; choose another --name")
    s.add(study)
    s.flush()
    mids, sids = {}, {}
    for m in methods:
        row = Method(study_id=study.id, name=m.name, role=m.role, spec=m.spec)
        s.add(row)
        s.flush()
        mids[m.name] = row.id
    for src in sources:
        row = SourceImage(
            study_id=study.id, name=src.name, hr_sha256=src.hr_sha256, width=src.width, height=src.height,
            is_calibration=src.is_calibration,
        )
        s.add(row)
        s.flush()
        sids[src.name] = row.id
    for st in stimuli:
        row = Stimulus(
            study_id=study.id, method_id=mids[st.method], source_id=sids[st.source], sha256=st.sha256,
            width=st.width, height=st.height,
            psnr=None if st.psnr is None or math.isinf(st.psnr) else float(st.psnr),
            ssim=None if st.ssim is None else float(st.ssim),
        )
        s.add(row)
        for k, v in st.metrics.items():
            v = None if v is None or not math.isfinite(float(v)) else float(v)
            s.add(StimulusMetric(stimulus=row, name=k, value=v))
    s.flush()
    return StudyInfo.of(study)


def register_study(
    db: Database,
    name: str,
    *,
    mode: StudyMode,
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
    crowd: str | None = None,
    completion_url: str | None = None,
    qualification: bool = False,
    sampling: Sampling = Sampling.BALANCED,
    target_half_width: float | None = None,
) -> StudyInfo:
    """Store a new study (one transaction). Used by ``pipelines.prepare_study``; files must exist.

    Checks: mode; exactly one ``low_anchor`` and one ``high_anchor`` method; at least 2 test sources;
    every test source has a stimulus of every method; calibration sources have both anchors; the cap
    leaves room for every method (ACR) plus the repeats; ``crowd`` (``prolific`` | ``mturk``: whose participant
    ID every rater brings) and the ``completion_url`` template (:func:`db.crowd.check_crowd`); ``qualification``:
    raters pass a screen check and a practice with feedback before they start; ``sampling``
    (:class:`~db.models.Sampling`): ``active`` needs pairs, ``adaptive`` needs ACR and ``target_half_width``
    (MOS points). Raises :class:`~db.errors.InvalidStudy` (a
    ``ValueError``) or :class:`~db.errors.StudyExists`.
    """
    _check_study(mode, votes_per_stimulus, stimuli_dir, methods, sources, stimuli, trials_per_rater, repeats)
    check_crowd(crowd, completion_url)
    _check_sampling(mode, sampling, target_half_width)

    def work(s: Session) -> StudyInfo:
        study = Study(
            name=name, mode=StudyMode(mode), status=StudyStatus.OPEN, scale=int(scale),
            votes_per_stimulus=int(votes_per_stimulus), trials_per_rater=trials_per_rater,
            break_every=int(break_every), repeats=int(repeats), seed=int(seed), crop=crop,
            stimuli_dir=str(Path(stimuli_dir).resolve()),
            crowd=crowd or None, completion_url=completion_url or None, qualification=bool(qualification),
            sampling=Sampling(sampling),
            target_half_width=None if target_half_width is None else float(target_half_width),
        )
        return _insert_study(s, study, methods, sources, stimuli)

    try:
        return db.run(work, write=True)
    except IntegrityError as e:  # a concurrent registration of the same name won the race
        raise StudyExists(f"a study named {name!r} already exists; choose another --name") from e


def _set_status(db: Database, name: str, status: StudyStatus) -> StudyInfo:
    def work(s: Session) -> StudyInfo:
        st = study_row(s, name, lock=True)
        if st.status != status:
            st.status, st.closed_at = status, (utcnow() if status == StudyStatus.CLOSED else None)
        return StudyInfo.of(st)

    return db.run(work, write=True)


def close_study(db: Database, name: str) -> StudyInfo:
    """Stop the study: no new raters, no new answers (retries of stored answers still succeed)."""
    return _set_status(db, name, StudyStatus.CLOSED)


def reopen_study(db: Database, name: str) -> StudyInfo:
    """Accept raters and answers again after :func:`close_study`."""
    return _set_status(db, name, StudyStatus.OPEN)


def calibration_examples(db: Database, study_name: str) -> list[CalibrationExample]:
    """For each calibration source (never used as a trial): its nearest-neighbour image (score 1,
    "bad") then its HR image (score 5, "excellent")."""

    def work(s: Session) -> list[CalibrationExample]:
        st = study_row(s, study_name)
        rows = s.execute(
            select(SourceImage.id, Method.role, Stimulus.sha256)
            .join(Stimulus, Stimulus.source_id == SourceImage.id)
            .join(Method, Stimulus.method_id == Method.id)
            .where(
                SourceImage.study_id == st.id,
                SourceImage.is_calibration.is_(True),
                Method.role.in_((MethodRole.LOW_ANCHOR, MethodRole.HIGH_ANCHOR)),
            )
            .order_by(SourceImage.id, Method.role.desc())  # "low_anchor" before "high_anchor"
        ).all()
        out, index = [], {}
        for src_id, role, sha in rows:
            i = index.setdefault(src_id, len(index))
            score, label = (1, "bad") if role == MethodRole.LOW_ANCHOR else (5, "excellent")
            out.append(CalibrationExample(stimulus_path(st.stimuli_dir, sha), score, label, i))
        return out

    return db.run(work)
