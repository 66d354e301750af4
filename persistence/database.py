"""Engine and dialect setup, and the write transaction the transition service runs in.

Reads and administration use ordinary SQLAlchemy connections. Write
transactions run on a DBAPI connection (from the pool; on a SQLite file, one
the :class:`Database` keeps for writers) with statements compiled once per
dialect by SQLAlchemy (:class:`Prepared`): same SQL, same type conversions,
none of the per-execution overhead, which measured here was three quarters of
the cost of a transition on SQLite (see ``bench/engine.py``).

SQLite: WAL, ``synchronous=NORMAL``, a busy timeout, foreign keys on, and
write transactions opened with ``BEGIN IMMEDIATE`` so that a transaction that
reads then writes cannot fail with SQLITE_BUSY halfway. PostgreSQL: READ
COMMITTED; the compare-and-set on ``version`` decides races.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import Dialect
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from sessionflow.persistence import onloop
from sessionflow.persistence.bounded import bound_waits
from sessionflow.persistence.errors import StoreUnavailable, WouldWait
from sessionflow.persistence.liveness import ping_only_when_closed

SQLITE_BUSY_TIMEOUT_MS = 5000
T = TypeVar("T")


def create_db_engine(url: str, *, pool_size: int = 10, timeout: float | None = None, echo: bool = False) -> Engine:
    """An engine configured for sessionflow's access pattern on SQLite or PostgreSQL.

    With ``timeout`` (seconds), no single wait on the database lasts longer: a connection from the pool,
    SQLite's busy wait, and on PostgreSQL connecting and each exchange with the server (api/ serves
    with one; migrations and commands wait as long as they need).
    """
    parsed = make_url(url)
    bounded = {} if timeout is None else {"pool_timeout": timeout}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=2 * pool_size,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            echo=echo,
            hide_parameters=True,  # bound values include password and token hashes: never in errors or logs
            **bounded,
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=2 * pool_size,
            echo=echo,
            hide_parameters=True,
            **bounded,
        )
        ping_only_when_closed(engine)  # instead of pool_pre_ping's round trip at every checkout
        bound_waits(engine, timeout)
        return engine
    raise ValueError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql")


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let us emit BEGIN ourselves (pysqlite's implicit transactions are deferred).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    _sqlite_use_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_use_wal(cursor: Any) -> None:
    """Put the database file in WAL mode, which then persists in the file.

    Switching needs an exclusive lock, and SQLite answers SQLITE_BUSY at once,
    without calling the busy handler, when another connection holds a shared
    lock at that moment (several workers opening a new database together).
    So the switch is skipped when the file is already in WAL mode and retried
    for up to the busy timeout otherwise.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _sqlite_on_begin(connection: Any) -> None:
    mode = "IMMEDIATE" if connection.get_execution_options().get("sqlite_immediate") else "DEFERRED"
    connection.exec_driver_sql(f"BEGIN {mode}")


