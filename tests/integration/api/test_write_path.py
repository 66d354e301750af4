"""Where a request's write runs: on the event loop when SQLite's lock is free, else in a worker thread,
and never with the loop waiting for the lock."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url

from sessionflow.persistence import WouldWait
from tests.integration.api.conftest import Api, bearer, settings_for
from tests.integration.chaos.proxy import Proxy
from tests.integration.client.conftest import PASSWORD, running_server
from tests.integration.persistence.conftest import HeldLock, lock_held_elsewhere


async def tick(gaps: list[float]) -> None:
    """Every 10 ms, the time since the last tick: a much longer gap says the event loop was blocked."""
    last = time.monotonic()
    while True:
        await asyncio.sleep(0.01)
        now = time.monotonic()
        gaps.append(now - last)
        last = now


def test_a_write_runs_on_the_event_loop(api: Api) -> None:
    """On the loop's thread, on both databases; on PostgreSQL its waits are awaited (persistence/onloop.py)."""
    threads: list[int] = []

    def work() -> str:
        threads.append(threading.get_ident())
        return "written"

    async def run() -> tuple[str, int]:
        return await api.ctx.write(work), threading.get_ident()

    answer, loop_thread = asyncio.run(run())
    assert answer == "written"
    assert len(threads) == 1
    assert threads[0] == loop_thread


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQLite's single write lock
def test_a_write_that_would_wait_runs_again_in_a_worker_thread_while_the_loop_goes_on(api: Api) -> None:
    """Another writer holds the lock for 0.4 s: the loop's attempt stops at once, a worker thread waits."""
    attempts: list[tuple[int, str]] = []

    def work() -> str:
        try:
            with api.ctx.db.write():
                attempts.append((threading.get_ident(), "written"))
        except WouldWait:
            attempts.append((threading.get_ident(), "would wait"))
            raise
        return "written"

    database = api.ctx.db.engine.url.database
    assert database is not None

    async def run() -> tuple[str, int, float]:
        gaps: list[float] = []
        ticking = asyncio.create_task(tick(gaps))
        answer = await api.ctx.write(work)
        ticking.cancel()
        return answer, threading.get_ident(), max(gaps)

    with lock_held_elsewhere(Path(database), seconds=0.4):
        answer, loop_thread, longest_gap = asyncio.run(run())
    assert answer == "written"
    assert attempts[0] == (loop_thread, "would wait")
    assert [outcome for _, outcome in attempts] == ["would wait", "written"]
    assert attempts[1][0] != loop_thread
    assert longest_gap < 0.2, f"the loop stalled {longest_gap:.2f} s"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the write turn is SQLite's
def test_a_write_waits_for_the_write_turn_on_the_loop_without_blocking_it(api: Api) -> None:
    """Another writer of this worker (a batch, the sweeper, a checkpoint) has the turn for 0.3 s: the write
    pauses on the loop, which goes on, and then runs there, once."""
    threads: list[int] = []

    def work() -> str:
        threads.append(threading.get_ident())
        with api.ctx.db.write():
            pass
        return "written"

    holding, done = threading.Event(), threading.Event()

    def other_writer() -> None:
        with api.ctx.db.write():
            holding.set()
            done.wait(timeout=0.3)

    async def run() -> tuple[str, int, float, float]:
        gaps: list[float] = []
        ticking = asyncio.create_task(tick(gaps))
        started = time.monotonic()
        answer = await api.ctx.write(work)
        took = time.monotonic() - started
        ticking.cancel()
        return answer, threading.get_ident(), took, max(gaps)

    thread = threading.Thread(target=other_writer)
    thread.start()
    try:
        assert holding.wait(timeout=10)
        answer, loop_thread, took, longest_gap = asyncio.run(run())
    finally:
        done.set()
        thread.join(timeout=30)
    assert answer == "written"
    assert threads == [loop_thread], "run once, on the loop, after the other writer"
    assert took >= 0.2, "it waited for the turn"
    assert longest_gap < 0.2, f"the loop stalled {longest_gap:.2f} s"


