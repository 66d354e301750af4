"""persistence/liveness.py: pooled PostgreSQL connections are checked at checkout without a round trip,
and one the server closed is replaced before anyone uses it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import text

from sessionflow.persistence.database import Database
from sessionflow.persistence.liveness import looks_open

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def _backend(db: Database) -> int:
    with db.engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _pooled(db: Database) -> Iterator[psycopg.Connection[object]]:
    """The psycopg connections the pool holds idle."""
    for record in list(db.engine.pool._pool.queue):  # type: ignore[attr-defined]  # QueuePool's idle records
        if record.dbapi_connection is not None:
            yield record.dbapi_connection


def _end_backend(db_url: str, pid: int) -> None:
    with psycopg.connect(db_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as other:
        assert other.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


def _until(condition: object, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the closed socket was never reported"
        time.sleep(0.01)


def test_an_idle_connection_looks_open(db: Database) -> None:
    _backend(db)
    pooled = list(_pooled(db))
    assert pooled
    assert all(looks_open(connection) for connection in pooled)


def test_a_connection_the_server_ended_is_replaced_at_checkout(db: Database, db_url: str) -> None:
    before = _backend(db)
    _end_backend(db_url, before)
    _until(lambda: not any(looks_open(connection) for connection in _pooled(db)))
    after = _backend(db)  # no error reaches the caller
    assert after != before


def test_after_a_restart_every_checkout_gets_a_working_connection(db: Database, db_url: str) -> None:
    """As after a server restart, every pooled connection was closed by the server; none reaches a caller."""
    with db.engine.connect() as first, db.engine.connect() as second:
        pids = [int(c.execute(text("SELECT pg_backend_pid()")).scalar_one()) for c in (first, second)]
    for pid in pids:
        _end_backend(db_url, pid)
    _until(lambda: not any(looks_open(connection) for connection in _pooled(db)))
    with db.engine.connect() as again, db.engine.connect() as other:
        fresh = {int(c.execute(text("SELECT pg_backend_pid()")).scalar_one()) for c in (again, other)}
    assert len(fresh) == 2
    assert not fresh & set(pids)


def test_a_closed_connection_does_not_look_open(db: Database) -> None:
    _backend(db)
    connection = next(_pooled(db))
    connection.close()
    assert not looks_open(connection)
