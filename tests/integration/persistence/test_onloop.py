"""PostgreSQL work on the event loop (persistence/onloop.py): its waits are awaited, the loop goes on meanwhile."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from typing import Any

import psycopg
import pytest
from sqlalchemy import make_url

from sessionflow.lifecycle import Actor
from sessionflow.persistence import SESSIONS
from sessionflow.persistence.bounded import BoundedConnection
from sessionflow.persistence.database import Database
from sessionflow.persistence.service import TransitionService
from tests.integration.persistence.conftest import log_in

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def backend_pid(db: Database) -> int:
    with db.read() as cursor:
        cursor._cursor.execute("SELECT pg_backend_pid()")
        return int(cursor._cursor.fetchone()[0])


async def ticking(until: asyncio.Event) -> list[float]:
    """When the loop got to run, every 10 ms, until ``until`` is set."""
    ticks: list[float] = []
    while not until.is_set():
        ticks.append(time.monotonic())
        await asyncio.sleep(0.01)
    return ticks


def test_work_waiting_for_a_row_lock_leaves_the_loop_running(db: Database, service: TransitionService) -> None:
    session_id = log_in(service)
    url = make_url(str(db.engine.url)).set(drivername="postgresql").render_as_string(hide_password=False)
    ran_on: list[int] = []

    def log_out() -> str:
        ran_on.append(threading.get_ident())
        with service.transaction() as tx:
            tx.snapshot(SESSIONS, session_id)  # waits for the row lock the other connection holds
            return tx.fire("session", session_id, "logout", actor=Actor.CLIENT).to_state

    async def run() -> tuple[str, list[float], int]:
        with psycopg.connect(url) as holder:
            holder.execute("SELECT 1 FROM sessions WHERE id = %s FOR UPDATE", (session_id,))
            done = asyncio.Event()
            ticks = asyncio.create_task(ticking(done))
            logout = asyncio.create_task(db.on_loop(log_out))
            await asyncio.sleep(0.3)
            assert not logout.done(), "the logout did not wait for the lock"
            holder.rollback()  # lets go of the lock
            to_state = await logout
            done.set()
            return to_state, await ticks, threading.get_ident()

    to_state, ticks, loop_thread = asyncio.run(run())
    assert to_state == "closed"
    assert ran_on == [loop_thread]
    assert len(ticks) >= 15, f"the loop ran {len(ticks)} times in the 0.3 s the logout waited"
    assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.2


def test_concurrent_work_on_the_loop_takes_a_connection_each(db: Database) -> None:
    """Reads and held connections are per request, not per thread: these two share the loop's thread."""

    def read_slowly() -> tuple[int, int]:
        with db.read() as cursor:
            cursor._cursor.execute("SELECT pg_backend_pid(), pg_sleep(0.2)")
            first = int(cursor._cursor.fetchone()[0])
            return first, backend_pid(db)  # a nested read joins its own request's read

    async def run() -> list[tuple[int, int]]:
        return list(await asyncio.gather(db.on_loop(read_slowly), db.on_loop(read_slowly)))

    started = time.monotonic()
    (a_outer, a_inner), (b_outer, b_inner) = asyncio.run(run())
    assert a_outer == a_inner
    assert b_outer == b_inner
    assert a_outer != b_outer
    assert time.monotonic() - started < 0.38, "the two reads did not wait for the database together"


def test_a_new_connection_is_made_in_a_worker_thread(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    made_on: list[int] = []
    connect = BoundedConnection.connect

    def recording(*args: Any, **kwargs: Any) -> BoundedConnection:
        made_on.append(threading.get_ident())
        return connect(*args, **kwargs)

    monkeypatch.setattr(BoundedConnection, "connect", recording)
    db.dispose()  # an empty pool: the work's checkout connects

    async def run() -> tuple[int, int]:
        return await db.on_loop(lambda: backend_pid(db)), threading.get_ident()

    pid, loop_thread = asyncio.run(run())
    assert pid > 0
    assert made_on
    assert loop_thread not in made_on


def test_a_cancelled_request_lets_its_transaction_end_first(db: Database) -> None:
    """Its client gone, the request is cancelled mid-statement: the transaction commits and the connection goes
    back to the pool before the cancellation goes on."""
    finished: list[bool] = []

    def slow_write() -> None:
        with db.write() as cursor:
            cursor._cursor.execute("SELECT pg_sleep(0.3)")
            cursor._cursor.fetchone()
        finished.append(True)

    async def run() -> float:
        task = asyncio.create_task(db.on_loop(slow_write))
        await asyncio.sleep(0.05)
        task.cancel()
        started = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - started

    waited = asyncio.run(run())
    assert finished == [True]
    assert waited > 0.15, "the cancellation did not wait for the transaction"
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