def test_a_served_logout_that_waits_for_the_lock_leaves_the_server_answering(tmp_path: Path) -> None:
    """A real ``sessionflow serve``: while another process's connection holds SQLite's write lock, a logout
    waits for it in a worker thread, and the same worker goes on answering other requests meanwhile."""
    with running_server(tmp_path) as server:
        login = httpx.post(f"{server.url}/api/auth/login", json={"username": "alice", "password": PASSWORD}, timeout=10)
        assert login.status_code == 200, login.text
        tokens = login.json()
        held = HeldLock(tmp_path / "served.db")

        async def run() -> tuple[httpx.Response, list[float]]:
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                logout = asyncio.create_task(
                    http.post(
                        f"/api/session/{tokens['session_id']}/events/logout",
                        headers={"Authorization": f"Bearer {tokens['access_token']}"},
                    )
                )
                took = []
                for _ in range(5):  # about a second, while the logout waits
                    started = time.monotonic()
                    health = await http.get("/api/health")
                    assert health.status_code == 200
                    took.append(time.monotonic() - started)
                    await asyncio.sleep(0.2)
                assert not logout.done(), "the logout waited for the lock"
                held.release()
                return await logout, took

        try:
            logout, took = asyncio.run(run())
        finally:
            held.close()
        assert logout.status_code == 200, logout.text
        assert logout.json()["to_state"] == "closed"
        assert max(took) < 0.5, f"a health check took {max(took):.2f} s while the logout waited"


SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104  # the untyped messages that may come before the startup one


class AnswerCounter(Proxy):
    """Counts the times clients of the proxied PostgreSQL ask the server to answer now, and then wait for it:
    each ``Sync``, ``Flush`` or simple ``Query`` message they send (protocol 3.0), except a ``Flush`` right
    after a ``Sync``, which asks for nothing more (psycopg leaves a pipeline with both). The connections must
    not use TLS (``sslmode=disable``), so that their messages can be read."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.asks = 0
        self._pending: dict[object, bytearray] = {}
        self._started: set[object] = set()
        self._synced: set[object] = set()  # pairs whose last message was a Sync
        super().__init__(upstream)

    def seen(self, pair: tuple[socket.socket, socket.socket], data: bytes, *, from_client: bool) -> None:
        if not from_client:
            return
        buffer = self._pending.setdefault(pair, bytearray())  # each pair is seen by its own thread only
        buffer += data
        while True:
            if pair not in self._started:  # untyped: SSLRequest, GSSENCRequest, then the startup message
                if len(buffer) < 8:
                    return
                length, code = struct.unpack("!ii", buffer[:8])
                if len(buffer) < length:
                    return
                if code not in (SSL_REQUEST, GSSENC_REQUEST):
                    self._started.add(pair)
                del buffer[:length]
                continue
            if len(buffer) < 5:
                return
            kind, length = buffer[0:1], struct.unpack("!i", buffer[1:5])[0]
            if len(buffer) < 1 + length:
                return
            if kind in (b"S", b"Q") or (kind == b"H" and pair not in self._synced):
                self.asks += 1
            if kind == b"S":
                self._synced.add(pair)
            else:
                self._synced.discard(pair)
            del buffer[: 1 + length]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # psycopg's pipeline, the pool's checkout
def test_a_logout_on_postgresql_waits_for_the_database_three_times(make_api: Callable[..., Api], db_url: str) -> None:
    """One transaction in pipeline mode: BEGIN with the session row's locking read, which the token is checked
    against and the logout starts from; the compare-and-set; and the history row, the credentials' retirement,
    the NOTIFY and the COMMIT together. The pooled connection is checked without a round trip
    (persistence/liveness.py). It was eleven: a pre-ping for each of two connections, every statement on its
    own, and the authentication's own read of the row."""
    url = make_url(db_url)
    counter = AnswerCounter((url.host or "127.0.0.1", url.port or 5432))
    try:
        through = url.set(host="127.0.0.1", port=counter.port).update_query_dict({"sslmode": "disable"})
        api = make_api(settings=settings_for(through.render_as_string(hide_password=False)))
        alice = api.session_for(api.alice)
        before = counter.asks
        response = api.client.post(
            f"/api/session/{alice['session_id']}/events/logout", headers=bearer(alice["access_token"])
        )
        assert response.status_code == 200, response.text
        assert response.json()["to_state"] == "closed"
        assert counter.asks - before == 3
    finally:
        counter.close()
