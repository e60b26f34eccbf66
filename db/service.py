"""The public API of the MOS data layer, in one namespace: ``from db import service``.

A facade only: the logic lives in the modules by concept, which may also be imported directly.

* :mod:`db.errors`: :class:`MosError` and its subclasses;
* :mod:`db.views`: the read-only dataclasses handed to the apps;
* :mod:`db.studies`: register, read, close and reopen studies, calibration images;
* :mod:`db.raters`: start a rater (balanced assignment), read their progress;
* :mod:`db.ratings`: the hot path, next trial and answer;
* :mod:`db.status`, :mod:`db.qc`, :mod:`db.export`, :mod:`db.frames`: the admin side (the only place
  method names appear).

Every function takes a :class:`db.engine.Database` and does its work in :meth:`Database.run`
transactions, retried as a whole on lock conflicts.
"""

from __future__ import annotations

from db.errors import (
    DatabaseGone,
    InvalidStudy,
    MosError,
    RatingRejected,
    StudyClosed,
    StudyExists,
    StudyFull,
    UnknownRater,
    UnknownStudy,
)
from db.export import export_long_csv, export_ratings_csv, mos_table, preference_table
from db.frames import rating_frames, study_methods
from db.models import MethodRole, PairChoice, QcFlag, StudyMode, StudyStatus, TrialMode, stimulus_file_name
from db.qc import current_flags, rater_qc
from db.raters import ABANDONED_AFTER, UNSTARTED_AFTER, get_rater, start_rater
from db.ratings import next_trial, submit_rating
from db.status import study_status
from db.studies import (
    MethodSpec,
    SourceSpec,
    StimulusSpec,
    calibration_examples,
    close_study,
    get_study,
    list_studies,
    register_study,
    reopen_study,
)
from db.views import CalibrationExample, RaterInfo, StudyInfo, SubmitResult, TrialView, stimulus_path

__all__ = [
    "ABANDONED_AFTER",
    "CalibrationExample",
    "DatabaseGone",
    "InvalidStudy",
    "MethodRole",
    "MethodSpec",
    "MosError",
    "PairChoice",
    "QcFlag",
    "RaterInfo",
    "RatingRejected",
    "SourceSpec",
    "StimulusSpec",
    "StudyClosed",
    "StudyExists",
    "StudyFull",
    "StudyInfo",
    "StudyMode",
    "StudyStatus",
    "SubmitResult",
    "TrialMode",
    "TrialView",
    "UNSTARTED_AFTER",
    "UnknownRater",
    "UnknownStudy",
    "calibration_examples",
    "close_study",
    "current_flags",
    "export_long_csv",
    "export_ratings_csv",
    "get_rater",
    "get_study",
    "list_studies",
    "mos_table",
    "next_trial",
    "preference_table",
    "rater_qc",
    "rating_frames",
    "register_study",
    "reopen_study",
    "start_rater",
    "stimulus_file_name",
    "stimulus_path",
    "study_methods",
    "study_status",
    "submit_rating",
]
