"""Keeping a live connection's credential fresh: token_expiring -> refresh -> reauth, on the same connection.

Access tokens live 62 s here; the server warns 60 s before a connection's
credential ends, so the warning comes about 2 s after connecting.
"""

from __future__ import annotations

import pytest

from sessionflow.client import Client

from .conftest import (
    PASSWORD,
    Server,
    Trace,
    client_transitions,
    moved,
    moves,
    run,
    server_fixture,
    session_transitions,
    until,
)

pytestmark = pytest.mark.slow

server = server_fixture(SESSIONFLOW_ACCESS_TOKEN_TTL="62")


@pytest.mark.parametrize("auth", ["ticket", "bearer"])
def test_token_expiring_is_answered_with_a_refresh_and_reauth(server: Server, auth: str) -> None:
    """The warning makes the client refresh (its token is no fresher than the credential) and reauth; no reconnect."""

    async def scenario() -> None:
        trace = Trace()
        async with Client(server.url, auth=auth, trace=trace) as client:
            await client.login("alice", PASSWORD)
            await client.connect(timeout=10)
            await until(moved(client, "reauthenticated"), "reauthenticated", timeout=15)
            warning = client_transitions(client, "token_expiring")[0]
            assert warning.reason == "refresh, then reauth"
            assert moves(client)[4:7] == [
                ("token_expiring", "connected", "connected"),
                ("refreshed", "connected", "connected"),
                ("reauthenticated", "connected", "connected"),
            ]
            await until(
                lambda: any(t.event == "refresh" for t in session_transitions(client)), "the refresh transition"
            )
            assert len(trace.texts("open")) == 1  # the same connection throughout
            assert "reauth (fresh access token)" in trace.texts("message")
            assert client.state.value == "connected"

    run(scenario())
