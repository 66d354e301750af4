"""A server restart: 1001, backoff, resume with last_seq; after a signing-key change, 4401 and a stop.

Each test restarts its own server. The client's backoff sleep waits for the
restart to finish instead of a real delay, so the first attempt after the
drop meets the new server.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionflow.client import Client
from sessionflow.lifecycle.protocol import ClientAction

from .conftest import (
    PASSWORD,
    Server,
    Sleeps,
    client_transitions,
    moves,
    run,
    running_server,
    session_transitions,
    until,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with running_server(tmp_path) as running:
        yield running


def gated_sleeps() -> tuple[Sleeps, asyncio.Event]:
    back = asyncio.Event()

    async def until_the_server_is_back(seconds: float) -> None:
        await back.wait()

    return Sleeps(then=until_the_server_is_back), back


def test_a_restart_drops_with_1001_and_the_client_resumes_with_replay(server: Server) -> None:
    """1001 -> reconnecting (backoff up to 0.5 s) -> connected with recovered true; disconnect and connect replayed."""

    async def scenario() -> None:
        sleeps, back = gated_sleeps()
        async with Client(server.url, sleep=sleeps) as client:
            await client.login("alice", PASSWORD)
            await client.connect(timeout=10)
            await asyncio.to_thread(server.stop)
            await until(lambda: client.state.value == "reconnecting", "the drop")
            await asyncio.to_thread(server.start)
            back.set()
            await until(lambda: len(client_transitions(client, "welcome")) == 2, "the resume")
            await until(lambda: client.caught_up, "the replay")
        drop = client_transitions(client, "drop")[0]
        assert (drop.source, drop.code) == ("connected", 1001)
        assert drop.delay is not None
        assert drop.delay.ceiling == 0.5
        assert moves(client)[4:7] == [
            ("drop", "connected", "reconnecting"),
            ("retry", "reconnecting", "connecting"),
            ("welcome", "connecting", "connected"),
        ]
        assert client_transitions(client, "welcome")[1].reason == "recovered=true"
        replayed = [(t.event, t.from_state, t.to_state) for t in session_transitions(client) if t.replayed]
        assert replayed == [
            ("disconnect", "ws_connected", "session_active"),
            ("connect", "session_active", "ws_connected"),
        ]

    run(scenario())


def test_after_a_signing_key_change_the_client_stops_instead_of_retrying(server: Server) -> None:
    """Tokens signed with the old key are forged now: bearer gets 4401, ticket gets HTTP 401; both stop for good."""

    async def scenario() -> None:
        sleeps, back = gated_sleeps()
        async with (
            Client(server.url, auth="bearer", sleep=sleeps) as bearer,
            Client(server.url, sleep=sleeps) as ticket,
        ):
            for client in (bearer, ticket):
                await client.login("alice", PASSWORD)
                await client.connect(timeout=10)
            await asyncio.to_thread(server.stop)
            await asyncio.to_thread(server.start, SESSIONFLOW_JWT_SECRET=secrets.token_urlsafe(48))
            back.set()
            by_bearer = await bearer.wait_stopped(timeout=15)
            by_ticket = await ticket.wait_stopped(timeout=15)
        assert (by_bearer.event, by_bearer.close_code, by_bearer.action) == ("end", 4401, ClientAction.LOG_IN)
        assert (by_ticket.event, by_ticket.status, by_ticket.problem) == ("end", 401, "token_invalid")
        for client in (bearer, ticket):
            assert moves(client)[-3:] == [
                ("drop", "connected", "reconnecting"),
                ("retry", "reconnecting", "connecting"),
                ("end", "connecting", "stopped"),
            ]

    run(scenario())
