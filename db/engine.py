"""Opening a MOS database: any SQLAlchemy URL, schema brought to the latest Alembic revision.

SQLite (the default deployment) gets WAL journaling (readers never block the writer), a busy timeout
(writers queue instead of failing) and enforced foreign keys on every connection; write transactions
start with ``BEGIN IMMEDIATE`` so two writers never deadlock on a read-then-write lock upgrade.
PostgreSQL write paths lock the rows they depend on (``SELECT ... FOR UPDATE``, see ``db.raters`` and
``db.ratings``). :meth:`Database.run` is the unit of work of the data layer: one transaction, run again
as a whole after a transient lock conflict.

A SQLite database file that is deleted or replaced under a running server (``rm mos.db*``, a restored
copy) would otherwise keep taking writes into the unlinked file, lost when the process ends. The
:class:`Database` remembers the file's identity (device, inode) at open and checks it before every
transaction and again after every write commits; a mismatch raises :class:`~db.errors.DatabaseGone`,
so nothing is reported as stored unless it is in the file on disk. Once gone, it stays gone for the
life of the :class:`Database` (a restart opens the new file).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from db.errors import DatabaseGone, DatabaseUnavailable

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Milliseconds an SQLite writer waits for the lock before giving up ("database is locked").
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: PostgreSQL SQLSTATEs worth retrying: serialization failure, deadlock detected.
RETRY_SQLSTATES = frozenset({"40001", "40P01"})

T = TypeVar("T")


def is_transient(err: DBAPIError) -> bool:
    """A lock conflict that a fresh attempt of the same transaction can get past."""
    code = getattr(getattr(err, "orig", None), "sqlstate", None)
    return code in RETRY_SQLSTATES or (isinstance(err, OperationalError) and "database is locked" in str(err))


class Database:
    """A connection pool plus session factory.

    ``with db.session() as s:`` is one transaction: it commits on normal exit and rolls back on an
    exception. ``write=True`` marks a transaction that will write: on SQLite it starts with ``BEGIN
    IMMEDIATE`` (takes the write lock up front, waiting up to the busy timeout), elsewhere it is an
    ordinary transaction. ``db.run(work)`` is the same transaction, retried on lock conflicts.
    """

    def __init__(self, engine: Engine, serialize_sqlite_writes: bool = True):
        self.engine = engine
        self.url = engine.url
        self.dialect = engine.dialect.name
        self._read = sessionmaker(bind=engine, expire_on_commit=False)
        self._write = sessionmaker(bind=engine.execution_options(srkeras_immediate=True), expire_on_commit=False)
        self._sqlite_write_lock = threading.Lock() if (self.dialect == "sqlite" and serialize_sqlite_writes) else None
        self._file = sqlite_file(self.url)
        self._identity = _file_identity(self._file) if self._file is not None else None
        self._gone: str | None = None  # why the file is no longer ours, once noticed

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def check_file(self) -> None:
        """Raise :class:`~db.errors.DatabaseGone` if the SQLite file was deleted or replaced since open.

        A no-op for in-memory SQLite and other databases. Costs one ``stat`` call.
        """
        if self._file is None:
            return
        if self._identity is None:  # opened before the file existed: it is ours from first sight
            self._identity = _file_identity(self._file)
            return
        if self._gone is None:
            now = _file_identity(self._file)
            if now is None:
                self._gone = "deleted"
            elif now != self._identity:
                self._gone = "replaced by another file"
        if self._gone is not None:
            raise DatabaseGone(
                f"the database file {self._file.name} was {self._gone} while the server was running; "
                "no answer can be stored until the server is restarted with a valid database"
            )

    @contextlib.contextmanager
    def session(self, write: bool = False) -> Iterator[Session]:
        # SQLite: writer threads of this process queue on a Python lock (woken on release) rather than in
        # SQLite's busy handler, which polls with sleeps of up to 100 ms and inflates tail latency.
        # Other processes are still coordinated by BEGIN IMMEDIATE + busy_timeout.
        lock = self._sqlite_write_lock if (write and self._sqlite_write_lock is not None) else contextlib.nullcontext()
        with lock:
            self.check_file()
            s = (self._write if write else self._read)()
            try:
                with s.begin():
                    yield s
            finally:
                s.close()
            if write:  # committed: it counts as stored only if it went to the file that is still there
                self.check_file()

    def run(self, work: Callable[[Session], T], *, write: bool = False, attempts: int = 6) -> T:
        """``work(session)`` as one transaction (see :meth:`session`); its return value.

        After a transient lock error (:func:`is_transient`: PostgreSQL serialization failure or
        deadlock, SQLite "database is locked") the transaction is rolled back and ``work`` runs again
        from the start in a fresh one, up to ``attempts`` times with exponential backoff (10 ms,
        20 ms, ...). ``work`` must therefore have no side effects outside the session. Every other
        exception propagates unchanged after the rollback; :class:`~db.errors.DatabaseGone` (the
        SQLite file was deleted or replaced, see :meth:`check_file`) is never retried.
        """
        for i in range(attempts):
            try:
                with self.session(write=write) as s:
                    return work(s)
            except DBAPIError as e:
                if not is_transient(e) or i == attempts - 1:
                    raise
            time.sleep(0.01 * (2**i))
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close all pooled connections (call before dropping the database or its schema)."""
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"