class Prepared:
    """A Core statement compiled once for one dialect, run on a DBAPI cursor.

    Bind values go through the column types' own bind processors and result
    values through their result processors, exactly as SQLAlchemy would. Which
    position needs which processor is worked out here, once, so that a call
    only gathers the values and runs the processors that exist.
    """

    __slots__ = ("_binds", "_defaults", "_names", "_procs", "_results", "_width", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect, result_types: Sequence[Any] = ()) -> None:
        compiled = statement.compile(dialect=dialect)
        if not isinstance(compiled, SQLCompiler):
            raise TypeError(f"not a SQL statement: {statement!r}")
        self.sql = compiled.string
        self._names: tuple[str, ...] | None = tuple(compiled.positiontup or ()) if compiled.positional else None
        self._procs = {
            name: proc
            for name, bind in compiled.binds.items()
            if (proc := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        # Positional styles: (position, processor) for each parameter that has one.
        self._binds = tuple((i, self._procs[name]) for i, name in enumerate(self._names or ()) if name in self._procs)
        # Values bound at build time (a LIMIT, say) are used unless the caller passes the name.
        self._defaults = {name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required}
        processors = (type_.dialect_impl(dialect).result_processor(dialect, None) for type_ in result_types)
        self._results = tuple((i, proc) for i, proc in enumerate(processors) if proc is not None)
        self._width = len(result_types)

    def params(self, values: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        if self._defaults:
            values = {**self._defaults, **values}
        if self._names is not None:
            positional = [values[name] for name in self._names]
            for i, proc in self._binds:
                positional[i] = proc(positional[i])
            return positional
        named = dict(values)
        for name, proc in self._procs.items():
            if name in named:
                named[name] = proc(named[name])
        return named

    def row(self, raw: Sequence[Any] | None) -> tuple[Any, ...] | None:
        if raw is None:
            return None
        if not self._width:
            return tuple(raw)
        if len(raw) != self._width:
            raise ValueError(f"expected {self._width} result columns, got {len(raw)}")
        values = list(raw)
        for i, proc in self._results:
            values[i] = proc(values[i])
        return tuple(values)


class Database:
    """One engine plus the compiled statements and the write transaction built on it."""

    def __init__(self, engine: Engine, *, timeout: float | None = None) -> None:
        self.engine = engine
        self.timeout = timeout  # longest wait for this process's SQLite write turn; None: no bound
        self.dialect = engine.dialect
        self.is_sqlite = engine.dialect.name == "sqlite"
        self.is_postgresql = engine.dialect.name == "postgresql"
        self._dbapi_error = engine.dialect.loaded_dbapi.Error
        self._operational = (engine.dialect.loaded_dbapi.OperationalError, engine.dialect.loaded_dbapi.InterfaceError)
        # SQLite file databases: write transactions reuse connections kept here instead of checking one
        # out of the pool each time. The pool's checkout and checkin (proxy object, weakref, reset on
        # return) took about 15 us of a 145 us transition (bench/engine.py), and buy nothing here: a SQLite
        # connection never goes stale, and write() always commits or rolls back before handing it back.
        # Each writer still has its own connection, so concurrent writers meet SQLite's locking and busy
        # timeout as before; at most pool_size connections are kept, and they no longer count against the
        # pool. Not for in-memory databases, where each connection is its own database, nor PostgreSQL,
        # whose pool checks at checkout for connections the server has closed (persistence/liveness.py).
        self._spare_writers: list[Any] | None = [] if self.is_sqlite and isinstance(engine.pool, QueuePool) else None
        self._max_pooled = engine.pool.size() if isinstance(engine.pool, QueuePool) else 0
        # SQLite takes one writer at a time anyway; in this process, writers queue on a lock in turn
        # instead of sleeping and retrying inside SQLite, which under load ran into the busy timeout.
        self._write_turn: threading.RLock | None = threading.RLock() if self.is_sqlite else None
        # The read a caller has open and the connection one_connection() holds for it, if any, are kept per
        # context (_READING, _HELD): per thread, and per request where several share the event loop's thread
        # (persistence/onloop.py). Reads nested inside an open read share its connection, so a request that
        # authenticates and then answers from the store takes one read (see read()).
        self._no_wait = threading.local()  # set on a thread inside without_waiting()
        # without_waiting()'s writes use a connection of their own, kept here, that never waits for SQLite's
        # lock and never checkpoints at commit (checkpoint() does, off the event loop).
        self._loop_writer: Any = None
        self._loop_writer_free = threading.Lock()
        self.no_wait_commits = 0  # transactions that connection committed: nothing new, nothing to checkpoint
        # PostgreSQL work on the event loop (on_loop()): at most what the pool keeps at once, so that none of it
        # waits for a pooled connection, which would block the loop.
        self._loop_slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None  # made per loop
        self._engine_ready = False  # on_loop(): whether the engine has made its first connection (in a thread)

    @classmethod
    def from_url(cls, url: str, *, pool_size: int = 10, timeout: float | None = None) -> Database:
        return cls(create_db_engine(url, pool_size=pool_size, timeout=timeout), timeout=timeout)

    @functools.cached_property
    def _prepared(self) -> dict[Any, Prepared]:
        return {}

    def prepare(self, key: Any, build: Any, result_types: Sequence[Any] = ()) -> Prepared:
        """The :class:`Prepared` form of ``build()`` for this dialect, compiled on first use."""
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = self._prepared[key] = Prepared(build(), self.dialect, result_types)
        return prepared

    def write(self) -> WriteTransaction:
        """One write transaction on a DBAPI connection: commit on success, else roll back."""
        return WriteTransaction(self)

    @contextmanager
    def without_waiting(self) -> Iterator[None]:
        """Write transactions begun in this block, on this thread, never wait for the write lock: if this
        process's write turn or SQLite's lock is taken, they raise :class:`WouldWait` before writing anything.
        For a caller that must not block (the event loop), and runs the work again where it may wait.
        SQLite only: on PostgreSQL writes never queue on one lock, and this changes nothing."""
        outer = getattr(self._no_wait, "on", False)
        self._no_wait.on = self.is_sqlite
        try:
            yield
        finally:
            self._no_wait.on = outer

    def take_write_turn(self) -> bool:
        """Take this process's write turn if no other thread has it (True; then :meth:`give_back_write_turn`);
        a thread that has it may write, and takes it again without waiting. Always True on PostgreSQL."""
        try:
            self._take_turn(wait=False)
        except WouldWait:
            return False
        return True

    def give_back_write_turn(self) -> None:
        if self._write_turn is not None:
            self._write_turn.release()

    def _take_turn(self, *, wait: bool) -> None:
        """This process's write turn (SQLite): :class:`WouldWait` at once if another thread has it and not
        ``wait``, else :class:`StoreUnavailable` once the database timeout has passed."""
        turn = self._write_turn
        if turn is None:
            return
        if not wait:
            if not turn.acquire(blocking=False):
                raise WouldWait("another writer of this process has the write turn")
        elif not turn.acquire(timeout=-1 if self.timeout is None else self.timeout):
            raise StoreUnavailable(f"no turn to write within {self.timeout} s: the database is overloaded")

    def checkpoint(self) -> None:
        """Copy what the WAL holds into the database file, as far as no reader needs it (``PASSIVE``: it waits
        for no other connection). SQLite does it at commit once the WAL passes a thousand pages; the
        connection of :meth:`without_waiting` never does, so a running app calls this from a worker thread.

        It takes this process's write turn, as a committing writer's checkpoint does: with writers
        appending all along, no checkpoint would ever reach the WAL's end, and SQLite starts the WAL
        afresh only once one has (it grew by a page per page written, 236 MB in ten seconds of logouts).
        """
        if not self.is_sqlite:
            return
        self._take_turn(wait=True)
        try:
            raw = self._writer()
            try:
                raw.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except BaseException as exc:
                if (unavailable := self._hand_back(raw, exc)) is not None:
                    raise unavailable from exc
                raise
            self._hand_back(raw, None)
        finally:
            self.give_back_write_turn()

    def _loop_writer_connection(self) -> Any:
        """The connection of :meth:`without_waiting`'s writes, made on first use; :class:`WouldWait` if another
        such write (on another thread) has it."""
        if not self._loop_writer_free.acquire(blocking=False):
            raise WouldWait("the no-wait writer connection is in use")
        if self._loop_writer is None:
            try:
                raw = self.engine.raw_connection()
                raw.detach()  # ours: the pool neither counts nor resets it
                connection: Any = raw.dbapi_connection
                cursor = connection.cursor()
                cursor.execute("PRAGMA busy_timeout=0")
                cursor.execute("PRAGMA wal_autocheckpoint=0")
                self._loop_writer = connection
            except Exception as exc:
                self._loop_writer_free.release()
                raise StoreUnavailable(f"cannot connect to the database: {type(exc).__name__}") from exc
        return self._loop_writer

    def _hand_back_loop_writer(self, raw: Any, exc: BaseException | None) -> StoreUnavailable | None:
        """Free the no-wait connection, rolled back first after ``exc``; closed if that failed."""
        operational = isinstance(exc, self._operational)
        try:
            if exc is None:
                self.no_wait_commits += 1
            elif not _rollback_quietly(raw) or operational:
                self._loop_writer = None
                with contextlib.suppress(Exception):
                    raw.close()
        finally:
            self._loop_writer_free.release()
        if operational:
            return StoreUnavailable(f"database error: {type(exc).__name__}: {exc}")
        return None

    @contextmanager
    def read(self) -> Iterator[Cursor]:
        """Reads on a DBAPI connection, outside any write transaction.

        Both run them in autocommit mode: on SQLite no lock is held beyond the
        statement; on PostgreSQL no ``BEGIN`` goes before the first read and no
        ``ROLLBACK`` after the last, two round trips of the five a session read
        took (each statement still sees one committed state, as in a READ
        COMMITTED transaction). The connection leaves autocommit before the
        pool gets it back, so a write transaction never runs on one that
        commits each statement. Authentication reads a session row per
        request: this path costs about half of an ordinary SQLAlchemy
        connection's (bench/http.py). A read opened while this caller already
        has one open joins it: a route wraps its authentication and its own
        reads in one ``read()`` and they take one connection. (Writes never
        join a read: they take their own connection.)
        """
        reading = _READING.get()
        if reading is not None and reading[0] is self:
            yield reading[1]
            return
        raw = self._writer()
        try:
            if self.is_postgresql:
                raw.dbapi_connection.autocommit = True
            cursor = Cursor(raw.cursor())
        except BaseException as exc:
            if (unavailable := self._end_autocommit(raw, exc)) is not None:
                raise unavailable from exc
            raise
        token = _READING.set((self, cursor))
        try:
            yield cursor
        except BaseException as exc:
            _READING.reset(token)
            if (unavailable := self._end_autocommit(raw, exc)) is not None:
                raise unavailable from exc
            raise
        _READING.reset(token)
        self._end_autocommit(raw, None)

    def _end_autocommit(self, raw: Any, exc: BaseException | None) -> StoreUnavailable | None:
        """Hand back a connection a read or a PostgreSQL write transaction ran on in autocommit: rolled back
        after ``exc`` (a write's own ``BEGIN`` may still be open), then out of autocommit; one that cannot
        leave it is not kept."""
        if self.is_postgresql:
            if exc is not None:
                _rollback_quietly(raw)  # autocommit cannot change inside a transaction
            try:
                raw.dbapi_connection.autocommit = False
            except Exception as error:  # noqa: BLE001 - broken: the pool must never hand it to a writer
                raw.invalidate()
                exc = exc or error
        return self._hand_back(raw, exc)

    async def on_loop(self, work: Callable[[], T]) -> T:
        """PostgreSQL: ``work()`` on the event loop, its waits awaited there instead of blocking a worker thread
        (:mod:`sessionflow.persistence.onloop`), on one pooled connection for its reads and its transaction
        (:meth:`one_connection`)."""
        if not self.is_postgresql:
            raise RuntimeError("only PostgreSQL work runs on the event loop")
        loop = asyncio.get_running_loop()
        if self._loop_slots is None or self._loop_slots[0] is not loop:
            self._loop_slots = (loop, asyncio.Semaphore(max(1, self._max_pooled)))
        if not self._engine_ready:
            # SQLAlchemy sets up the dialect on the engine's first connection, under a lock held while it asks
            # the server: done on the loop, a second request's work would wait for that lock and block the loop.
            await asyncio.to_thread(self._ready_engine)

        def held() -> T:
            with self.one_connection():
                return work()

        return await onloop.run(held, self._loop_slots[1])

    def _ready_engine(self) -> None:
        try:
            self.engine.connect().close()
        except Exception as exc:  # SQLAlchemy wraps connect errors as OperationalError
            raise StoreUnavailable(f"cannot connect to the database: {type(exc).__name__}") from exc
        self._engine_ready = True

    @contextmanager
    def one_connection(self) -> Iterator[None]:
        """On PostgreSQL, reads and write transactions begun by this caller (this thread, or this request's
        work on the event loop) in this block, one after another, take one pooled connection: one checkout
        for a request that authenticates and then writes, instead of one per read and per transaction. A
        read or write that starts while another is open on it takes a connection of its own, as outside the
        block. Nothing changes on SQLite, whose writers keep spare connections already."""
        if not self.is_postgresql or self._slot() is not None:
            yield
            return
        slot = _Held()
        token = _HELD.set((self, slot))
        try:
            yield
        finally:
            _HELD.reset(token)
            if slot.raw is not None:
                slot.raw.close()  # back to the pool

    def _slot(self) -> _Held | None:
        """What :meth:`one_connection` holds for this caller on this database, if anything."""
        held = _HELD.get()
        return held[1] if held is not None and held[0] is self else None

    def _writer(self) -> Any:
        """A connection for one write transaction (or read): the one :meth:`one_connection` holds if it is free,
        else a spare SQLite one if there is one, else one from the pool."""
        slot = self._slot()
        if slot is not None and not slot.busy:
            if slot.raw is None:
                slot.raw = self._checkout()
            slot.busy = True
            return slot.raw
        if self._spare_writers:
            try:
                return self._spare_writers.pop()
            except IndexError:  # another thread took the last one meanwhile
                pass
        raw = self._checkout()
        if self._spare_writers is not None:
            raw.detach()  # ours from now on: the pool neither counts nor resets it
            return raw.dbapi_connection
        return raw

    def _checkout(self) -> Any:
        try:
            return self.engine.raw_connection()
        except Exception as exc:  # SQLAlchemy wraps connect errors as OperationalError
            raise StoreUnavailable(f"cannot connect to the database: {type(exc).__name__}") from exc

    def _release(self, raw: Any, *, reusable: bool) -> None:
        slot = self._slot()
        if slot is not None and slot.raw is raw:
            slot.busy = False
            if reusable and raw.dbapi_connection is not None:  # None: invalidated
                return  # kept for the block's next read or write
            slot.raw = None  # after an error: the pool decides, as for any other connection
        spares = self._spare_writers
        if spares is None:
            raw.close()  # back to the pool, which resets it
        elif reusable and not raw.in_transaction and len(spares) < self._max_pooled:
            spares.append(raw)
        else:
            raw.close()  # after a database error, or one more than the pool would keep: really closed

    def _hand_back(self, raw: Any, exc: BaseException | None) -> StoreUnavailable | None:
        """Release ``raw``, rolled back first after ``exc``; the error to raise instead of a driver's own.

        A connection is kept for reuse only if nothing failed or its rollback worked after a failure
        that was not the database's (a driver error may have left it broken).
        """
        operational = isinstance(exc, self._operational)
        reusable = exc is None or (_rollback_quietly(raw) and not operational)
        self._release(raw, reusable=reusable)
        if operational:
            return StoreUnavailable(f"database error: {type(exc).__name__}: {exc}")
        return None

    def dispose(self) -> None:
        spares = self._spare_writers or []
        while spares:
            spares.pop().close()
        if self._loop_writer is not None:
            loop_writer, self._loop_writer = self._loop_writer, None
            loop_writer.close()
        self.engine.dispose()


_READING: ContextVar[tuple[Database, Cursor] | None] = ContextVar("sessionflow_reading", default=None)
_HELD: ContextVar[tuple[Database, _Held] | None] = ContextVar("sessionflow_held", default=None)


class _Held:
    """What :meth:`Database.one_connection` holds: the connection, checked out on first use, and whether a
    read or write has it now."""

    __slots__ = ("busy", "raw")

    def __init__(self) -> None:
        self.raw: Any = None
        self.busy = False


def _rollback_quietly(raw: Any) -> bool:
    """Roll back; False if that failed too (the connection is broken: the original error is what matters)."""
    with contextlib.suppress(Exception):
        raw.rollback()
        return True
    return False


class WriteTransaction:
    """:meth:`Database.write`: take the write turn and a connection, BEGIN; on exit COMMIT or ROLLBACK.

    A plain context manager rather than a generator one: it runs once per
    transition, and the generator machinery was a measurable share of the
    service's cost over raw SQL (``bench/engine.py``). Database errors become
    :class:`StoreUnavailable`; a connection whose rollback failed is closed.

    On PostgreSQL the transaction runs in psycopg's pipeline mode, with its own ``BEGIN`` and ``COMMIT``
    (psycopg's implicit ``BEGIN`` would wait for its answer there): a statement whose result nobody
    reads is sent without waiting for it, and its answer comes with the next one that is read, or
    with the ``COMMIT``'s. A logout's transaction waits for the server three times instead of eight:
    ``BEGIN`` with the row's locking read, the compare-and-set with its history row, then the refresh
    tokens' retirement, the ``NOTIFY`` and the ``COMMIT`` together: in a worker thread, three times it wins
    the GIL back; on the event loop (``Database.on_loop``), three awaits.
    A statement that fails raises where the pipeline next waits (at the latest at the commit), and the
    whole transaction rolls back.
    """

    __slots__ = ("_cursor", "_db", "_no_wait", "_pipeline", "_raw")

    def __init__(self, db: Database) -> None:
        self._db = db
        self._raw: Any = None
        self._cursor: Any = None
        self._pipeline: Any = None
        self._no_wait = False

    def __enter__(self) -> Cursor:
        db = self._db
        self._no_wait = no_wait = getattr(db._no_wait, "on", False)
        db._take_turn(wait=not no_wait)
        try:
            self._raw = db._loop_writer_connection() if no_wait else db._writer()
            cursor = self._raw.cursor()
            if db.is_sqlite:
                _begin_immediate(cursor, wait=not no_wait)
            elif db.is_postgresql:
                connection = self._raw.dbapi_connection
                connection.autocommit = True  # the transaction is ours: BEGIN and COMMIT are statements
                self._pipeline = connection.pipeline()
                self._pipeline.__enter__()
                cursor.execute("BEGIN")
                self._cursor = cursor
        except BaseException as exc:
            if (unavailable := self._end(exc)) is not None:
                raise unavailable from exc
            raise
        return Cursor(cursor)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is not None:
            if (unavailable := self._end(exc)) is not None:
                raise unavailable from exc
            return  # the body's exception goes on as it was
        try:
            if (pipeline := self._pipeline) is not None:
                self._cursor.execute("COMMIT")
                self._pipeline = None
                pipeline.__exit__(None, None, None)  # sends everything queued and waits for every answer
            else:
                self._raw.commit()
        except BaseException as error:
            if (unavailable := self._end(error)) is not None:
                raise unavailable from error
            raise
        self._end(None)

    def _end(self, exc: BaseException | None) -> StoreUnavailable | None:
        """Release the connection (rolled back first after ``exc``) and the turn; what to raise for a database error."""
        db, raw, pipeline = self._db, self._raw, self._pipeline
        self._raw = self._pipeline = self._cursor = None
        try:  # no connection means _writer() failed, and it raises StoreUnavailable itself
            if raw is None:
                return None
            if pipeline is not None:  # after an error, which exc already is: leaving an aborted pipeline says it again
                with contextlib.suppress(Exception):
                    pipeline.__exit__(None, None, None)
            if self._no_wait:
                return db._hand_back_loop_writer(raw, exc)
            if db.is_postgresql:  # the transaction ran in autocommit, with its own BEGIN
                return db._end_autocommit(raw, exc)
            return db._hand_back(raw, exc)
        finally:
            db.give_back_write_turn()


def _begin_immediate(cursor: Any, *, wait: bool) -> None:
    """``BEGIN IMMEDIATE``: take SQLite's write lock now. With ``wait``, the connection's busy timeout bounds
    the wait for it; without, the connection is :meth:`Database.without_waiting`'s, whose busy timeout is
    zero, and :class:`WouldWait` says that another connection, in any process, holds the lock."""
    try:
        cursor.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if not wait and ("locked" in str(exc) or "busy" in str(exc)):
            raise WouldWait("another connection holds SQLite's write lock") from exc
        raise


class Cursor:
    """A DBAPI cursor inside a write transaction, speaking :class:`Prepared` statements."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def execute(self, prepared: Prepared, values: Mapping[str, Any]) -> None:
        self._cursor.execute(prepared.sql, prepared.params(values))

    def one(self, prepared: Prepared, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        self._cursor.execute(prepared.sql, prepared.params(values))
        return prepared.row(self._cursor.fetchone())

    def all(self, prepared: Prepared, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        self._cursor.execute(prepared.sql, prepared.params(values))
        return [row for raw in self._cursor.fetchall() if (row := prepared.row(raw)) is not None]
