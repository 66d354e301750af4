"""Alembic environment: how every sessionflow migration reaches its database.

The database, first match wins:

1. ``config.attributes["connection"]``: an open connection, what
   :mod:`sessionflow.persistence.migrate` passes; used as is and left open.
2. ``config.attributes["database"]``: a :class:`sessionflow.persistence.database.Database`,
   as set by :func:`sessionflow.persistence.migrate.config`.
3. ``SESSIONFLOW_DATABASE_URL`` (default ``sqlite:///sessionflow.db``, the
   app's default), so that ``alembic upgrade head`` and ``alembic check`` work
   from a checkout. The engine comes from ``create_db_engine``, so SQLite
   gets the same pragmas as the app.

Migrations are serialized (the reason is in :mod:`sessionflow.persistence.migrate`): on
PostgreSQL under a session-level advisory lock taken before Alembic reads the
current revision and released after it commits; on SQLite by running the
whole upgrade in one ``BEGIN IMMEDIATE`` transaction (the engine emits BEGIN
itself, so SQLite DDL is transactional here).

SQLite alters tables in batch mode: copy, drop the original, rename. Dropping
a table that others reference with ``ON DELETE CASCADE`` would delete their
rows, so, as SQLite prescribes for schema changes, foreign keys are off while
migrating and ``PRAGMA foreign_key_check`` must come back empty before commit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from alembic.util import CommandError
from sqlalchemy import Connection, func, make_url, select

from sessionflow.persistence.database import Database, create_db_engine
from sessionflow.persistence.migrate import ADVISORY_LOCK_KEY
from sessionflow.persistence.models import Base
from sessionflow.persistence.types import UTCDateTime

DEFAULT_DATABASE_URL = "sqlite:///sessionflow.db"  # keep in step with api.settings.Settings.database_url

config = context.config
target_metadata = Base.metadata


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render sessionflow's own column types by their import, not their module path."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        autogen_context.imports.add("from persistence.types import UTCDateTime")
        return "UTCDateTime()"
    return False


def _configure(**options: Any) -> None:
    context.configure(target_metadata=target_metadata, compare_type=True, render_item=render_item, **options)


def run_migrations_offline() -> None:
    """Write the SQL to stdout (``alembic upgrade --sql``) for someone to apply by hand, once."""
    url = make_url(_database_url())
    _configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.get_backend_name() == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    database: Database | None = config.attributes.get("database")
    if database is not None:
        with database.engine.connect() as connection:
            _migrate(connection)
        return
    engine = create_db_engine(_database_url(), pool_size=1)
    try:
        with engine.connect() as connection:
            _migrate(connection)
    finally:
        engine.dispose()


def _database_url() -> str:
    return os.environ.get("SESSIONFLOW_DATABASE_URL") or DEFAULT_DATABASE_URL


def _migrate(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    with _serialized(connection):
        _configure(connection=connection, render_as_batch=sqlite, transactional_ddl=True)
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                _check_foreign_keys(connection)


@contextmanager
def _serialized(connection: Connection) -> Iterator[None]:
    """Admit one migrating process at a time; the others wait, then see its result."""
    if connection.in_transaction():
        # The caller owns the transaction (and Alembic will leave it alone): on
        # PostgreSQL hold the lock until that transaction ends; on SQLite it
        # is too late to choose BEGIN IMMEDIATE or to switch foreign keys off.
        if connection.dialect.name == "postgresql":
            connection.execute(select(func.pg_advisory_xact_lock(ADVISORY_LOCK_KEY)))
        yield
    elif connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_lock(ADVISORY_LOCK_KEY)))
        connection.commit()  # the lock is the session's; Alembic then begins and commits its own transaction
        try:
            yield
        finally:
            if connection.in_transaction():  # left open only by a failure
                connection.rollback()
            connection.execute(select(func.pg_advisory_unlock(ADVISORY_LOCK_KEY)))
            connection.commit()
    else:
        raw = connection.connection.driver_connection
        assert raw is not None
        # PRAGMA foreign_keys is ignored inside a transaction: set it on the
        # DBAPI connection, which runs in autocommit (isolation_level=None).
        (foreign_keys,) = raw.execute("PRAGMA foreign_keys").fetchone()
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        raw.execute("PRAGMA foreign_keys=OFF")
        connection.execution_options(sqlite_immediate=True)
        try:
            yield
        finally:
            connection.execution_options(sqlite_immediate=immediate)
            raw.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")


def _check_foreign_keys(connection: Connection) -> None:
    violations = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if violations:
        shown = ", ".join(f"{table} rowid {rowid} -> {parent}" for table, rowid, parent, _ in violations[:10])
        raise CommandError(f"migration would leave {len(violations)} rows with dangling foreign keys: {shown}")


if config.config_file_name is not None:  # run from the alembic command line, not from persistence.migrate
    fileConfig(config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
