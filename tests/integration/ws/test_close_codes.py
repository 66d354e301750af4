"""Every close code of docs/protocol.md a server can send, provoked over a real socket and asserted exactly.

1000 is not among them: api/ws.py never closes with 1000 itself. 1000 is the
client's normal close (say, after logging out itself), recorded as a clean
close (the happy path in test_protocol.py); a logout the server carries out
closes every live connection with 4410.

4500 (an unexpected error in the handler) has no honest trigger from outside: a
test would have to plant a bug. Its mapping is covered by
tests/unit/api/test_ws_mapping.py. 4503 is provoked for real below by holding
the SQLite write lock past the busy timeout.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from sessionflow.lifecycle import Actor
from sessionflow.persistence import TransitionService
from tests.integration.ws.conftest import (
    ORIGIN,
    Server,
    Servers,
    abort,
    answer_pings,
    expect_close,
    recv_json,
    recv_type,
    wait_until,
)

pytestmark = pytest.mark.slow

HEARTBEAT = 0.3  # seconds: a silent client is closed after three intervals


@pytest.fixture(scope="module")
def servers(make_server: Servers) -> dict[str, Server]:
    """Servers with the settings these codes need (the default one is the shared ``server`` fixture)."""
    return make_server.many(
        {
            # One connection per session, three per address, tickets that last one second. The sweeper runs
            # at startup only: while the 4503 test holds the write lock, nothing else waits on it.
            # The 1001 test stops and restarts this server.
            "tight": {
                "WS_MAX_CONNECTIONS_PER_SESSION": "1",
                "WS_MAX_CONNECTIONS_PER_ADDRESS": "3",
                "WS_TICKET_TTL": "1",
                "SWEEP_INTERVAL": "600",
            },
            "idle": {"SESSION_IDLE_TIMEOUT": "1"},
            "heartbeat": {"WS_HEARTBEAT_INTERVAL": str(HEARTBEAT), "SESSION_RECONNECT_GRACE": "0.5"},
            "alive": {"WS_HEARTBEAT_INTERVAL": str(HEARTBEAT), "SESSION_IDLE_TIMEOUT": "1.5", "SWEEP_INTERVAL": "0.2"},
        }
    )


# -- 1001 --------------------------------------------------------------------------------------


def test_1001_when_the_server_shuts_down(servers: dict[str, Server]) -> None:
    """SIGTERM: the client sees 1001 (not uvicorn's 1012), recorded as a clean close that survives a restart."""
    server = servers["tight"]
    login = server.login()
    with server.connect(login) as ws:
        connection_id = recv_type(ws, "welcome")["connection_id"]
        server.process.terminate()
        expect_close(ws, 1001, reason="server going away")
    assert server.stop() in (0, -15)
    assert "application shutdown complete" in server.output()

    row = server.connection(connection_id)
    assert row["state"] == "closed"
    assert row["close_code"] == 1001
    assert server.state(login.session_id) == "session_active"  # a clean close of the last connection: disconnect

    server.start()  # the same database, read through the API after the restart
    view = server.session(login.session_id, login.headers)
    assert view["state"] == "session_active"
    assert view["connections"] == []
    assert [h["event"] for h in server.history(login.session_id, login.headers)][-2:] == ["connect", "disconnect"]


# -- 1008 --------------------------------------------------------------------------------------


def test_1008_when_the_origin_is_not_allowed(server: Server) -> None:
    login = server.login()
    with server.connect(login, origin="https://evil.example") as ws:
        closed = expect_close(ws, 1008, reason="origin not allowed")
    assert closed.messages == []
    assert server.state(login.session_id) == "session_active"  # nothing was opened
    assert server.session(login.session_id, login.headers)["connections"] == []


def test_an_allowed_origin_and_no_origin_are_both_accepted(server: Server) -> None:
    login = server.login()
    with server.connect(login, origin=ORIGIN) as ws:
        assert recv_json(ws)["type"] == "welcome"
    with server.connect(login) as ws:  # non-browser clients send no Origin
        assert recv_json(ws)["type"] == "welcome"


# -- 1009 and 4400 ---------------------------------------------------------------------------


def test_1009_for_text_over_16_kib(server: Server) -> None:
    login = server.login()
    with server.connect(login) as ws:
        connection_id = recv_type(ws, "welcome")["connection_id"]
        ws.send(json.dumps({"type": "pong", "padding": "x" * (16 * 1024)}))
        expect_close(ws, 1009, reason="message too big")
    row = server.wait_connection(connection_id, "closed")
    assert row["close_code"] == 1009


def test_16_kib_exactly_is_not_too_big(server: Server) -> None:
    login = server.login()
    with server.connect(login) as ws:
        recv_type(ws, "welcome")
        message = json.dumps({"type": "pong", "padding": ""})
        ws.send(message[:-2] + "x" * (16 * 1024 - len(message)) + '"}')
        with pytest.raises(TimeoutError):
            recv_json(ws, timeout=0.3)  # still open: a pong is answered with silence


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{not json", "malformed message: expected JSON with type pong or reauth"),
        ('{"type": "subscribe"}', "malformed message: expected JSON with type pong or reauth"),
        ('["pong"]', "malformed message: expected JSON with type pong or reauth"),
        ('{"type": "reauth"}', "malformed message: expected JSON with type pong or reauth"),
        ('{"type": "reauth", "access_token": 42}', "malformed message: expected JSON with type pong or reauth"),
        (b'{"type": "pong"}', "binary frames are not part of the protocol"),
    ],
    ids=["not-json", "unknown-type", "not-an-object", "reauth-without-token", "reauth-token-not-a-string", "binary"],
)
def test_4400_for_a_malformed_message(server: Server, frame: str | bytes, reason: str) -> None:
    login = server.login()
    with server.connect(login) as ws:
        connection_id = recv_type(ws, "welcome")["connection_id"]
        ws.send(frame)
        expect_close(ws, 4400, reason=reason)
    assert server.wait_connection(connection_id, "closed")["close_code"] == 4400
    server.wait_state(login.session_id, "session_active")


