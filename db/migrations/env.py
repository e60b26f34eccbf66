"""Alembic environment for the MOS database.

Used programmatically by :func:`db.engine.upgrade` (the connection is passed in
``config.attributes["connection"]``) or from the command line::

    MOS_DB_URL=sqlite:///mos.db alembic -c db/alembic.ini upgrade head
"""

from __future__ import annotations

import os

from alembic import context

from db.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTER TABLE needs batch mode
        compare_type=True,
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        # The caller owns the transaction (db.engine.upgrade).
        _configure(connection)
        context.run_migrations()
        return
    from db.engine import make_engine

    url = os.environ.get("MOS_DB_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set MOS_DB_URL or sqlalchemy.url in alembic.ini")
    engine = make_engine(url)
    with engine.connect() as conn:
        conn = conn.execution_options(srkeras_immediate=True)
        with conn.begin():
            _configure(conn)
            context.run_migrations()
    engine.dispose()


def run_migrations_offline() -> None:
    url = os.environ.get("MOS_DB_URL") or config.get_main_option("sqlalchemy.url")
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
