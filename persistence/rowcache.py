"""Rows read from SQLite, kept exactly as long as nothing has committed to the database since.

``PRAGMA data_version`` on a connection changes whenever another connection, in this process or any
other, commits to the database. :class:`RowCache` holds one connection that never writes and asks it
before every use: rows are served only while no commit at all has happened since they were read, and
all are forgotten at the first one. So a cached session never outlives a logout, a revocation, a
refresh or a fired timer, which all commit; the cache saves the read only between commits. Timers that
came due are not commits: whoever uses a cached row compares its due times with the clock, as with a
row just read. PostgreSQL has no such counter, and gets no cache.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Hashable, Iterator
from typing import Any, TypeVar

from sessionflow.persistence.database import Database

T = TypeVar("T")
MAX_ROWS = 10_000  # kept at most; when full, all are forgotten


class RowCache:
    def __init__(self, db: Database, *, limit: int = MAX_ROWS) -> None:
        if not RowCache.fits(db):
            raise ValueError("a row cache needs SQLite, whose data_version counts other connections' commits")
        self._db = db
        self._limit = limit
        self._watcher: Any = None  # a detached pool connection that only ever asks for data_version
        self._asking: Any = None  # its one cursor
        self._version: int | None = None
        self._rows: dict[Hashable, Any] = {}
        self._lock = threading.Lock()
        self._held = threading.local()  # the look a :meth:`one_look` block reuses, per thread

    @staticmethod
    def fits(db: Database) -> bool:
        """Whether ``db`` can have one: SQLite (always a file here, see ``create_db_engine``)."""
        return db.is_sqlite

    @contextlib.contextmanager
    def one_look(self) -> Iterator[None]:
        """Gets in this block, on this thread, all trust the block's first look: one question to SQLite
        for a request's several rows, each as it stood at that look or read since. (Each question lets
        go of the GIL, which in the server costs a hand-off to another thread and back: bench/http.py.)
        A row read afresh in the block is kept only if no commit came since that look, as always."""
        outer = getattr(self._held, "seen", False)
        self._held.seen = None  # not looked yet
        try:
            yield
        finally:
            self._held.seen = outer

    def get(self, key: Hashable, read: Callable[[], T]) -> T:
        """What ``read()`` gave for ``key`` if nothing has committed since; else ``read()`` now, kept."""
        with self._lock:
            seen = self._held_look()
            found = self._rows.get(key) if seen is not None else None
        if found is not None:
            return found  # type: ignore[no-any-return]
        row = read()
        with self._lock:
            # Kept only if no look since saw a commit: else this row may predate it, and a later look that
            # sees no new commit would serve it.
            if seen is not None and self._version == seen:
                if len(self._rows) >= self._limit:
                    self._rows.clear()
                self._rows[key] = row
        return row

    def _held_look(self) -> int | None:
        held = getattr(self._held, "seen", False)
        if held is False:  # outside one_look
            return self._look()
        if held is None:  # the block's first get; if the look fails, the next get looks again
            held = self._held.seen = self._look()
        # Should another thread's look have seen a commit since, the rows were forgotten then, and a row
        # read now is not kept under this older look (get compares it with the version).
        return held

    def close(self) -> None:
        with self._lock:
            self._forget()

    def _look(self) -> int | None:
        """The data version now, every row forgotten if anything committed since the last look; None if the
        look failed."""
        try:
            if self._watcher is None:
                self._watcher = self._db.engine.raw_connection()
                self._watcher.detach()  # ours: the pool neither counts nor resets it
                self._asking = self._watcher.dbapi_connection.cursor()
            version = self._asking.execute("PRAGMA data_version").fetchone()[0]
        except Exception:  # noqa: BLE001 - whatever went wrong, serve nothing kept; read() reports the store
            self._forget()
            return None
        if version != self._version:
            self._rows.clear()
            self._version = version
        return int(version)

    def _forget(self) -> None:
        self._rows.clear()
        self._version = None
        self._asking = None
        if self._watcher is not None:
            watcher, self._watcher = self._watcher, None
            with contextlib.suppress(Exception):  # a broken connection may fail to close; it is gone either way
                watcher.close()
