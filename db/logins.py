"""Brute-force back-off of a password door (the admin page), shared through the database.

Every session and server process on one study database sees the same count of consecutive failures
(table ``login_failures``). After :data:`FREE_FAILURES` failures in a row the door locks for
:data:`FIRST_LOCK` seconds, doubling with each further failure up to :data:`MAX_LOCK` (exponential
back-off, as OWASP's authentication guidance suggests); while locked every attempt is refused
unchecked, even the right password, and does not count. A right password outside a lock resets the count.

Each attempt is one write transaction (check the lock, then count or reset), so parallel guesses
are serialised and cannot slip past the count. The caller compares the password; nothing here sees it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.engine import Database
from db.models import LoginFailures, utcnow

FREE_FAILURES = 5  # wrong passwords in a row before the first lock
FIRST_LOCK = 30.0  # seconds of the first lock; each further failure doubles it
MAX_LOCK = 3600.0  # the longest lock
ADMIN = "admin"  # the admin page's door


@dataclass(frozen=True)
class LoginAttempt:
    """The outcome of one attempt: ``ok`` (let in), ``failures`` in a row so far, ``locked_for`` seconds
    until the next attempt is checked (0: not locked), ``refused_locked`` (not checked: the door was locked)."""

    ok: bool
    failures: int
    locked_for: float
    refused_locked: bool = False


def lock_seconds(failures: int) -> float:
    """The lock after ``failures`` consecutive failures: none up to FREE_FAILURES, then 30 s, 60 s, ..."""
    if failures < FREE_FAILURES:
        return 0.0
    return min(MAX_LOCK, FIRST_LOCK * 2.0 ** min(failures - FREE_FAILURES, 32))


def login_attempt(db: Database, correct: bool, scope: str = ADMIN, now: dt.datetime | None = None) -> LoginAttempt:
    """Record one attempt at door ``scope`` whose password was ``correct`` (module docstring)."""

    def work(s: Session) -> LoginAttempt:
        at = now or utcnow()
        row = s.scalar(select(LoginFailures).where(LoginFailures.scope == scope).with_for_update())
        if row is None:
            row = LoginFailures(scope=scope, failures=0)
            s.add(row)
        if row.locked_until is not None and row.locked_until > at:
            return LoginAttempt(False, row.failures, (row.locked_until - at).total_seconds(), refused_locked=True)
        if correct:
            row.failures, row.locked_until = 0, None
            return LoginAttempt(True, 0, 0.0)
        row.failures = (row.failures or 0) + 1
        row.last_failure_at = at
        wait = lock_seconds(row.failures)
        row.locked_until = at + dt.timedelta(seconds=wait) if wait else None
        return LoginAttempt(False, row.failures, wait)

    return db.run(work, write=True)