# -- 4401 ---------------------------------------------------------------------------------------


def test_4401_for_a_forged_bearer_token(server: Server) -> None:
    login = server.login()
    header, payload, signature = login.access_token.split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    with server.connect(headers={"Authorization": f"Bearer {forged}"}) as ws:
        closed = expect_close(ws, 4401)
    assert closed.reason
    assert forged not in closed.reason


def test_4401_for_a_used_ticket(server: Server) -> None:
    login = server.login()
    ticket = server.ticket(login)
    with server.connect(ticket=ticket) as ws:
        recv_type(ws, "welcome")
    with server.connect(ticket=ticket) as ws:
        expect_close(ws, 4401, reason="unknown or already used ticket")


@pytest.mark.parametrize(
    ("ticket", "reason"),
    [
        ("sft_" + "A" * 43, "unknown or already used ticket"),
        ("not-a-ticket", "that is not a ticket"),
        ("sft_" + "A" * 200, "that is not a ticket"),
    ],
    ids=["unknown", "garbage", "oversize"],
)
def test_4401_for_a_ticket_the_server_never_issued(server: Server, ticket: str, reason: str) -> None:
    with server.connect(ticket=ticket) as ws:
        expect_close(ws, 4401, reason=reason)


def test_4401_for_a_ticket_obtained_before_a_refresh(server: Server) -> None:
    """Issue 11: a refresh supersedes the access token, and the tickets obtained with it."""
    login = server.login()
    ticket = server.ticket(login)
    server.refresh(login)
    with server.connect(ticket=ticket) as ws:
        closed = expect_close(ws, 4401)
    assert "superseded" in closed.reason
    with server.connect(login) as ws:  # a ticket from the new token opens
        assert recv_json(ws)["type"] == "welcome"


def test_4401_without_any_credential(server: Server) -> None:
    with server.connect() as ws:
        closed = expect_close(ws, 4401)
    assert closed.reason


