"""4419: the session expired (idle) or the token did; the client refreshes, then reconnects, or stops if refused.

Sessions here expire after 1.5 s without a transition (the sweeper looks every
0.2 s), so a connected client gets ``expire`` and then 4419 within seconds.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from sessionflow.client import Client

from .conftest import (
    PASSWORD,
    Server,
    Sleeps,
    client_transitions,
    moves,
    run,
    server_fixture,
    session_transitions,
    until,
)

pytestmark = pytest.mark.slow

server = server_fixture(SESSIONFLOW_SESSION_IDLE_TIMEOUT="1.5", SESSIONFLOW_SWEEP_INTERVAL="0.2")


def test_4419_refreshes_then_reconnects_and_resumes(server: Server) -> None:
    """expire -> 4419 -> refreshing -> refreshed -> reconnecting -> retry -> connected, resuming after the expiry."""

    async def scenario() -> None:
        sleeps = Sleeps()
        async with Client(server.url, sleep=sleeps) as client:
            await client.login("alice", PASSWORD)
            await client.connect(timeout=10)
            await until(lambda: moves(client).count(("welcome", "connecting", "connected")) == 2, "the reconnect")
            await client.close()
        path = moves(client)
        start = path.index(("expire", "connected", "refreshing"))
        assert path[start : start + 4] == [
            ("expire", "connected", "refreshing"),
            ("refreshed", "refreshing", "reconnecting"),
            ("retry", "reconnecting", "connecting"),
            ("welcome", "connecting", "connected"),
        ]
        assert client_transitions(client, "expire")[0].code == 4419
        assert len(sleeps.delays) == 1  # the reconnect after the refresh went through the backoff timer
        server_side = [(t.event, t.replayed) for t in session_transitions(client)]
        assert ("expire", False) in server_side  # sent live, before the 4419 close
        assert server_side[server_side.index(("expire", False)) + 1 :][:2] == [("refresh", True), ("connect", True)]

    run(scenario())


class GatedTransport(httpx.AsyncBaseTransport):
    """Real HTTP, but requests to ``path`` wait until released: to act while the client is mid-refresh."""

    def __init__(self, path: str) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.path = path
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == self.path:
            self.arrived.set()
            await self.release.wait()
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_a_refused_refresh_after_4419_stops_the_client(server: Server) -> None:
    """If the session is revoked while the client refreshes after 4419, the refresh is refused and the client stops."""

    async def scenario() -> None:
        gate = GatedTransport("/api/auth/refresh")
        async with (
            httpx.AsyncClient(base_url=server.url, transport=gate) as http,
            Client(server.url, http=http) as client,
        ):
            await client.login("alice", PASSWORD)
            await client.connect(timeout=10)
            await asyncio.wait_for(gate.arrived.wait(), 15)
            assert client.session_id is not None
            await server.admin_revoke(client.session_id)
            gate.release.set()
            stopped = await client.wait_stopped(timeout=10)
        assert moves(client)[-2:] == [("expire", "connected", "refreshing"), ("end", "refreshing", "stopped")]
        assert (stopped.event, stopped.status) == ("end", 401)
        assert stopped.problem in {"session_revoked", "refresh_token_invalid"}

    run(scenario())
