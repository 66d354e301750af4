"""The store refused for 10 s, then partitioned for 10 s, through a proxy the test owns (PostgreSQL).

During each outage every request that needs the store answers 503 with ``Retry-After``, a new
WebSocket closes 4503 and readiness answers 503, each within the documented bound (the pooled
connection's check, then a new connection: ``SESSIONFLOW_DATABASE_TIMEOUT`` plus the larger of it and
2 s, plus a second); liveness stays 200. After it the server recovers
without a restart, and a WebSocket that kept answering its pings all along is still open: it is
not closed 4504 because its pongs could not be written meanwhile.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import make_url
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from tests.integration.chaos.proxy import Proxy
from tests.integration.ws.conftest import Login, Server, Servers, expect_close, recv_type

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DATABASE_TIMEOUT = 1.0
BOUND = DATABASE_TIMEOUT + max(2.0, DATABASE_TIMEOUT) + 1.0  # docs/operations.md, "Bounded waiting"
OUTAGE = 10.0
HEARTBEAT = 1.0  # the heartbeat timer is three intervals: an outage of 10 s outlasts it three times over


@pytest.fixture(scope="module")
def proxy(postgres_url: str) -> Iterator[Proxy]:
    url = make_url(postgres_url)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def server(make_server: Servers, postgres_url: str, proxy: Proxy) -> Server:
    through_proxy = make_url(postgres_url).set(host="127.0.0.1", port=proxy.port)
    return make_server(
        "outage",
        database_url=through_proxy.render_as_string(hide_password=False),
        DATABASE_TIMEOUT=str(DATABASE_TIMEOUT),
        WS_HEARTBEAT_INTERVAL=str(HEARTBEAT),
        SWEEP_INTERVAL="0.2",
        WS_RESYNC_INTERVAL="1",
        POOL_SIZE="4",
    )


class Answering:
    """A WebSocket that answers every ping from a thread, and remembers how it ended."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.closed: tuple[int | None, str] | None = None
        self.unexpected: list[dict[str, object]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    message = json.loads(self.ws.recv(timeout=0.2))
                except TimeoutError:
                    continue
                if message["type"] == "ping":
                    self.ws.send(json.dumps({"type": "pong"}))
                else:
                    self.unexpected.append(message)
        except ConnectionClosed as exc:
            self.closed = (exc.rcvd.code if exc.rcvd else None, exc.rcvd.reason if exc.rcvd else "")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _timed(call: object) -> tuple[float, object]:
    started = time.monotonic()
    result = call()  # type: ignore[operator]
    return time.monotonic() - started, result


@pytest.mark.parametrize("outage", ["refuse", "partition"])
def test_an_outage_answers_503_within_the_bound_and_spares_healthy_websockets(
    server: Server, proxy: Proxy, outage: str
) -> None:
    login: Login = server.login()
    with server.connect(login) as ws:
        recv_type(ws, "welcome")
        answering = Answering(ws)
        try:
            _outage(server, proxy, outage, login, answering)
        finally:
            answering.stop()
    assert "Traceback" not in server.output()


def _outage(server: Server, proxy: Proxy, outage: str, login: Login, answering: Answering) -> None:
    slowest = 0.0
    try:
        getattr(proxy, outage)()
        until = time.monotonic() + OUTAGE
        rounds = 0
        while time.monotonic() < until:
            took, response = _timed(lambda: server.http.get(f"/api/session/{login.session_id}", headers=login.headers))
            assert response.status_code == 503, response.text  # type: ignore[attr-defined]
            assert response.headers["Retry-After"].isdigit()  # type: ignore[attr-defined]
            assert response.json()["code"] == "store_unavailable"  # type: ignore[attr-defined]
            took_ready, ready = _timed(lambda: server.http.get("/api/ready"))
            assert ready.status_code == 503  # type: ignore[attr-defined]
            took_health, health = _timed(lambda: server.http.get("/api/health"))
            assert health.status_code == 200  # type: ignore[attr-defined]
            assert took_health < 1.0
            slowest = max(slowest, took, took_ready)
            if rounds == 0:
                started = time.monotonic()
                with server.connect(headers=login.headers) as refused:
                    expect_close(refused, 4503, timeout=BOUND + 1)
                slowest = max(slowest, time.monotonic() - started)
            rounds += 1
        assert answering.closed is None, f"a healthy WebSocket was closed during the outage: {answering.closed}"
    finally:
        proxy.heal()
    print(f"{outage}: slowest answer during {OUTAGE:.0f} s of outage {slowest:.2f} s (bound {BOUND:.1f} s)")
    assert slowest <= BOUND

    deadline = time.monotonic() + 10
    while server.http.get(f"/api/session/{login.session_id}", headers=login.headers).status_code != 200:
        assert time.monotonic() < deadline, "the server did not recover within 10 s of the store's return"
        time.sleep(0.1)
    assert server.http.get("/api/ready").status_code == 200
    time.sleep(4 * HEARTBEAT)  # past the sweeper's grace and a heartbeat timer: the socket must still be open
    assert answering.closed is None, f"a healthy WebSocket was closed after the outage: {answering.closed}"
    assert answering.unexpected == []
