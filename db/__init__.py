"""MOS study storage: SQLAlchemy models, Alembic migrations, and the data layer of the rater app.

This module is the one public door: apps, CLIs and benchmarks import storage from ``db`` only (an
import-linter contract in ``pyproject.toml``); the modules behind it are by concept:

* :mod:`db.engine`: opening a database, :meth:`Database.run` = one retried transaction (unit of work);
* :mod:`db.models`: the schema (the vocabularies are the enums of :mod:`srkeras.mos.vocabulary`);
* :mod:`db.errors`: :class:`MosError` and its subclasses; :mod:`db.views`: dataclasses handed to apps;
* :mod:`db.studies`, :mod:`db.raters`, :mod:`db.ratings` (the hot path: :func:`rater_state` is the rater
  page's one read per answer): rater side;
* :mod:`db.status`, :mod:`db.qc`, :mod:`db.export`, :mod:`db.frames`: the admin side (the only place
  method names appear); :mod:`db.logins`: the admin password's shared back-off. Every statistic and
  screening rule is computed by :mod:`srkeras.mos`.

Typical use::

    from db import next_trial, open_database, start_rater, submit_rating
    database = open_database("sqlite:///mos/mos.db")
    token = start_rater(database, "srgan-set14")
    trial = next_trial(database, token)
    submit_rating(database, token, trial.trial_id, score=4)
"""

from __future__ import annotations

from db.crowd import MTURK_PREVIEW, Participant, check_crowd
from db.crowd import capture as crowd_participant
from db.crowd import platform as crowd_platform
from db.engine import Database, open_database
from db.errors import (
    DatabaseGone,
    DatabaseUnavailable,
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
from db.frames import rater_completion, rating_frames, stimulus_file_methods, study_methods
from db.logins import LoginAttempt, login_attempt
from db.models import (
    Crowd,
    MethodRole,
    PairChoice,
    QcFlag,
    Sampling,
    StudyMode,
    StudyStatus,
    TrialMode,
    stimulus_file_name,
)
from db.qc import current_flags, rater_qc
from db.raters import (
    ABANDONED_AFTER,
    UNSTARTED_AFTER,
    completion_redirect,
    get_rater,
    participant_rater,
    start_rater,
    study_outlook,
)
from db.ratings import next_trial, rater_state, show_trial, submit_rating
from db.status import rating_ledger, study_status
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
from db.views import (
    CalibrationExample,
    RaterInfo,
    RaterState,
    StudyInfo,
    StudyOutlook,
    SubmitResult,
    TrialView,
    stimulus_path,
)

__all__ = [
    "Database",
    "open_database",
    "rating_ledger",
    "stimulus_file_methods",
    "ABANDONED_AFTER",
    "CalibrationExample",
    "Crowd",
    "MTURK_PREVIEW",
    "Participant",
    "StudyOutlook",
    "check_crowd",
    "completion_redirect",
    "crowd_participant",
    "crowd_platform",
    "participant_rater",
    "study_outlook",
    "DatabaseGone",
    "DatabaseUnavailable",
    "InvalidStudy",
    "LoginAttempt",
    "MethodRole",
    "MethodSpec",
    "MosError",
    "PairChoice",
    "QcFlag",
    "RaterInfo",
    "RaterState",
    "RatingRejected",
    "Sampling",
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
    "login_attempt",
    "mos_table",
    "next_trial",
    "preference_table",
    "rater_completion",
    "rater_qc",
    "rater_state",
    "rating_frames",
    "register_study",
    "reopen_study",
    "show_trial",
    "start_rater",
    "stimulus_file_name",
    "stimulus_path",
    "study_methods",
    "study_status",
    "submit_rating",
]
