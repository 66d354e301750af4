"""The client against a real server: log in, connect, follow the session, refresh, log out, and stop on refusals.

One server for the module, with half-second heartbeats and one allowed
browser origin. Misbehaving clients are the named doubles in
:mod:`.doubles`; everything else is the reference client as shipped.
"""

from __future__ import annotations

import pytest

from sessionflow.client import Client, ClientError, ClientState, SessionTransition, Transition
from sessionflow.lifecycle import ManualClock
from sessionflow.lifecycle.protocol import ClientAction

from .conftest import (
    PASSWORD,
    Server,
    Sleeps,
    Trace,
    client_transitions,
    moved,
    moves,
    run,
    server_fixture,
    session_transitions,
    until,
)
from .doubles import MalformedClient, OversizedClient, SilentClient

pytestmark = pytest.mark.slow

server = server_fixture(
    SESSIONFLOW_WS_HEARTBEAT_INTERVAL="0.5",
    SESSIONFLOW_ALLOWED_ORIGINS="https://app.example",
)

HAPPY_PATH = [
    ("login", "logged_out", "logging_in"),
    ("logged_in", "logging_in", "active"),
    ("connect", "active", "connecting"),
    ("welcome", "connecting", "connected"),
]


def test_login_then_connect_reaches_connected_and_the_application_sees_every_transition(server: Server) -> None:
    """login -> active -> connecting -> connected; the async iterator and the callback see the same moves in order."""

    async def scenario() -> None:
        called: list[Transition] = []
        async with Client(server.url, on_transition=called.append) as client:
            stream = client.transitions()
            await client.login("alice", PASSWORD)
            assert client.state is ClientState.ACTIVE
            assert client.session_state == "session_active"
            await client.connect(timeout=10)
            assert client.session_state == "ws_connected"
            await client.close()
            streamed = [t async for t in stream]  # ends once the client stopped
        assert moves(client)[:4] == HAPPY_PATH
        assert moves(client)[-1] == ("stop", "connected", "stopped")
        assert streamed == called == client.history
        assert client.stopped is not None
        assert client.stopped.event == "stop"

    run(scenario())


def test_replay_history_asks_for_the_whole_history_on_the_first_connect(server: Server) -> None:
    """With replay_history the first welcome says recovered and the session's transitions 1.. arrive as replayed."""

    async def scenario() -> None:
        async with Client(server.url, replay_history=True) as client:
            await client.login("alice", PASSWORD)
            await client.connect(timeout=10)
            await until(lambda: client.caught_up, "the replay")
            assert client.last_seq == client.announced_seq == 3
            replayed = session_transitions(client)
            assert [(t.seq, t.event, t.replayed) for t in replayed] == [
                (1, "authenticate", True),
                (2, "activate", True),
                (3, "connect", True),
            ]
            assert client_transitions(client, "welcome")[0].reason == "recovered=true"

    run(scenario())


def test_refresh_while_connected_rotates_tokens_and_reauthenticates_the_connection(server: Server) -> None:
    """refresh(): tokens rotate (the session records refresh), then reauth keeps the same connection alive."""

    async def scenario() -> None:
        trace = Trace()
        async with Client(server.url, trace=trace) as client:
            await client.login("alice", PASSWORD)
            await client.connect(timeout=10)
            old = client.access_token
            await client.refresh()
            await until(moved(client, "reauthenticated"), "reauthenticated")
            await until(
                lambda: any(t.event == "refresh" for t in session_transitions(client)), "the refresh transition"
            )
            assert client.access_token != old
            assert moves(client)[4:] == [
                ("refreshed", "connected", "connected"),
                ("reauthenticated", "connected", "connected"),
            ]
            assert trace.texts("open") == ["GET /api/ws?ticket=…"]  # one connection throughout
            refreshed = [t for t in session_transitions(client) if t.event == "refresh"]
            assert (refreshed[0].from_state, refreshed[0].to_state, refreshed[0].actor) == (
                "ws_connected",
                "ws_connected",
                "client",
            )

    run(scenario())


