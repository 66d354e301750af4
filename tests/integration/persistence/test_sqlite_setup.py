"""How a SQLite file is set up on connect: WAL mode, even when others hold it open."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from sessionflow.persistence import database
from sessionflow.persistence.database import Database


def test_a_new_file_switches_to_wal_once_a_writer_lets_go(tmp_path: Path) -> None:
    """SQLite refuses a journal-mode switch at once, busy handler or not, while another connection
    is about to write; connecting waits for that writer instead of failing (workers opening a new file)."""
    path = tmp_path / "new.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE t (x INTEGER)")
    assert writer.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    writer.execute("BEGIN IMMEDIATE")  # a RESERVED lock, held until the rollback below
    release = threading.Timer(0.3, writer.rollback)
    release.start()
    db = Database.from_url(f"sqlite:///{path}", pool_size=1)
    try:
        with db.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        release.join()
        db.dispose()
        writer.close()


def test_a_writer_that_never_lets_go_fails_the_connect_after_the_busy_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wait for WAL mode is bounded by the busy timeout, then the lock error surfaces: no hang."""
    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT_MS", 200)
    path = tmp_path / "held.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("CREATE TABLE t (x INTEGER)")
    writer.execute("BEGIN IMMEDIATE")
    db = Database.from_url(f"sqlite:///{path}", pool_size=1)
    try:
        with pytest.raises(OperationalError, match="database is locked"), db.engine.connect():
            pass
    finally:
        db.dispose()
        writer.close()
