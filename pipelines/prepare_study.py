"""Build a MOS study: make the stimuli, store them blind, register the study in the database.

    python -m pipelines.prepare_study --name set14-x4 --hr-dir ../shared/data/Set14 --scale 4 \\
        --method nearest --method bicubic --method hr --model runs/srgan --mode acr \\
        --votes-per-stimulus 10 --db sqlite:///mos/mos.db [--stimuli-dir DIR] [--crop 128] \\
        [--metric lpips --metric niqe ...]

The stimuli (8-bit, blind, content-addressed PNGs with PSNR/SSIM on Y against the 8-bit HR) are made
by :mod:`srkeras.stimuli`; this module registers them with :func:`db.register_study` and maps
the library's :class:`~srkeras.stimuli.StudyInputError` to a message and exit status 1.
``--metric NAME`` (repeat; PSNR and SSIM are always stored) also stores the metrics of
:mod:`srkeras.metrics` (``lpips``, ``lpips_vgg``, ``dists``, ``niqe``, ``brisque``) of every stimulus,
computed on its stored 8-bit pixels as ``pipelines.evaluate`` computes them; ``pipelines.report``
correlates MOS with each of them and ranks them. A metric whose assets are not installed stops the run
before any stimulus is made, naming the ``python -m pipelines.pretrained fetch ...`` command.

``nearest`` and ``hr`` are the hidden anchors of the SRGAN protocol (Ledig et al. 2017, sec. 3.4:
NN rated 1, HR rated 5) and are always included. ``--calibration-images K`` source images (seeded
choice, or named with ``--calibration``) only provide the NN/HR examples of the instructions and are
never trials. Unreadable image files are reported by name and skipped; the exit status is then 1
(the study is registered without them), as for ``pipelines.evaluate``.

All or nothing: the stimuli are written into a temporary folder inside the stimuli folder
(:class:`Staging`), moved in once all are made, and registered in one transaction; if anything fails
(a full disk, a refused registration, Ctrl-C) the files this run added are removed again and no row
is stored. A run killed with -9 before that leaves only the temporary folder, which the next run
removes. Non-UTF-8 file names are stored and shown with ``\\xNN`` escapes.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys
import time
from pathlib import Path

from pipelines.evaluate import missing_assets
from srkeras import stimuli
from srkeras.files import destination_problem, display_name, remove_stale_temporaries, temp_path, write_error
from srkeras.metrics.registry import METRICS
from srkeras.stimuli import (  # noqa: F401  (re-exported: the CLI's historical names)
    ANCHORS,
    CLASSICAL,
    ModelSpec,
    StudyInputError,
    center_crop,
    parse_model_spec,
    png_bytes,
    png_chunks,
)
from srkeras.stimuli import store as store_stimulus  # noqa: F401

EXIT_INPUT = 1  # an unusable input (what ``raise SystemExit(message)`` exits with)


class StudyExists(StudyInputError):
    """A study with this name is already registered."""


class RegistrationFailed(StudyInputError):
    """The database refused the study."""


class MissingMetricAsset(StudyInputError):
    """A ``--metric`` needs weights or parameters that are not installed (the message says how to fetch them)."""


class Staging:
    """A run's stimuli in a temporary folder inside ``stimuli_dir`` (:data:`~srkeras.files.TEMP_MARK`
    in its name): :meth:`commit` moves them in, :meth:`rollback` removes what :meth:`commit` added,
    :meth:`close` removes the temporary folder. Raises ``OutputFailed`` if it cannot be made."""

    def __init__(self, stimuli_dir):
        self.stimuli_dir = Path(stimuli_dir)
        self.dir = temp_path(self.stimuli_dir / "staging")
        self.added: list[Path] = []
        try:
            self.dir.mkdir(parents=True)
        except OSError as e:
            raise stimuli.OutputFailed(f"--stimuli-dir: {write_error(self.dir.parent, e)}") from None

    def commit(self) -> list[Path]:
        """Move the staged files in (a file already there is identical: left alone); the added paths."""
        for f in sorted(self.dir.iterdir()):
            dst = self.stimuli_dir / f.name
            try:
                os.link(f, dst)  # fails if dst exists: a concurrent run's file is never counted as ours
            except FileExistsError:
                continue
            except OSError:  # no hard links on this file system
                if dst.exists():
                    continue
                os.replace(f, dst)
            self.added.append(dst)
        return self.added

    def rollback(self) -> None:
        """Remove the files :meth:`commit` moved in, and the temporary folder."""
        for f in self.added:
            try:
                f.unlink()
            except FileNotFoundError:
                pass
        self.added = []
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


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


def _register(db, name: str, plan: stimuli.Plan, made: stimuli.StimulusSet, **options):
    """Store the study (``options``: mode, votes, schedule...); raises :class:`RegistrationFailed`."""
    from sqlalchemy.exc import SQLAlchemyError

    from db import MethodSpec, SourceSpec, StimulusSpec, register_study

    try:
        return register_study(
            db,
            name,
            scale=plan.scale,
            crop=plan.crop,
            stimuli_dir=made.stimuli_dir,
            methods=[MethodSpec(*m) for m in plan.methods()],
            sources=[SourceSpec(**vars(s)) for s in made.sources],
            stimuli=[StimulusSpec(**vars(s)) for s in made.stimuli],
            **options,
        )
    except ValueError as e:
        raise RegistrationFailed(f"cannot register study {name!r}: {e}") from None
    except SQLAlchemyError as e:  # e.g. a full disk or a read-only database: nothing was stored
        raise RegistrationFailed(f"cannot register study {name!r}: database error ({getattr(e, 'orig', None) or e})") from None


def _summary(info, plan: stimuli.Plan, made: stimuli.StimulusSet) -> dict:
    return {
        "study": info.name,
        "stimuli_dir": display_name(made.stimuli_dir),
        "test_images": len(made.test_sources),
        "calibration_images": made.calibration_sources,
        "stimuli": len(made.stimuli),
        "skipped": made.skipped,
        "methods": made.mean_scores(plan.method_names),
    }


def make_study(
    *,
    name: str,
    hr_dir,
    db_url: str,
    scale: int = 4,
    methods=("nearest", "bicubic", "hr"),
    models=(),
    mode: str = "acr",
    votes_per_stimulus: int = 5,
    stimuli_dir=None,
    crop: int | None = None,
    calibration_images: int = 1,
    calibration: tuple[str, ...] = (),
    trials_per_rater: int | None = None,
    break_every: int = 20,
    repeats: int = 2,
    seed: int = 0,
    max_images: int | None = None,
    tile: int | None = None,
    progress: bool = True,
    log=None,
    metrics=stimuli.DEFAULT_METRICS,
):
    """Make the stimuli and register the study; returns ``(StudyInfo, summary dict)``.

    ``models`` are ``--model`` strings (``PATH`` or ``NAME=PATH``); ``metrics`` names of
    :data:`srkeras.metrics.METRICS` stored per stimulus (PSNR/SSIM always). Raises a
    :class:`~srkeras.stimuli.StudyInputError` for unusable arguments, an existing study name
    (:class:`StudyExists`), too few usable images or a refused registration.
    """
    from db import UnknownStudy, get_study, open_database

    log = log or _stderr
    started = time.time()
    plan = stimuli.plan(scale, crop, methods, models, metrics=metrics)
    missing = missing_assets(plan.metrics)
    if missing:
        raise MissingMetricAsset(missing)
    for anchor in plan.added_anchors:
        log(f"note: adding the hidden anchor method {anchor!r} (the MOS scale is calibrated on it)")
    stim_dir = Path(stimuli_dir).resolve() if stimuli_dir else default_stimuli_dir(db_url)
    problem = destination_problem(stim_dir, folder=True)
    if problem:
        raise stimuli.OutputFailed(f"--stimuli-dir {problem}")
    db = open_database(db_url)
    try:
        try:
            get_study(db, name)
            raise StudyExists(f"a study named {name!r} already exists in {db!r}; choose another --name")
        except UnknownStudy:
            pass
        files = stimuli.list_sources(hr_dir, max_images)
        files, choice = stimuli.choose_calibration(files, calibration_images, calibration, seed, folder=hr_dir)
        runners = stimuli.load_models(plan.models, plan.scale, tile)
        for stale in remove_stale_temporaries(stim_dir, started):
            log(f"note: removed {display_name(stale)} (left by an interrupted run)")
        staging = Staging(stim_dir)
        try:
            made = stimuli.make(
                plan, files, stim_dir, choice, runners, on_skip=log, progress=_progress_bar(name, progress),
                write_dir=staging.dir,
            )
            stimuli.require_test_images(made, hr_dir)
            staging.commit()
            info = _register(
                db, name, plan, made, mode=mode, votes_per_stimulus=votes_per_stimulus,
                trials_per_rater=trials_per_rater, break_every=break_every, repeats=repeats, seed=seed,
            )
        except BaseException:
            staging.rollback()  # all or nothing: no file of this run stays (and no row was stored)
            raise
        finally:
            staging.close()
        return info, _summary(info, plan, made)
    finally:
        db.close()


def _exit_on_input_error(fn):
    @functools.wraps(fn)
    def wrapper(**kwargs):
        try:
            return fn(**kwargs)
        except StudyInputError as e:
            raise SystemExit(str(e)) from None

    return wrapper


#: :func:`make_study` for scripts: an unusable input ends the program (``SystemExit(message)``).
build_study = _exit_on_input_error(make_study)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipelines.prepare_study", description=__doc__.split("\n\n")[0])
    p.add_argument("--name", required=True, help="study name (unique in the database)")
    p.add_argument("--hr-dir", required=True, help="folder of HR images")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--method", action="append", default=[], choices=CLASSICAL, help="nearest | bicubic | hr (repeat)")
    p.add_argument("--model", action="append", default=[], help="RUN_DIR or model.keras, or NAME=PATH (repeat)")
    p.add_argument("--mode", choices=("acr", "pair", "both"), default="acr")
    p.add_argument("--votes-per-stimulus", type=int, default=5, help="target votes per stimulus (or pair)")
    p.add_argument("--db", required=True, help="SQLAlchemy URL, e.g. sqlite:///mos/mos.db")
    p.add_argument("--stimuli-dir", help="where stimulus PNGs go (default: beside a SQLite DB, else ./stimuli)")
    p.add_argument("--crop", type=int, help="centre-crop HR images to N x N px (multiple of --scale)")
    p.add_argument("--calibration-images", type=int, default=1, help="source images kept for the instructions")
    p.add_argument("--calibration", action="append", default=[], help="use this file name as a calibration image")
    p.add_argument("--trials-per-rater", type=int, help="cap per rater (default: every stimulus once)")
    p.add_argument("--break-every", type=int, default=20, help="break prompt every N trials (0: never)")
    p.add_argument("--repeats", type=int, default=2, help="test-retest repeats per rater")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-images", type=int, help="use only the first N images")
    p.add_argument("--tile", type=int, help="tile size for --model inference")
    p.add_argument("--metric", action="append", default=[], choices=list(METRICS),
                   help="metric stored per stimulus (repeat; psnr and ssim are always stored)")
    p.add_argument("--no-progress", action="store_true")
    return p


def _report(info, summary: dict) -> None:
    print(
        f"study {info.name!r} ({info.mode}, x{info.scale}): {summary['test_images']} test images, "
        f"calibration {summary['calibration_images']}, {summary['stimuli']} stimuli in {summary['stimuli_dir']}"
    )
    if summary["skipped"]:
        print(f"skipped {len(summary['skipped'])} file(s):")
        for s in summary["skipped"]:
            print(f"  {s}")
    extra = list(dict.fromkeys(k for v in summary["methods"].values() for k in v if k not in ("psnr", "ssim")))
    print(f"{'method':<24} {'PSNR (Y)':>9} {'SSIM':>7}" + "".join(f" {k[:9]:>9}" for k in extra))
    for m, v in summary["methods"].items():
        print(f"{m:<24} {v['psnr']:>9.2f} {v['ssim']:>7.4f}" + "".join(f" {v.get(k, float('nan')):>9.4f}" for k in extra))


def main(argv=None) -> int:
    a = _parser().parse_args(argv)
    try:
        info, summary = make_study(
            name=a.name,
            hr_dir=a.hr_dir,
            db_url=a.db,
            scale=a.scale,
            methods=a.method or ("nearest", "bicubic", "hr"),
            models=a.model,
            mode=a.mode,
            votes_per_stimulus=a.votes_per_stimulus,
            stimuli_dir=a.stimuli_dir,
            crop=a.crop,
            calibration_images=a.calibration_images,
            calibration=tuple(a.calibration),
            trials_per_rater=a.trials_per_rater,
            break_every=a.break_every,
            repeats=a.repeats,
            seed=a.seed,
            max_images=a.max_images,
            tile=a.tile,
            progress=not a.no_progress,
            metrics=tuple(a.metric) or stimuli.DEFAULT_METRICS,
        )
    except StudyInputError as e:  # what the library refused, said as it said it
        print(e, file=sys.stderr)
        return EXIT_INPUT
    _report(info, summary)
    return EXIT_INPUT if summary["skipped"] else 0


if __name__ == "__main__":
    sys.exit(main())