def test_the_access_token_is_refreshed_before_it_expires(server: Server) -> None:
    """At refresh_at of the token's life the client refreshes on its own and reauthenticates the open connection."""

    async def scenario() -> None:
        async with Client(server.url, refresh_at=0.001) as client:  # 15 min tokens: due after about a second
            await client.login("alice", PASSWORD)
            await client.connect(timeout=10)
            await until(moved(client, "reauthenticated"), "the refresh and reauth", timeout=15)
            assert ("refreshed", "connected", "connected") in moves(client)

    run(scenario())


def test_logout_ends_the_session_and_stops_the_client_on_4410(server: Server) -> None:
    """logout(): the server sends the logout transition, closes with 4410, and the client stops."""

    async def scenario() -> None:
        async with Client(server.url) as client:
            await client.login("alice", PASSWORD)
            await client.connect(timeout=10)
            stopped = await client.logout()
            assert (stopped.event, stopped.reason, stopped.close_code) == ("end", "logged out", 4410)
            assert moves(client)[-2:] == [("logout", "connected", "logging_out"), ("end", "logging_out", "stopped")]
            assert [t.event for t in session_transitions(client)][-1] == "logout"
            with pytest.raises(ClientError):
                await client.connect()

    run(scenario())


def test_resume_after_a_drop_replays_the_missed_transitions(server: Server) -> None:
    """No pongs: the server drops the connection (4504); the client backs off, reconnects with last_seq, recovers."""

    async def scenario() -> None:
        sleeps = Sleeps()
        async with SilentClient(server.url, sleep=sleeps, clock=ManualClock()) as client:
            await client.login("alice", PASSWORD)
            await client.connect(timeout=10)
            seen = client.last_seq
            await until(lambda: len(client_transitions(client, "welcome")) == 2, "the reconnect", timeout=20)
            await until(lambda: any(t.event == "connect" and t.replayed for t in session_transitions(client)), "replay")
            drop = client_transitions(client, "drop")[0]
            assert (drop.source, drop.code) == ("connected", 4504)
            assert drop.delay is not None
            assert 0 <= drop.delay.seconds <= 0.5
            assert sleeps.delays[0] == pytest.approx(drop.delay.seconds, abs=1e-6)  # the machine's backoff timer
            assert client_transitions(client, "welcome")[1].reason == "recovered=true"
            replayed = [t for t in session_transitions(client) if t.replayed]
            assert seen is not None
            assert [(t.seq, t.event, t.from_state, t.to_state) for t in replayed] == [
                (seen + 1, "drop", "ws_connected", "ws_disconnected"),
                (seen + 2, "connect", "ws_disconnected", "ws_connected"),
            ]

    run(scenario())


@pytest.mark.parametrize(
    ("case", "code", "action"),
    [
        ("revoked by an admin", 4403, ClientAction.LOG_IN),
        ("logged out elsewhere", 4410, ClientAction.LOG_IN),
        ("origin not allowed", 1008, ClientAction.STOP),
        ("malformed message", 4400, ClientAction.STOP),
        ("message too big", 1009, ClientAction.STOP),
    ],
)
def test_terminal_close_codes_stop_the_client_and_report_the_code(
    server: Server, case: str, code: int, action: ClientAction
) -> None:
    """A close code whose action is stop or log in stops the client for good; stopped names the code and action."""

    async def scenario() -> None:
        sleeps = Sleeps()
        kinds: dict[str, type[Client]] = {"malformed message": MalformedClient, "message too big": OversizedClient}
        origin = "https://evil.example" if case == "origin not allowed" else None
        async with kinds.get(case, Client)(server.url, origin=origin, sleep=sleeps) as client:
            await client.login("alice", PASSWORD)
            if case == "origin not allowed":
                with pytest.raises(ClientError):
                    await client.connect(timeout=10)
            else:
                await client.connect(timeout=10)
                assert client.session_id is not None
                assert client.access_token is not None
                if case == "revoked by an admin":
                    await server.admin_revoke(client.session_id)
                elif case == "logged out elsewhere":
                    await server.logout_with(client.access_token)
            stopped = await client.wait_stopped(timeout=15)
            assert (stopped.event, stopped.close_code, stopped.action) == ("end", code, action)
            assert moves(client)[-1][0::2] == ("end", "stopped")
            assert sleeps.delays == []  # no reconnect was even tried
            if code in (4403, 4410):
                last = session_transitions(client)[-1]
                assert isinstance(last, SessionTransition)
                assert last.to_state == ("revoked" if code == 4403 else "closed")

    run(scenario())
