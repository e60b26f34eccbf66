"""The backbone study's MOS studies: one per test set, registered once the study has trained its generators.

Each test set of :class:`srkeras.study.StudyConfig` becomes the MOS study ``<prefix>-<dataset>``
(:func:`jobs.mos_study.make_study`: ACR and pairs between all methods, the hidden anchors
nearest/HR included), with the study's further metrics stored per stimulus. Resumable: a study
registered earlier (marked in the study's state, or already in the database) is kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from jobs.mos_study import StudySpec, make_study
from srkeras.study import StudyConfig
from srkeras.study.state import StudyState


@dataclasses.dataclass(frozen=True)
class MosRegistration:
    """Where and how the study's MOS studies are registered."""

    db_url: str
    name_prefix: str  # study names are "<name_prefix>-<dataset>"
    votes_per_stimulus: int = 5
    crop: int | None = None  # centre-crop of the stimuli, HR px


def stimulus_metrics(study: StudyConfig) -> tuple[str, ...]:
    """Metrics stored per stimulus: the study's, no-reference ones only outside --smoke (tiny images)."""
    extra = [m for m in study.metric_names if m not in ("psnr", "ssim")]
    return tuple(m for m in extra if not (study.smoke and m in ("niqe", "brisque")))


def _registered(db_url: str, name: str) -> bool:
    from db import UnknownStudy, get_study, open_database

    db = open_database(db_url)
    try:
        get_study(db, name)
        return True
    except UnknownStudy:
        return False
    finally:
        db.close()


def register_mos_studies(spec: MosRegistration, study: StudyConfig, models: dict[str, Path],
                         log: Callable[[str], None] = print) -> list[str]:
    """One MOS study per test set of ``study`` rating ``models`` ({method: model.keras}) beside the
    classical methods; returns the study names. Raises :class:`~srkeras.stimuli.StudyInputError`."""
    state = StudyState(study.out, study.fingerprint())
    names = []
    for dataset, folder in study.datasets().items():
        name = f"{spec.name_prefix}-{dataset}"
        names.append(name)
        if state.done(f"mos:{dataset}"):
            log(f"[mos:{dataset}] registered earlier: {name}")
            continue
        if not _registered(spec.db_url, name):
            _info, summary = make_study(StudySpec(
                name=name, hr_dir=folder, db_url=spec.db_url, scale=study.scale, models=tuple(f"{m}={p}" for m, p in models.items()),
                mode="both", votes_per_stimulus=spec.votes_per_stimulus, crop=spec.crop, seed=study.seed,
                metrics=("psnr", "ssim", *stimulus_metrics(study)), progress=study.progress,
            ), log=log)
            log(f"[mos:{dataset}] registered {name!r}: {summary['stimuli']} stimuli, {summary['test_images']} test images")
        state.mark(f"mos:{dataset}", study=name, db=spec.db_url)
    return names


__all__ = ["MosRegistration", "register_mos_studies", "stimulus_metrics"]
