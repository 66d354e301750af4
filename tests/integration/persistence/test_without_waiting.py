"""Writes told not to wait: WouldWait before anything is written, and every later write waits again."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionflow.lifecycle import Actor, EventRefused, ManualClock
from sessionflow.persistence import Database, TransitionService, WouldWait
from tests.integration.persistence.conftest import lock_held_elsewhere, log_in, table_counts


@pytest.fixture
def sqlite_db(tmp_path: Path, sqlite_template: Path) -> Iterator[Database]:
    """SQLite alone: its single write lock is what these tests are about."""
    path = tmp_path / "sessionflow.db"
    shutil.copy(sqlite_template, path)
    database = Database.from_url(f"sqlite:///{path}", pool_size=4)
    yield database
    database.dispose()


@pytest.fixture
def sqlite_service(sqlite_db: Database, clock: ManualClock) -> TransitionService:
    return TransitionService(sqlite_db, clock=clock)


def sqlite_path(db: Database) -> Path:
    database = db.engine.url.database
    assert database is not None
    return Path(database)


def test_a_write_that_would_wait_for_sqlites_lock_writes_nothing(
    sqlite_db: Database, sqlite_service: TransitionService
) -> None:
    db, service = sqlite_db, sqlite_service
    session = log_in(service)
    before = table_counts(db)
    with lock_held_elsewhere(sqlite_path(db)):
        started = time.monotonic()
        with pytest.raises(WouldWait), db.without_waiting():
            service.fire("session", session, "logout", actor=Actor.CLIENT)
        assert time.monotonic() - started < 1.0, "told not to wait, it did not wait for the busy timeout"
    assert table_counts(db) == before
    assert service.get("session", session).state == "session_active"


def test_writes_after_it_wait_for_the_lock_again(sqlite_db: Database, sqlite_service: TransitionService) -> None:
    """The connection it used goes back with its busy timeout: the next writer on it waits and succeeds."""
    db, service = sqlite_db, sqlite_service
    session = log_in(service)
    with lock_held_elsewhere(sqlite_path(db)), pytest.raises(WouldWait), db.without_waiting():
        service.fire("session", session, "logout", actor=Actor.CLIENT)
    with lock_held_elsewhere(sqlite_path(db), seconds=0.3) as held:
        applied = service.fire("session", session, "logout", actor=Actor.CLIENT)
        assert held.released.is_set(), "it waited for the other connection"
    assert applied.to_state == "closed"


def test_a_write_that_would_wait_for_this_process_s_turn_writes_nothing(
    sqlite_db: Database, sqlite_service: TransitionService
) -> None:
    db, service = sqlite_db, sqlite_service
    session = log_in(service)
    holding, done = threading.Event(), threading.Event()

    def writer() -> None:
        with db.write():
            holding.set()
            done.wait(timeout=30)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(timeout=10)
        with pytest.raises(WouldWait), db.without_waiting():
            service.fire("session", session, "logout", actor=Actor.CLIENT)
    finally:
        done.set()
        thread.join(timeout=30)
    assert service.get("session", session).state == "session_active"


def test_outside_the_block_and_on_postgresql_writes_wait_as_always(db: Database, service: TransitionService) -> None:
    session = log_in(service)
    if db.is_sqlite:
        with db.without_waiting():
            pass
        applied = service.fire("session", session, "logout", actor=Actor.CLIENT)
    else:
        with db.without_waiting():  # PostgreSQL has no single write lock to queue on: nothing changes
            applied = service.fire("session", session, "logout", actor=Actor.CLIENT)
    assert applied.to_state == "closed"
    assert isinstance(applied.instance_id, uuid.UUID)


def wal_frames_left(db: Database) -> int:
    """Frames in the WAL now, read by a connection of the test's own (its PASSIVE checkpoint copies them)."""
    with sqlite3.connect(sqlite_path(db)) as other:
        _, frames, _ = other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(frames)


def write_many_pages(db: Database, service: TransitionService, sessions: int) -> None:
    """Logged-in sessions made and logged out by no-wait writes: each commit adds a few pages to the WAL."""
    with db.without_waiting():
        for _ in range(sessions):
            service.fire("session", log_in(service), "logout", actor=Actor.CLIENT)


def test_no_wait_writes_never_checkpoint_at_commit_and_checkpoint_does(
    sqlite_db: Database, sqlite_service: TransitionService
) -> None:
    """SQLite checkpoints at the commit that takes the WAL past 1,000 pages: milliseconds of I/O that the
    event loop would wait out. The no-wait writer leaves that to ``checkpoint()``, run from a worker thread."""
    db, service = sqlite_db, sqlite_service
    write_many_pages(db, service, 300)
    assert wal_frames_left(db) > 1_000, "the no-wait writes checkpointed at commit"
    write_many_pages(db, service, 300)  # the WAL restarts after that full checkpoint
    db.checkpoint()
    write_many_pages(db, service, 1)
    assert wal_frames_left(db) < 50, "after checkpoint(), the next write starts the WAL again"


def test_the_no_wait_writer_counts_its_commits_so_an_idle_worker_skips_checkpoints(
    sqlite_db: Database, sqlite_service: TransitionService
) -> None:
    db, service = sqlite_db, sqlite_service
    session = log_in(service)  # ordinary writes: not counted
    assert db.no_wait_commits == 0
    with db.without_waiting():
        service.fire("session", session, "logout", actor=Actor.CLIENT)
    assert db.no_wait_commits == 1
    with pytest.raises(EventRefused), db.without_waiting():  # refused by the machine: rolled back, not counted
        service.fire("session", session, "logout", actor=Actor.CLIENT)
    assert db.no_wait_commits == 1
