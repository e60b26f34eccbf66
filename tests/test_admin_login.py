"""Admin password brute force (issue 24 item 8): a back-off shared through the database by every session
and server process, and one log line per failure without the password."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest

from db import login_attempt, open_database
from db.logins import FIRST_LOCK, FREE_FAILURES, lock_seconds

ADMIN = str(Path(__file__).resolve().parents[1] / "mos_app" / "admin.py")
T0 = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


def test_wrong_passwords_lock_every_process_out_then_the_right_one_works(db_url):
    one, two = open_database(db_url), open_database(db_url)  # two server processes on one study database
    try:
        for k in range(FREE_FAILURES - 1):
            a = login_attempt(one if k % 2 else two, False, now=T0)
            assert not a.ok and a.failures == k + 1 and a.locked_for == 0
        a = login_attempt(one, False, now=T0)
        assert a.failures == FREE_FAILURES and a.locked_for == FIRST_LOCK
        later = T0 + dt.timedelta(seconds=FIRST_LOCK - 1)
        a = login_attempt(two, True, now=later)  # even the right password waits out the lock, uncounted
        assert not a.ok and a.refused_locked and a.locked_for == pytest.approx(1) and a.failures == FREE_FAILURES
        after = T0 + dt.timedelta(seconds=FIRST_LOCK)
        a = login_attempt(two, False, now=after)  # one more failure: twice the lock
        assert a.failures == FREE_FAILURES + 1 and a.locked_for == 2 * FIRST_LOCK
        a = login_attempt(one, True, now=after + dt.timedelta(seconds=2 * FIRST_LOCK))
        assert a.ok and a.failures == 0
        assert login_attempt(two, False, now=after + dt.timedelta(seconds=2 * FIRST_LOCK)).locked_for == 0  # reset
    finally:
        one.close()
        two.close()
    assert lock_seconds(10_000) == 3600.0


def _admin_session(url: str, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MOS_DB_URL", url)
    monkeypatch.delenv("MOS_ADMIN_PASSWORD", raising=False)
    at = AppTest.from_file(ADMIN, default_timeout=60)
    at.secrets["admin_password"] = "s3cret"
    return at.run()


def _try(at, password: str):
    at.text_input(key="admin_pw").input(password)
    at.button[0].click().run()
    assert not at.exception
    return at


def test_guessing_in_several_sessions_locks_the_admin_page(make_study, db_url, monkeypatch, caplog):
    make_study(db_url)
    monkeypatch.setattr("time.sleep", lambda s: None)
    caplog.set_level(logging.WARNING, logger="mos_app.admin")
    sessions = [_admin_session(db_url, monkeypatch) for _ in range(2)]
    for k in range(FREE_FAILURES):
        at = _try(sessions[k % 2], f"guess-{k}")
    assert "locked for 30 s" in at.error[0].value
    fresh = _try(_admin_session(db_url, monkeypatch), "s3cret")  # a third session, the right password
    assert "locked" in fresh.error[0].value and not fresh.sidebar.selectbox
    lines = [r.getMessage() for r in caplog.records if "admin login refused" in r.getMessage()]
    assert len(lines) == FREE_FAILURES + 1 and "door locked" in lines[-1]
    assert not any("guess-" in line or "s3cret" in line for line in caplog.messages)