def sqlite_file(url) -> Path | None:
    """The absolute path of the SQLite database file of ``url``; None for in-memory or other databases."""
    u = make_url(url) if isinstance(url, str) else url
    if u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:"):
        return None
    name = u.database
    if name.startswith("file:"):  # sqlite:///file:path?mode=ro&uri=true
        if "mode=memory" in name or u.query.get("mode") == "memory":
            return None
        name = name.removeprefix("file:").split("?", 1)[0]
    return Path(name).expanduser().resolve()


def _file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of ``path``, or None when it does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's implicit BEGIN is deferred only).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys = ON")
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; fsync at checkpoints only
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        immediate = conn.get_execution_options().get("srkeras_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str, must_exist: bool = False, **kwargs) -> Engine:
    """A SQLAlchemy engine for ``url`` with the SQLite pragmas above (no schema work). ``must_exist``:
    an SQLite file is opened only if it exists (``mode=rw``: a mistyped path never creates a file)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if (path := sqlite_file(u)) is not None:
            if must_exist:
                if not path.is_file():
                    raise DatabaseUnavailable(f"{path}: no such database file (check the URL; nothing was created)")
                kwargs.setdefault("creator", lambda: sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True,
                                                                     check_same_thread=False))
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
            kwargs.setdefault("connect_args", {"check_same_thread": False})
        else:  # one shared in-memory database for all threads
            kwargs.setdefault("connect_args", {"check_same_thread": False})
            kwargs.setdefault("poolclass", StaticPool)
        engine = create_engine(u, **kwargs)
        _sqlite_setup(engine)
    else:
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        engine = create_engine(u, **kwargs)
    return engine


def alembic_config(connection=None):
    """Programmatic Alembic config pointing at ``db/migrations`` (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


_migrate_lock = threading.Lock()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run ``alembic upgrade <revision>`` on ``engine``, serialised across processes.

    SQLite: inside ``BEGIN IMMEDIATE`` (one migrating process at a time), foreign keys off while batch
    operations rebuild tables (checked with ``foreign_key_check`` before the commit); PostgreSQL: under a
    transaction-level advisory lock.
    """
    from alembic import command

    with _migrate_lock, engine.connect() as conn:
        conn = conn.execution_options(srkeras_immediate=True)
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:  # batch migrations rebuild tables: a DROP TABLE with foreign keys on would cascade-delete
            conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = OFF")  # every child row
        try:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(724115)"))
                command.upgrade(alembic_config(conn), revision)
                if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                    raise RuntimeError("migration left rows whose foreign keys point nowhere; rolled back")
        finally:
            if sqlite:
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = ON")


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def open_database(url: str, migrate: bool = True, serialize_sqlite_writes: bool = True, *, must_exist: bool = False,
                  **engine_kwargs) -> Database:
    """Open (and by default create or upgrade) the MOS database at SQLAlchemy ``url``.

    ``sqlite:///path/mos.db`` creates the folder and file; ``postgresql+psycopg://user:pw@host/db``
    needs an existing database (a schema can be chosen with ``?options=-csearch_path%3Dname``).
    With ``migrate`` the schema is brought to the Alembic head revision (a no-op when current).
    ``serialize_sqlite_writes``: SQLite writers of this process wait on a FIFO Python lock (fair,
    bounded tail latency) instead of SQLite's sleeping busy handler.
    ``must_exist`` (readers such as the report; implies no migration): the database is connected to
    now and must hold a MOS schema; a missing SQLite file is never created. Raises
    :class:`~db.errors.DatabaseUnavailable` with a one-line reason otherwise.
    """
    if must_exist:
        try:
            make_url(url)
        except ArgumentError:
            raise DatabaseUnavailable("not a database URL (expected e.g. sqlite:///mos.db or "
                                      "postgresql+psycopg://user@host/db)") from None
    engine = make_engine(url, must_exist=must_exist, **engine_kwargs)
    if must_exist:
        _check_readable(engine)
    elif migrate and current_revision(engine) != head_revision():
        upgrade(engine)
    return Database(engine, serialize_sqlite_writes=serialize_sqlite_writes)


def _check_readable(engine: Engine) -> None:
    """Connect and read the schema revision: DatabaseUnavailable (naming the URL, password hidden) if that fails."""
    where = engine.url.render_as_string(hide_password=True)
    try:
        revision = current_revision(engine)
    except DBAPIError as e:
        engine.dispose()
        text_ = str(getattr(e, "orig", None) or e).strip()
        reason = text_.splitlines()[0] if text_ else type(e).__name__
        raise DatabaseUnavailable(f"{where}: cannot read the database ({reason})") from None
    if revision is None:
        engine.dispose()
        raise DatabaseUnavailable(f"{where}: not a MOS database (no schema); check the URL")
