"""Codes after which reconnecting helps: 4429 waits retry_after, 4408 fetches a new ticket.

This server allows one WebSocket per address and issues tickets that expire
after a millisecond, so a ticket is always stale by the time it is used.
Bearer clients (the handshake carries the access token) are not affected by
the ticket lifetime.
"""

from __future__ import annotations

import pytest

from sessionflow.client import Client
from sessionflow.lifecycle import ManualClock

from .conftest import PASSWORD, Server, Sleeps, Trace, client_transitions, run, server_fixture, until

pytestmark = pytest.mark.slow

server = server_fixture(SESSIONFLOW_WS_MAX_CONNECTIONS_PER_ADDRESS="1", SESSIONFLOW_WS_TICKET_TTL="0.001")


def test_4429_waits_retry_after_then_reconnects(server: Server) -> None:
    """Over the per-address cap: the server says retry_after=5; the client's wait is exactly that, then it connects."""

    async def scenario() -> None:
        async with Client(server.url, auth="bearer") as holder:
            await holder.login("alice", PASSWORD)
            await holder.connect(timeout=10)

            async def free_the_slot(seconds: float) -> None:
                if holder.state.value != "stopped":
                    await holder.close()

            sleeps = Sleeps(then=free_the_slot)
            async with Client(server.url, auth="bearer", sleep=sleeps, clock=ManualClock()) as client:
                await client.login("alice", PASSWORD)
                await client.connect(timeout=15)
                throttle = client_transitions(client, "throttle")[0]
                assert (throttle.source, throttle.dest, throttle.code) == ("connecting", "reconnecting", 4429)
                assert throttle.delay is not None
                assert throttle.delay.retry_after == 5
                assert throttle.delay.seconds == 5  # max(retry_after, jitter up to 0.5 s)
                assert sleeps.delays[0] == 5  # the machine's backoff timer, on the injected clock

    run(scenario())


def test_4408_fetches_a_new_ticket_for_every_attempt(server: Server) -> None:
    """An expired ticket closes with 4408; the client reconnects with backoff and a fresh ticket each time."""

    async def scenario() -> None:
        sleeps = Sleeps()
        trace = Trace()
        async with Client(server.url, sleep=sleeps, trace=trace) as client:
            await client.login("alice", PASSWORD)
            with pytest.raises(TimeoutError):
                await client.connect(timeout=0.5)  # never welcomed, every ticket is stale; the client keeps trying
            await until(lambda: len(client_transitions(client, "drop")) >= 2, "two refused attempts")
            await client.close()
        drops = client_transitions(client, "drop")[:2]
        assert [(d.source, d.code) for d in drops] == [("connecting", 4408), ("connecting", 4408)]
        assert all(d.reason.startswith("new_ticket") for d in drops)
        assert trace.texts("request").count("POST /api/session/{id}/ws-ticket") >= 2
        assert [round(d.delay.ceiling, 3) for d in drops if d.delay] == [0.5, 1.0]  # the backoff grows

    run(scenario())
