"""Make a MOS study: the stimuli made and stored blind, the study registered in the database, all or nothing.

The stimuli (8-bit, blind, content-addressed PNGs with PSNR/SSIM on Y against the 8-bit HR, and the
further metrics of :attr:`StudySpec.metrics`) are made by :mod:`srkeras.stimulus_set` into a
:class:`~srkeras.stimuli.Staging` folder inside the stimuli folder, moved in once all are made, and
registered with :func:`db.register_study` in one transaction; if anything fails (a full disk, a
refused registration, Ctrl-C) the files this run added are removed again and no row is stored. A run
killed with -9 before that leaves only the temporary folder, which the next run removes.

Every refusal is a :class:`~srkeras.stimuli.StudyInputError` whose message names the option (or the
``python -m pipelines.pretrained fetch ...`` command of a missing metric asset); a metric asset is
checked before any stimulus is made.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path

from srkeras import stimulus_set
from srkeras.files import display_name, remove_stale_temporaries
from srkeras.stimuli import Staging, StudyInputError


class StudyNameTaken(StudyInputError):
    """A study with this name is already registered."""


class RegistrationFailed(StudyInputError):
    """The database refused the study."""


class MissingMetricAsset(StudyInputError):
    """A metric needs weights or parameters that are not installed (the message says how to fetch them)."""


@dataclasses.dataclass(frozen=True)
class StudySpec:
    """What study to make: its name, HR folder and database, the methods, and how raters see it.

    ``models`` are ``PATH`` or ``NAME=PATH`` strings; ``metrics`` names of :data:`srkeras.metrics.METRICS`
    stored per stimulus (PSNR/SSIM always); ``stimuli_dir`` None: :func:`default_stimuli_dir`.
    """

    name: str
    hr_dir: Path | str
    db_url: str
    scale: int = 4
    methods: tuple[str, ...] = stimulus_set.CLASSICAL
    models: tuple[str, ...] = ()
    mode: str = "acr"  # acr | pair | both
    votes_per_stimulus: int = 5
    stimuli_dir: Path | str | None = None
    crop: int | None = None
    calibration_images: int = 1
    calibration: tuple[str, ...] = ()  # file names (or stems) of the calibration images
    trials_per_rater: int | None = None
    break_every: int = 20
    repeats: int = 2
    seed: int = 0
    max_images: int | None = None
    tile: int | None = None  # tile size of model inference
    max_memory: str | int | None = None  # budget of its tiles and receptive-field probe ('2GB'; None: 2 GB)
    precision: str = "float32"  # of model inference: float32 | bfloat16 | auto (auto is float32 for stimuli)
    metrics: tuple[str, ...] = stimulus_set.DEFAULT_METRICS
    progress: bool = True  # a progress bar on standard error
    crowd: str | None = None  # "prolific" | "mturk": the platform whose participant-ID URL parameters are kept
    #: Completion redirect URL template (``{code}``: the rater's completion code); may hold the platform's
    #: own completion code, so it is kept out of the repr (logs).
    completion_url: str | None = dataclasses.field(default=None, repr=False)
    #: Screen check and practice with feedback before a rater starts; None: on for crowd studies.
    qualification: bool | None = None
    #: balanced (default) | active (pair/both: ASAP-style choice of the next pair) | adaptive (acr/both:
    #: further votes to the widest MOS intervals until ``target_half_width``); see :mod:`db.assignment`.
    sampling: str = "balanced"
    target_half_width: float | None = None  # adaptive: stop at this MOS 95 % half-width (e.g. 0.3)


def default_stimuli_dir(db_url: str) -> Path:
    """Beside the database for a SQLite file (``<db folder>/stimuli``), else ``./stimuli``."""
    from sqlalchemy.engine import make_url

    u = make_url(db_url)
    if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:"):
        return Path(u.database).expanduser().resolve().parent / "stimuli"
    return Path("stimuli").resolve()


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def _progress_bar(name: str, enabled: bool):
    from tqdm import tqdm

    return lambda files: tqdm(files, desc=f"stimuli for {name}", unit="img", disable=not enabled, file=sys.stderr)


def _checked_plan(spec: StudySpec, log) -> tuple[stimulus_set.Plan, Path]:
    """The checked options and the stimuli folder; everything the run needs (metric assets, models,
    a writable stimuli folder) is checked before any work and reported in one message
    (:mod:`srkeras.preflight`): :class:`MissingMetricAsset` when an asset is among the missing."""
    from srkeras.preflight import Preflight

    plan = stimulus_set.plan(spec.scale, spec.crop, spec.methods, spec.models, metrics=spec.metrics)
    folder = Path(spec.stimuli_dir).resolve() if spec.stimuli_dir else default_stimuli_dir(spec.db_url)
    pf = Preflight("pipelines.prepare_study")
    pf.metric_assets(plan.metrics)
    for m in plan.models:
        pf.model(m.path)
    try:
        files = stimulus_set.list_sources(spec.hr_dir, spec.max_images)
    except stimulus_set.NoImages:
        files = []  # said by name when the stimuli are made
    pf.stimuli(files, len(plan.method_names), plan.crop, folder)
    if pf.problems:
        raise (MissingMetricAsset if pf.fetch else StudyInputError)(pf.message())
    for anchor in plan.added_anchors:
        log(f"note: adding the hidden anchor method {anchor!r} (the MOS scale is calibrated on it)")
    return plan, folder


def _check_crowd_options(spec: StudySpec) -> None:
    """--crowd / --completion-url, checked before any work; raises :class:`RegistrationFailed`."""
    from db import InvalidStudy, check_crowd

    try:
        check_crowd(spec.crowd, spec.completion_url)
    except InvalidStudy as e:
        raise RegistrationFailed(f"cannot register study {spec.name!r}: {e}") from None


class BadSampling(StudyInputError):
    """--sampling does not suit --mode, or --target-half-width is missing or misplaced."""


def _check_sampling(spec: StudySpec) -> None:
    """Refuse a sampling the study cannot run before any stimulus is made (the database checks it again)."""
    modes = {"acr": ("acr",), "pair": ("pair",), "both": ("acr", "pair")}.get(spec.mode, ())
    need = {"active": "pair", "adaptive": "acr"}.get(spec.sampling)
    if spec.sampling not in ("balanced", "active", "adaptive"):
        raise BadSampling(f"--sampling must be balanced, active or adaptive, got {spec.sampling!r}")
    if need and need not in modes:
        raise BadSampling(f"--sampling {spec.sampling} needs --mode {need} or both, not {spec.mode!r}")
    hw = spec.target_half_width
    if spec.sampling == "adaptive" and (hw is None or not hw > 0):
        raise BadSampling(f"--sampling adaptive needs --target-half-width > 0 (MOS points, e.g. 0.3), got {hw}")
    if spec.sampling != "adaptive" and hw is not None:
        raise BadSampling("--target-half-width is only used with --sampling adaptive")



def _refuse_taken_name(db, name: str) -> None:
    from db import UnknownStudy, get_study

    try:
        get_study(db, name)
    except UnknownStudy:
        return
    raise StudyNameTaken(f"a study named {name!r} already exists in {db!r}; choose another --name")


def _register(db, spec: StudySpec, plan: stimulus_set.Plan, made: stimulus_set.StimulusSet):
    """Store the study; raises :class:`RegistrationFailed`."""
    from sqlalchemy.exc import SQLAlchemyError

    from db import MethodSpec, SourceSpec, StimulusSpec, register_study

    try:
        return register_study(
            db,
            spec.name,
            scale=plan.scale,
            crop=plan.crop,
            stimuli_dir=made.stimuli_dir,
            methods=[MethodSpec(*m) for m in plan.methods()],
            sources=[SourceSpec(**vars(s)) for s in made.sources],
            stimuli=[StimulusSpec(**vars(s)) for s in made.stimuli],
            mode=spec.mode,
            votes_per_stimulus=spec.votes_per_stimulus,
            trials_per_rater=spec.trials_per_rater,
            break_every=spec.break_every,
            repeats=spec.repeats,
            seed=spec.seed,
            crowd=spec.crowd,
            completion_url=spec.completion_url,
            qualification=bool(spec.crowd) if spec.qualification is None else spec.qualification,
            sampling=spec.sampling,
            target_half_width=spec.target_half_width,
        )
    except ValueError as e:
        raise RegistrationFailed(f"cannot register study {spec.name!r}: {e}") from None
    except SQLAlchemyError as e:  # e.g. a full disk or a read-only database: nothing was stored
        raise RegistrationFailed(f"cannot register study {spec.name!r}: database error ({getattr(e, 'orig', None) or e})") from None


def _summary(info, plan: stimulus_set.Plan, made: stimulus_set.StimulusSet) -> dict:
    return {
        "study": info.name,
        "stimuli_dir": display_name(made.stimuli_dir),
        "test_images": len(made.test_sources),
        "calibration_images": made.calibration_sources,
        "stimuli": len(made.stimuli),
        "skipped": made.skipped,
        "methods": made.mean_scores(plan.method_names),
    }


def _make_and_register(db, spec: StudySpec, plan: stimulus_set.Plan, stim_dir: Path, started: float, log):
    files = stimulus_set.list_sources(spec.hr_dir, spec.max_images)
    files, choice = stimulus_set.choose_calibration(files, spec.calibration_images, spec.calibration, spec.seed,
                                                    folder=spec.hr_dir)
    runners = stimulus_set.load_models(plan.models, plan.scale, spec.tile, spec.precision, spec.max_memory,
                                       progress=log if spec.progress else None)  # fmt: skip
    for stale in remove_stale_temporaries(stim_dir, started):
        log(f"note: removed {display_name(stale)} (left by an interrupted run)")
    staging = Staging(stim_dir)
    try:
        made = stimulus_set.make(
            plan, files, stim_dir, choice, runners, on_skip=log, progress=_progress_bar(spec.name, spec.progress),
            write_dir=staging.dir,
        )
        stimulus_set.require_test_images(made, spec.hr_dir)
        staging.commit()
        info = _register(db, spec, plan, made)
    except BaseException:
        staging.rollback()  # all or nothing: no file of this run stays (and no row was stored)
        raise
    finally:
        staging.close()
    return info, _summary(info, plan, made)


def make_study(spec: StudySpec, log: Callable[[str], None] | None = None):
    """Make the stimuli and register the study; returns ``(db.StudyInfo, summary dict)``.

    ``log`` hears the notes and skipped files (default: standard error). Raises a
    :class:`~srkeras.stimuli.StudyInputError` for unusable options, a taken name
    (:class:`StudyNameTaken`), a missing metric asset, too few usable images or a refused registration.
    """
    from db import open_database

    log = log or _stderr
    started = time.time()
    _check_sampling(spec)
    _check_crowd_options(spec)
    plan, stim_dir = _checked_plan(spec, log)
    db = open_database(spec.db_url)
    try:
        _refuse_taken_name(db, spec.name)
        return _make_and_register(db, spec, plan, stim_dir, started, log)
    finally:
        db.close()


__all__ = ["BadSampling", "MissingMetricAsset", "RegistrationFailed", "StudyNameTaken", "StudySpec", "default_stimuli_dir", "make_study"]
