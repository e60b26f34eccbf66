"""Reliability of the rater app under careless and hostile use (issue 16, "Ratings and raters").

* a database file deleted or replaced under the running server stops the app with a plain message, and
  nothing is acknowledged that did not reach the file on disk (:class:`db.errors.DatabaseGone`);
* database errors (a read-only file after a restart) reach raters as a short apology, never as SQL,
  parameters or server paths; the log gets the details (:func:`mos_app.state.guarded`);
* lists of raters who never answered anything never close a study (issue 24) and stop steering new
  raters after :data:`db.raters.UNSTARTED_AFTER`, so abandoned starts cannot exhaust a study.

The browser half of "Back starts a second rater" is in ``test_rater_reliability_browser.py``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select, update

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from db import get_rater, next_trial, open_database, start_rater, submit_rating  # noqa: E402
from db.errors import DatabaseGone  # noqa: E402
from db.models import Rater, Rating, Trial, utcnow  # noqa: E402
from db.raters import UNSTARTED_AFTER  # noqa: E402
from mos_app.state import APOLOGY, GONE  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "mos_app" / "app.py")

pytestmark = pytest.mark.timeout(120)


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def _text(at: AppTest) -> str:
    parts = []
    for kind in ("title", "markdown", "caption", "info", "warning", "error", "success", "code"):
        parts += [str(e.value) for e in at.get(kind)]
    return "\n".join(parts)


def _start(app, url: str) -> tuple[AppTest, str]:
    at = _ok(app(url))
    at.checkbox(key="consent").check().run()
    at.button(key="start").click().run()
    return _ok(at), at.query_params["r"]


def _on_trial(app, url: str) -> tuple[AppTest, str]:
    at, token = _start(app, url)
    at.button(key="calibrated_btn").click().run()
    assert at.radio, "a trial is shown"
    return _ok(at), token


def _answer(at: AppTest) -> AppTest:
    at.radio[0].set_value(at.radio[0].options[3])
    next(b for b in at.button if str(b.key).startswith("FormSubmitter:form_")).click().run()
    return at


def _n_ratings(url: str) -> int:
    db = open_database(url)
    try:
        with db.session() as s:
            return len(s.scalars(select(Rating.id)).all())
    finally:
        db.close()


def _sqlite_files(url: str) -> list[Path]:
    path = Path(url.removeprefix("sqlite:///"))
    return [path, Path(f"{path}-wal"), Path(f"{path}-shm")]


# ---------------------------------------------------------------------------------- 1. database deleted
def test_deleted_database_stops_answers_with_a_plain_message(app, make_study, sqlite_url):
    make_study(sqlite_url)
    at, token = _on_trial(app, sqlite_url)
    at = _ok(_answer(at))
    assert _n_ratings(sqlite_url) == 1 and "Image 2 of" in at.get("progress")[0].proto.text
    for f in _sqlite_files(sqlite_url):  # what `rm mos.db*` does under the running server
        f.unlink(missing_ok=True)
    at = _ok(_answer(at))
    shown = _text(at)
    assert GONE in shown and "not saved" in shown
    assert not at.radio, "no further trial is offered"
    assert "answers so far are saved" not in shown and "saved as you go" not in shown, "nothing claimed as saved"
    assert "mos.db" not in shown and "/tmp" not in shown
    # A refresh (new session) and a new rater meet the same message; nothing is stored anywhere.
    assert GONE in _text(_ok(app(sqlite_url, r=token)))
    assert GONE in _text(_ok(app(sqlite_url)))
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()


def test_replaced_or_deleted_database_file_is_noticed_by_the_data_layer(make_study, sqlite_url, tmp_path):
    study = make_study(sqlite_url)
    db = open_database(sqlite_url)
    path = _sqlite_files(sqlite_url)[0]
    try:
        token = start_rater(db, study.name)
        trial = next_trial(db, token)
        # Replaced by a copy (e.g. a backup restored under the running server): refused, before and after.
        copy = tmp_path / "copy.db"
        src, dst = sqlite3.connect(path), sqlite3.connect(copy)
        src.backup(dst)
        src.close()
        dst.close()
        os.replace(copy, path)
        with pytest.raises(DatabaseGone, match="replaced"):
            submit_rating(db, token, trial.trial_id, score=3)
        with pytest.raises(DatabaseGone):
            get_rater(db, token)
    finally:
        db.close()

    # Deleted while a write transaction runs: the commit went to the unlinked file, so it is not
    # acknowledged (DatabaseGone after the commit), not reported as stored.
    db = open_database(sqlite_url)
    try:
        def work(s):
            s.execute(update(Rater).values(display="x"))
            for f in _sqlite_files(sqlite_url):
                f.unlink(missing_ok=True)
            return "stored"

        with pytest.raises(DatabaseGone, match="deleted"):
            db.run(work, write=True)
    finally:
        db.close()


# ---------------------------------------------------------------------------------- 2. database errors
def _read_only(url: str) -> str:
    return f"sqlite:///file:{url.removeprefix('sqlite:///')}?mode=ro&uri=true"


def test_database_errors_reach_raters_as_an_apology(app, make_study, sqlite_url, caplog):
    study = make_study(sqlite_url)
    at, token = _on_trial(app, sqlite_url)
    _ok(_answer(at))
    # The server restarts on a database it can no longer write (a read-only file, a full disk, ...).
    ro = _read_only(sqlite_url)
    caplog.set_level(logging.ERROR, logger="mos_app")
    at = _ok(app(ro, r=token))
    assert at.radio, "reading still works: the rater sees their next trial"
    at = _ok(_answer(at))  # the answer fails in the callback
    shown = _text(at)
    assert APOLOGY in shown and "answers so far are saved" in shown
    for leak in ("INSERT", "OperationalError", "readonly", "sqlite", "/tmp", str(ROOT), "Traceback"):
        assert leak.lower() not in shown.lower(), leak
    assert _n_ratings(sqlite_url) == 1
    logged = "\n".join(r.getMessage() + "\n" + (logging.Formatter().formatException(r.exc_info) if r.exc_info else "")
                       for r in caplog.records if r.name == "mos_app")
    assert "OperationalError" in logged and "INSERT INTO rating" in logged, "the log gets the details"

    # The same through the page script itself (marking a trial shown is a write) and a new rater's start.
    db = open_database(sqlite_url)
    try:
        fresh = start_rater(db, study.name)
    finally:
        db.close()
    at = _ok(app(ro, r=fresh))
    at.button(key="calibrated_btn").click().run()
    _ok(at)
    assert at.error[0].value == APOLOGY and not at.radio
    at = _ok(app(ro))
    at.checkbox(key="consent").check().run()
    at.button(key="start").click().run()
    _ok(at)
    assert at.error[0].value == APOLOGY and "r" not in at.query_params


# ---------------------------------------------------------------------------------- 3b. unstarted lists
def _age(url: str, tokens: list[str], by: dt.timedelta) -> None:
    """Move the raters' start and shown times ``by`` into the past."""
    db = open_database(url)
    try:
        with db.session(write=True) as s:
            ids = s.scalars(select(Rater.id).where(Rater.token.in_(tokens))).all()
            s.execute(update(Rater).where(Rater.id.in_(ids)).values(created_at=utcnow() - by))
            s.execute(update(Trial).where(Trial.rater_id.in_(ids), Trial.shown_at.is_not(None))
                      .values(shown_at=utcnow() - by))
    finally:
        db.close()


def test_unstarted_lists_do_not_exhaust_the_study(app, make_study, db_url):
    make_study(db_url, votes_per_stimulus=1, repeats=0)  # one rater's list takes every item
    _, back_presser = _start(app, db_url)  # consent, Start, then gone (Back, closed tab): never answered
    at, rater = _on_trial(app, db_url)  # admitted at once: an unstarted list never closes the study
    assert rater != back_presser
    _ok(_answer(at))

    # A rater who has answered keeps their items for ABANDONED_AFTER, not the short window.
    _age(db_url, [rater], UNSTARTED_AFTER + dt.timedelta(minutes=5))
    at = _ok(app(db_url))  # told before the consent, in plain words, when places may free up
    assert "every remaining place is taken by people taking part right now" in at.info[0].value
    assert "try again later" in at.info[0].value and not at.checkbox and not at.error
    # The unstarted rater can still come back and continue their own list.
    assert _ok(app(db_url, r=back_presser)).title[0].value == "Calibration"
