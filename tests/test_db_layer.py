"""The data layer's own mechanisms: the retried unit of work, the error hierarchy, the vocabularies and
the stimulus file names (the behaviour of studies, raters and ratings is in tests/test_db.py)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from db import (
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
    calibration_examples,
    errors,
    export_ratings_csv,
    get_study,
    next_trial,
    rating_frames,
    start_rater,
    stimulus_path,
    submit_rating,
)
from db.engine import is_transient
from db.models import MethodRole, QcFlag, Stimulus, StudyStatus, TrialMode, stimulus_file_name


class _PgError(Exception):
    def __init__(self, sqlstate: str):
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def _locked() -> OperationalError:
    return OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))


def test_transient_errors_are_lock_conflicts_only():
    assert is_transient(_locked())
    assert is_transient(DBAPIError("UPDATE", {}, _PgError("40001")))  # serialization failure
    assert is_transient(OperationalError("UPDATE", {}, _PgError("40P01")))  # deadlock detected
    assert not is_transient(IntegrityError("INSERT", {}, _PgError("23505")))
    assert not is_transient(OperationalError("SELECT", {}, Exception("no such table: study")))


def test_run_retries_the_whole_transaction_after_a_lock_conflict(db):
    db.run(lambda s: s.execute(text("CREATE TABLE probe (x INTEGER)")), write=True)
    calls = []

    def work(s):
        calls.append(1)
        s.execute(text("INSERT INTO probe VALUES (1)"))
        if len(calls) < 3:
            raise _locked()  # the insert of this attempt is rolled back
        return "done"

    assert db.run(work, write=True) == "done" and len(calls) == 3
    assert db.run(lambda s: s.scalar(text("SELECT count(*) FROM probe"))) == 1


def test_run_gives_up_and_passes_other_errors_through(db):
    calls = []

    def always_locked(s):
        calls.append(1)
        raise _locked()

    with pytest.raises(OperationalError):
        db.run(always_locked, attempts=2)
    assert len(calls) == 2

    def refused(s):
        calls.append(1)
        raise RatingRejected("no")

    calls.clear()
    with pytest.raises(RatingRejected):
        db.run(refused)
    assert len(calls) == 1  # not a lock conflict: never retried


def test_every_error_is_a_mos_error_and_keeps_its_builtin():
    builtin = {
        RatingRejected: ValueError,
        UnknownRater: ValueError,
        StudyClosed: ValueError,
        StudyExists: ValueError,
        InvalidStudy: ValueError,
        UnknownStudy: LookupError,
        StudyFull: RuntimeError,
        DatabaseGone: RuntimeError,
        DatabaseUnavailable: RuntimeError,
    }
    for cls, base in builtin.items():
        assert issubclass(cls, MosError) and issubclass(cls, base), cls
    assert set(builtin) | {MosError} == {getattr(errors, n) for n in errors.__all__}


def test_enums_store_plain_strings(tiny_study):
    db = tiny_study.open()
    try:
        info = get_study(db, tiny_study.name)
        assert info.status is StudyStatus.OPEN and info.status == "open" and f"{info.status}" == "open"
        with db.session() as s:
            roles = s.execute(text("SELECT role FROM method ORDER BY id")).scalars().all()
        assert type(roles[0]) is str and set(roles) == {r.value for r in MethodRole}
        tok = start_rater(db, tiny_study.name)
        trial = next_trial(db, tok)
        assert trial.mode is TrialMode.ACR
        submit_rating(db, tok, trial.trial_id, score=3)
        rows = list(csv.DictReader(io.StringIO(export_ratings_csv(db, tiny_study.name))))
        assert rows[0]["mode"] == "acr" and set(rows[0]["rater_qc_flags"].split(",")) <= {f.value for f in QcFlag}
    finally:
        db.close()


def test_one_stimulus_file_name(tiny_study):
    db = tiny_study.open()
    try:
        info = get_study(db, tiny_study.name)
        with db.session() as s:
            stim = s.scalars(select(Stimulus)).first()
            assert stim.file_name == stimulus_file_name(stim.sha256) == f"{stim.sha256}.png"
        assert stimulus_path(info.stimuli_dir, stim.sha256) == str(Path(info.stimuli_dir) / stim.file_name)
        for ex in calibration_examples(db, tiny_study.name):
            assert Path(ex.image_path).is_file() and Path(ex.image_path).parent == Path(info.stimuli_dir)
        tok = start_rater(db, tiny_study.name)
        shown = Path(next_trial(db, tok).image_path)
        assert shown.is_file() and shown.name.endswith(".png")
    finally:
        db.close()


def test_rating_frames_fit_the_statistics_schema(make_study):
    from srkeras.mos.schema import validate_acr, validate_metrics, validate_pairs

    study = make_study(name="frames", mode="both")
    db = study.open()
    try:
        tok = start_rater(db, study.name)
        answers = 0
        while (t := next_trial(db, tok)) is not None:
            if t.mode == TrialMode.ACR:
                submit_rating(db, tok, t.trial_id, score=1 + t.position % 5)
            else:
                submit_rating(db, tok, t.trial_id, choice=("A", "B", "none")[t.position % 3])
            answers += 1
        acr, pairs, metrics = rating_frames(db, study.name)
        assert len(acr) + len(pairs) == answers and len(acr) and len(pairs)
        assert set(pairs["choice"]) <= {"a", "b", "tie"} and acr["repeat"].sum() + pairs["repeat"].sum() == 2
        assert (acr["rater"] == tok).all() and set(acr["role"]) <= {r.value for r in MethodRole}
        validate_acr(acr), validate_pairs(pairs), validate_metrics(metrics)
        assert metrics.loc[metrics["method"] == "hr", "psnr"].eq(float("inf")).all()
    finally:
        db.close()
