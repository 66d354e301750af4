"""The row cache of SQLite reads: kept while nothing commits, forgotten at any commit, from anywhere."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionflow.persistence import Database, RowCache


@pytest.fixture
def path(tmp_path: Path, sqlite_template: Path) -> Path:
    copy = tmp_path / "sessionflow.db"
    shutil.copy(sqlite_template, copy)
    return copy


@pytest.fixture
def db(path: Path) -> Iterator[Database]:
    database = Database.from_url(f"sqlite:///{path}", pool_size=2)
    yield database
    database.dispose()


class Reads:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        self.count += 1
        return self.count


def commit_elsewhere(path: Path) -> None:
    """A commit by a connection the cache knows nothing of (another worker, another host's CLI)."""
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE IF NOT EXISTS elsewhere (n INTEGER)")
        other.execute("INSERT INTO elsewhere VALUES (1)")


def test_a_row_is_read_once_while_nothing_commits(db: Database) -> None:
    cache, reads = RowCache(db), Reads()
    assert [cache.get("k", reads) for _ in range(3)] == [1, 1, 1]
    assert reads.count == 1
    cache.close()


def test_a_commit_by_any_other_connection_forgets_every_row(db: Database, path: Path) -> None:
    cache, reads = RowCache(db), Reads()
    cache.get("k", reads)
    commit_elsewhere(path)
    assert cache.get("k", reads) == 2
    with db.engine.begin() as connection:  # this process's own writes use other connections than the cache's
        connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
    assert cache.get("k", reads) == 3
    cache.close()


def test_a_commit_in_another_process_forgets_every_row(db: Database, path: Path) -> None:
    cache, reads = RowCache(db), Reads()
    cache.get("k", reads)
    script = f"import sqlite3; c = sqlite3.connect({str(path)!r}); c.execute('CREATE TABLE p (n)'); c.commit()"
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    assert cache.get("k", reads) == 2
    cache.close()


def test_a_row_read_while_a_commit_landed_is_not_kept(db: Database, path: Path) -> None:
    """The read may predate the commit: once a look has seen that commit, the row is not kept for later looks."""
    cache, reads = RowCache(db), Reads()

    def racing() -> int:
        value = reads()
        commit_elsewhere(path)
        cache.get("other", lambda: 0)  # another request looks meanwhile, and sees the commit
        return value

    assert cache.get("k", racing) == 1
    assert cache.get("k", reads) == 2, "the row read across the commit was not served again"
    cache.close()


def test_a_look_that_fails_serves_nothing_kept(db: Database) -> None:
    cache, reads = RowCache(db), Reads()
    cache.get("k", reads)
    cache._watcher.dbapi_connection.close()  # the watcher's connection breaks
    assert cache.get("k", reads) == 2, "read afresh, and not kept"
    assert cache.get("k", reads) == 3, "a new watcher knows no version yet"
    assert cache.get("k", reads) == 3, "and keeps rows again"
    cache.close()


@pytest.mark.postgres
def test_postgresql_gets_none(postgres_url: str) -> None:
    """No data_version there: every read goes to the database."""
    database = Database.from_url(postgres_url)
    assert not RowCache.fits(database)
    with pytest.raises(ValueError, match="SQLite"):
        RowCache(database)
    database.dispose()


def counting_looks(cache: RowCache) -> list[int | None]:
    """Every question the cache asks SQLite, with its answer."""
    looks: list[int | None] = []
    look = cache._look

    def counted() -> int | None:
        looks.append(look())
        return looks[-1]

    cache._look = counted  # type: ignore[method-assign]
    return looks


def test_one_look_asks_sqlite_once_for_a_blocks_rows(db: Database) -> None:
    cache, reads = RowCache(db), Reads()
    looks = counting_looks(cache)
    with cache.one_look():
        assert [cache.get("a", reads), cache.get("b", reads), cache.get("a", reads)] == [1, 2, 1]
    assert len(looks) == 1
    assert cache.get("b", reads) == 2, "kept after the block"
    assert len(looks) == 2, "outside a block, every get looks"
    cache.close()


def test_a_commit_during_one_look_reaches_the_first_get_after_it(db: Database, path: Path) -> None:
    cache, reads = RowCache(db), Reads()
    with cache.one_look():
        assert cache.get("a", reads) == 1
        commit_elsewhere(path)
        assert cache.get("a", reads) == 1, "the block answers as of its look"
    assert cache.get("a", reads) == 2, "the next look sees the commit and forgets the row"
    cache.close()


def test_one_look_serves_nothing_once_another_thread_saw_a_commit(db: Database, path: Path) -> None:
    cache, reads = RowCache(db), Reads()
    cache.get("a", reads)
    with cache.one_look():
        assert cache.get("a", reads) == 1
        commit_elsewhere(path)
        worker = threading.Thread(target=cache.get, args=("other", lambda: 0))  # another request looks
        worker.start()
        worker.join(timeout=10)
        assert cache.get("a", reads) == 2, "the block's look is older than what the cache now knows"
        assert cache.get("a", reads) == 3, "and what it reads is not kept under that older look"
    cache.close()