# -- 4403, 4409, 4410: the session's state decides -------------------------------------------------


def test_4403_when_an_admin_revokes_the_session_while_connected(server: Server) -> None:
    login = server.login()
    with server.connect(login) as ws:
        connection_id = recv_type(ws, "welcome")["connection_id"]
        revoked = server.revoke(login.session_id)
        assert revoked.status_code == 200, revoked.text
        closed = expect_close(ws, 4403, reason="the session was revoked; log in again")
    assert [(m["type"], m["event"], m["to_state"], m["actor"]) for m in closed.messages] == [
        ("transition", "revoke", "revoked", "admin")
    ]
    row = server.wait_connection(connection_id, "closed")
    assert row["close_code"] == 4403
    assert server.state(login.session_id) == "revoked"


def test_a_revocation_made_outside_the_server_reaches_its_socket_within_the_resync_interval(
    server: Server,
) -> None:
    """``sessionflow users disable`` or a sweeper in another process writes the store directly; nobody notifies
    this server, yet its socket closes within ``SESSIONFLOW_WS_RESYNC_INTERVAL`` (5 s by default)."""
    login = server.login()
    assert server.db is not None
    with server.connect(login) as ws:
        recv_type(ws, "welcome")
        TransitionService(server.db).fire("session", login.session_id, "revoke", actor=Actor.ADMIN)
        closed = expect_close(ws, 4403, timeout=8, reason="the session was revoked; log in again")
    assert [(m["type"], m["event"]) for m in closed.messages] == [("transition", "revoke")]


def test_4403_when_refresh_token_reuse_revokes_the_session(server: Server) -> None:
    """A token two rotations old (never graced, however soon) is theft: the session is revoked."""
    login = server.login()
    stolen = login.refresh_token
    with server.connect(login) as ws:
        recv_type(ws, "welcome")
        server.refresh(login)
        server.refresh(login)
        assert [recv_type(ws, "transition")["event"] for _ in range(2)] == ["refresh", "refresh"]
        reused = server.http.post("/api/auth/refresh", json={"refresh_token": stolen})
        assert reused.status_code == 401
        assert reused.json()["code"] == "refresh_token_reused"
        closed = expect_close(ws, 4403, reason="the session was revoked; log in again")
    assert [m["event"] for m in closed.messages] == ["revoke"]


def test_4403_for_a_ticket_of_a_revoked_session(server: Server) -> None:
    login = server.login()
    ticket = server.ticket(login)
    revoked = server.revoke(login.session_id)
    assert revoked.status_code == 200, revoked.text
    with server.connect(ticket=ticket) as ws:
        expect_close(ws, 4403)


def test_4409_for_an_anonymous_token(server: Server) -> None:
    created = server.http.post("/api/session/create")
    assert created.status_code == 201
    body = created.json()
    with server.connect(headers={"Authorization": f"Bearer {body['anonymous_token']}"}) as ws:
        closed = expect_close(ws, 4409)
    assert closed.reason
    assert server.state(body["session_id"]) == "anonymous"


def test_4410_on_logout_while_connected(server: Server) -> None:
    login = server.login()
    with server.connect(login) as first, server.connect(login) as second:
        one = recv_type(first, "welcome")["connection_id"]
        two = recv_type(second, "welcome")["connection_id"]
        response = server.logout(login)
        assert response.status_code == 200, response.text
        for ws in (first, second):  # every live connection of the session
            closed = expect_close(ws, 4410, reason="the session is closed; log in again")
            assert [(m["event"], m["to_state"]) for m in closed.messages] == [("logout", "closed")]
    for connection_id in (one, two):
        assert server.wait_connection(connection_id, "closed")["close_code"] == 4410
    assert server.state(login.session_id) == "closed"


def test_4410_for_the_bearer_of_a_logged_out_session(server: Server) -> None:
    login = server.login()
    logged_out = server.logout(login)
    assert logged_out.status_code == 200, logged_out.text
    with server.connect(headers=login.headers) as ws:
        expect_close(ws, 4410)


