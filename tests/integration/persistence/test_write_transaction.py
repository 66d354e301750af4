"""Database.write: commit on success; roll back, release and translate on failure, on both databases."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import bindparam, insert, select

from sessionflow.persistence.database import Database
from sessionflow.persistence.errors import StoreUnavailable
from sessionflow.persistence.models import RateLimit, table
from sessionflow.persistence.ratelimits import count_attempt
from sessionflow.persistence.service import TransitionService

_limits = table(RateLimit)
MINUTE = timedelta(minutes=1)


def _driver_error(db: Database) -> Exception:
    """What the DBAPI driver raises when the database goes away or stays locked."""
    error: Exception = db.engine.dialect.loaded_dbapi.OperationalError("simulated: server closed the connection")
    return error


def _count(db: Database, key: str) -> int | None:
    with db.engine.connect() as connection:
        return connection.execute(select(_limits.c.count).where(_limits.c.key == key)).scalar()


def test_a_body_that_raises_rolls_back_and_its_exception_goes_on(service: TransitionService, db: Database) -> None:
    key = f"test:{uuid.uuid4()}"
    with pytest.raises(LookupError, match="after the write"), service.transaction() as tx:
        count_attempt(tx, key, MINUTE)
        raise LookupError("after the write")
    assert _count(db, key) is None
    with service.transaction() as tx:  # the write turn and the connection were given back
        count_attempt(tx, key, MINUTE)
    assert _count(db, key) == 1


def test_a_database_error_in_the_body_is_store_unavailable_and_rolled_back(
    service: TransitionService, db: Database
) -> None:
    """The driver's OperationalError (a lost connection, a lock past the busy timeout) surfaces typed, not raw."""
    key = f"test:{uuid.uuid4()}"
    with pytest.raises(StoreUnavailable, match="database error: OperationalError"), service.transaction() as tx:
        count_attempt(tx, key, MINUTE)
        raise _driver_error(db)
    assert _count(db, key) is None
    with service.transaction() as tx:
        count_attempt(tx, key, MINUTE)
    assert _count(db, key) == 1


def test_a_statement_that_fails_unanswered_fails_the_whole_transaction(
    service: TransitionService, db: Database
) -> None:
    """On PostgreSQL a statement whose result nobody reads is answered with the next one read, or at the commit
    (psycopg's pipeline mode): a failure surfaces there at the latest, and nothing the transaction wrote is kept."""
    counted, duplicate = f"test:{uuid.uuid4()}", f"test:{uuid.uuid4()}"
    add = db.prepare(
        "test_rate_limit_insert",
        lambda: insert(_limits).values(key=bindparam("key"), window_start=bindparam("now"), count=1),
    )
    integrity_error = db.engine.dialect.loaded_dbapi.IntegrityError
    with pytest.raises(integrity_error), service.transaction() as tx:
        count_attempt(tx, counted, MINUTE)  # answered at once: it returns the count
        tx.cursor.execute(add, {"key": duplicate, "now": tx.now})
        tx.cursor.execute(add, {"key": duplicate, "now": tx.now})  # the key is taken: this one fails
    assert _count(db, counted) is None
    assert _count(db, duplicate) is None
    with service.transaction() as tx:  # the connection and the write turn were given back in working order
        count_attempt(tx, counted, MINUTE)
    assert _count(db, counted) == 1


def test_the_write_turn_is_released_after_every_kind_of_failure(db: Database) -> None:
    """After failures of both kinds, a writer on another thread still gets in at once."""
    with pytest.raises(ZeroDivisionError), db.write():
        1 / 0  # noqa: B018 - the failure is the point
    with pytest.raises(StoreUnavailable), db.write():
        raise _driver_error(db)
    entered = threading.Event()

    def writer() -> None:
        with db.write():
            entered.set()

    thread = threading.Thread(target=writer)
    thread.start()
    thread.join(timeout=5)
    assert entered.is_set()


def test_a_write_on_the_connection_a_read_used_is_still_one_transaction(db: Database) -> None:
    """Reads run in autocommit; the connection must leave it, or a later write transaction on it would commit
    statement by statement and a failure would leave half of it behind."""
    single = Database.from_url(db.engine.url.render_as_string(hide_password=False), pool_size=1)
    try:
        service = TransitionService(single)
        with single.read() as cursor:  # the pool's one connection, used sequentially: the write below gets it
            assert cursor is not None
        key = f"test:{uuid.uuid4()}"
        with pytest.raises(LookupError), service.transaction() as tx:
            count_attempt(tx, key, MINUTE)
            raise LookupError("after the write")
        assert _count(db, key) is None, "the write was committed on its own: the connection was left in autocommit"
    finally:
        single.dispose()


def test_reads_nested_in_one_thread_share_one_connection(db: Database) -> None:
    with db.read() as outer, db.read() as inner:
        assert inner is outer
    with db.read() as after:
        assert after is not outer, "a read opened after the outer one ended takes a connection of its own"
