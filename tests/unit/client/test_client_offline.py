"""The client without a server: the machine refuses out-of-order calls, and an unreachable login stops it."""

from __future__ import annotations

import asyncio
import socket

import pytest

from sessionflow.client import Client, ClientError, ClientState, ClientTransition


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


def test_connecting_before_login_is_refused_by_the_machine_with_the_allowed_events() -> None:
    async def scenario() -> None:
        async with Client(f"http://127.0.0.1:{closed_port()}") as client:
            with pytest.raises(ClientError) as refused:
                await client.connect()
            assert refused.value.refused is not None
            assert refused.value.refused.allowed_events == ("login", "stop")
            assert client.state is ClientState.LOGGED_OUT
            with pytest.raises(ClientError):
                await client.refresh()

    asyncio.run(scenario())


def test_an_unreachable_server_at_login_stops_the_client_and_says_why() -> None:
    async def scenario() -> None:
        async with Client(f"http://127.0.0.1:{closed_port()}") as client:
            with pytest.raises(ClientError) as failed:
                await client.login("alice", "secret")
            assert failed.value.stopped is not None
            assert failed.value.stopped.reason.startswith("server unreachable")
            assert [(t.event, t.dest) for t in client.history if isinstance(t, ClientTransition)] == [
                ("login", "logging_in"),
                ("end", "stopped"),
            ]
            assert [t async for t in client.transitions()] == []  # a stopped client's stream ends at once

    asyncio.run(scenario())


def test_close_before_anything_stops_cleanly() -> None:
    async def scenario() -> None:
        client = Client(f"http://127.0.0.1:{closed_port()}")
        stopped = await client.close()
        assert (stopped.event, client.state) == ("stop", ClientState.STOPPED)
        assert await client.close() is stopped  # idempotent

    asyncio.run(scenario())


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1])
def test_refresh_at_must_be_a_fraction_of_the_token_life(fraction: float) -> None:
    with pytest.raises(ValueError, match="refresh_at"):
        Client("http://127.0.0.1:1", refresh_at=fraction)