# -- 4408 and 4429 --------------------------------------------------------------------------------


def test_4408_for_a_ticket_that_expired_before_use(servers: dict[str, Server]) -> None:
    server = servers["tight"]
    login = server.login()
    ticket = server.ticket(login)
    time.sleep(1.2)  # SESSIONFLOW_WS_TICKET_TTL=1
    with server.connect(ticket=ticket) as ws:
        expect_close(ws, 4408, reason="the ticket expired before use; get a new one")
    assert server.state(login.session_id) == "session_active"
    with server.connect(login) as ws:  # a new ticket works
        assert recv_json(ws)["type"] == "welcome"


def test_4429_past_the_per_session_cap(servers: dict[str, Server]) -> None:
    server = servers["tight"]
    login = server.login()
    with server.connect(login) as first:
        recv_type(first, "welcome")
        with server.connect(login) as second:
            closed = expect_close(second, 4429, reason="too many connections for this session; retry_after=5")
        assert closed.messages == [
            {"type": "error", "code": 4429, "reason": "too many connections for this session", "retry_after": 5}
        ]
        assert len(server.session(login.session_id, login.headers)["connections"]) == 1
        first.close(1000)
    server.wait_state(login.session_id, "session_active")
    with server.connect(login) as again:  # the slot is free again
        assert recv_json(again)["type"] == "welcome"


def test_4429_past_the_per_address_cap(servers: dict[str, Server]) -> None:
    """Counted in the store among open connections: the fourth from this address is refused, and nothing stored."""
    server = servers["tight"]
    logins = [server.login() for _ in range(4)]
    tickets = [server.ticket(login) for login in logins]
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(server.connect(ticket=ticket)) for ticket in tickets[:3]]
        for ws in sockets:
            assert recv_json(ws)["type"] == "welcome"
        with server.connect(ticket=tickets[3]) as fourth:
            closed = expect_close(fourth, 4429, reason="too many connections from this address; retry_after=5")
        assert closed.messages == [
            {"type": "error", "code": 4429, "reason": "too many connections from this address", "retry_after": 5}
        ]
    for ws in sockets:
        assert ws.close_code == 1000
    # The count goes down as connections end: a new handshake is let through again.
    login = server.login()

    def accepted() -> bool:
        with server.connect(login) as ws:
            try:
                return bool(recv_json(ws)["type"] == "welcome")
            except ConnectionClosed:
                return False

    wait_until(accepted, interval=0.05, what="a connection accepted after the others closed")


# -- 4419 -----------------------------------------------------------------------------------------


def test_4419_when_the_session_expires_from_inactivity_while_connected(servers: dict[str, Server]) -> None:
    server = servers["idle"]
    login = server.login()
    with server.connect(login) as ws:
        connection_id = recv_type(ws, "welcome")["connection_id"]
        closed = expect_close(ws, 4419, timeout=5, reason="the session expired from inactivity; refresh it")
    assert [(m["event"], m["to_state"], m["actor"]) for m in closed.messages] == [
        ("expire", "session_expired", "timer")
    ]
    assert server.wait_connection(connection_id, "closed")["close_code"] == 4419
    assert server.state(login.session_id) == "session_expired"
    server.refresh(login)  # refreshable, as the code says
    assert server.state(login.session_id) == "session_active"


# -- 4504 -----------------------------------------------------------------------------------------


