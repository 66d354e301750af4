"""Fixtures for the transition service tests: sessions driven to a given state."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select

from sessionflow.lifecycle import Actor
from sessionflow.persistence.database import Database
from sessionflow.persistence.models import Base, TransitionRecord
from sessionflow.persistence.records import Snapshot
from sessionflow.persistence.service import TransitionService
from sessionflow.persistence.tx import Tx

LOGIN_FACTS = {"credentials_verified": True, "user_enabled": True, "under_session_cap": True}


def log_in(service: TransitionService) -> uuid.UUID:
    """A new session taken through authenticate and activate, as login does."""
    session = service.create("session")
    service.fire("session", session.id, "authenticate", actor=Actor.SERVER, facts=LOGIN_FACTS)
    service.fire("session", session.id, "activate", actor=Actor.SERVER, facts=LOGIN_FACTS)
    return session.id


@pytest.fixture
def active_session(service: TransitionService) -> uuid.UUID:
    return log_in(service)


@contextmanager
def sqlite_trace(tx: Tx) -> Iterator[list[str]]:
    """The SQL that sqlite3 runs on ``tx``'s connection inside the block (sqlite3's own statement trace)."""
    statements: list[str] = []
    connection = tx.cursor._cursor.connection
    connection.set_trace_callback(statements.append)
    try:
        yield statements
    finally:
        connection.set_trace_callback(None)


def history_of(db: Database, instance_id: uuid.UUID) -> list[tuple[int, str, str, str, str]]:
    h = TransitionRecord.__table__.c
    with db.engine.connect() as connection:
        rows = connection.execute(
            select(h.seq, h.event, h.from_state, h.to_state, h.actor)
            .where(h.instance_id == instance_id)
            .order_by(h.seq)
        )
        return [tuple(row) for row in rows]


def table_counts(db: Database) -> dict[str, int]:
    with db.engine.connect() as connection:
        return {
            t.name: connection.scalar(select(func.count()).select_from(t)) or 0 for t in Base.metadata.sorted_tables
        }


@pytest.fixture
def unchanged(db: Database, service: TransitionService) -> Callable[[uuid.UUID], Callable[[], None]]:
    """``check = unchanged(id)`` records the store; ``check()`` asserts nothing was written since."""

    def record(instance_id: uuid.UUID) -> Callable[[], None]:
        before_counts = table_counts(db)
        before: Snapshot = service.get("session", instance_id, fire_due=False)

        def check() -> None:
            after = service.get("session", instance_id, fire_due=False)
            assert table_counts(db) == before_counts
            assert (after.state, after.version, dict(after.timers)) == (
                before.state,
                before.version,
                dict(before.timers),
            )
            assert after.row == before.row

        return check

    return record


class HeldLock:
    """SQLite's write lock on a database file, held by a connection of its own (as another worker or the CLI
    would hold it) until :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._connection.execute("BEGIN IMMEDIATE")
        self._turn = threading.Lock()
        self.released = threading.Event()

    def release(self) -> None:
        with self._turn:
            if not self.released.is_set():
                self._connection.execute("ROLLBACK")
                self.released.set()

    def close(self) -> None:
        self.release()
        self._connection.close()


@contextmanager
def lock_held_elsewhere(path: Path, seconds: float | None = None) -> Iterator[HeldLock]:
    """The write lock on the SQLite file ``path``, held until the block ends, or for ``seconds`` when given."""
    held = HeldLock(path)
    timer = threading.Timer(seconds, held.release) if seconds is not None else None
    if timer is not None:
        timer.start()
    try:
        yield held
    finally:
        if timer is not None:
            timer.join(timeout=30)
        held.close()