def test_4504_when_the_client_never_answers_pings(servers: dict[str, Server]) -> None:
    server = servers["heartbeat"]
    login = server.login()
    with server.connect(login) as ws:
        welcome = recv_type(ws, "welcome")
        opened = time.monotonic()
        assert welcome["heartbeat_interval"] == HEARTBEAT
        closed = expect_close(ws, 4504, timeout=3, reason="heartbeat timeout")
    elapsed = closed.at - opened
    # Not before three missed intervals; the upper slack absorbs scheduling on a shared, loaded 2-core machine.
    assert 3 * HEARTBEAT - 0.1 <= elapsed <= 3 * HEARTBEAT + 1.5, elapsed
    pings = [m for m in closed.messages if m["type"] == "ping"]
    assert 2 <= len(pings) <= 3
    # The connection row's heartbeat timer also runs three intervals (for connections whose worker died). When a
    # loaded machine wakes the handler late, the sweeper fires it first, and the session's own drop reaches the
    # client just before the close. Either way: 4504, a dropped row with that code, the session dropped.
    others = [(m["type"], m.get("event"), m.get("to_state")) for m in closed.messages if m["type"] != "ping"]
    assert others in ([], [("transition", "drop", "ws_disconnected")]), closed.messages
    row = server.wait_connection(welcome["connection_id"], "dropped")
    assert row["close_code"] == 4504
    server.wait_state(login.session_id, "ws_disconnected")
    server.wait_state(login.session_id, "session_active", timeout=3)  # SESSIONFLOW_SESSION_RECONNECT_GRACE=0.5
    assert server.events(login.session_id)[-3:] == ["connect", "drop", "grace_elapsed"]


def test_a_client_that_answers_pings_stays_connected(servers: dict[str, Server]) -> None:
    server = servers["heartbeat"]
    login = server.login()
    with server.connect(login) as ws:
        welcome = recv_type(ws, "welcome")
        pings = answer_pings(ws, 4 * HEARTBEAT)  # past the 3-interval deadline
        assert all(isinstance(ping["ts"], float) for ping in pings)
        assert len(pings) >= 3
        assert server.connection(welcome["connection_id"])["state"] == "open"
        assert server.state(login.session_id) == "ws_connected"


def test_answered_heartbeats_keep_the_session_from_idling_out(servers: dict[str, Server]) -> None:
    """A connected client that answers every ping is active: twice the idle timeout passes, nothing expires."""
    server = servers["alive"]
    login = server.login()
    with server.connect(login) as ws:
        welcome = recv_type(ws, "welcome")
        answer_pings(ws, 3.0)  # SESSIONFLOW_SESSION_IDLE_TIMEOUT=1.5, the sweeper every 0.2 s
        assert server.state(login.session_id) == "ws_connected"
        assert server.connection(welcome["connection_id"])["state"] == "open"


def test_an_aborted_connection_is_dropped(servers: dict[str, Server]) -> None:
    server = servers["heartbeat"]
    login = server.login()
    with server.connect(login) as ws:
        connection_id = recv_type(ws, "welcome")["connection_id"]
        abort(ws)
    assert server.wait_connection(connection_id, "dropped")["close_code"] == 1005
    server.wait_state(login.session_id, "session_active", timeout=3)


# -- 4503 -----------------------------------------------------------------------------------------


def test_4503_when_the_store_stays_locked(servers: dict[str, Server]) -> None:
    """Hold SQLite's write lock past the server's 5 s busy timeout while it redeems a ticket."""
    server = servers["tight"]
    login = server.login()
    ticket = server.ticket(login)
    path = server.database_url.removeprefix("sqlite:///")
    lock = sqlite3.connect(path, isolation_level=None, timeout=1)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        with server.connect(ticket=ticket) as ws:
            closed = expect_close(ws, 4503, timeout=10, reason="store unavailable; reconnect with backoff")
        assert closed.messages == []
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    # The store is back: the same session connects (with a new ticket: the old one was never consumed, but
    # whether it was is not the client's business; 4503 means get going again with backoff).
    with server.connect(login) as ws:
        assert recv_json(ws)["type"] == "welcome"


def test_no_handshake_is_ever_rejected_with_an_http_status(server: Server) -> None:
    """Every refusal above is a close after accept; an HTTP 403 would surface as InvalidStatus."""
    try:
        with server.connect(origin="https://evil.example") as ws:
            expect_close(ws, 1008)
    except InvalidStatus as exc:  # the failure this guards against
        pytest.fail(f"handshake rejected with HTTP {exc.response.status_code}")
