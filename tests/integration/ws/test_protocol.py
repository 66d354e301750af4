"""The WebSocket protocol over real sockets: the happy path, two tabs, reauthentication (docs/protocol.md)."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.integration.ws.conftest import Server, Servers, abort, expect_close, recv_json, recv_type, wait_until

pytestmark = pytest.mark.slow

ACCESS_TTL = 3.0  # seconds; under the 60 s warning, so token_expiring comes right after welcome


@pytest.fixture(scope="module")
def short_tokens(make_server: Servers) -> Server:
    """Access tokens (and the connections they open) that last three seconds."""
    return make_server("short-tokens", ACCESS_TOKEN_TTL=str(ACCESS_TTL))


def test_happy_path(server: Server) -> None:
    """Login, ticket, welcome, a transition caused over HTTP, a clean close: the session follows each step."""
    login = server.login()
    assert [(h["event"], h["actor"]) for h in server.history(login.session_id, login.headers)] == [
        ("authenticate", "server"),
        ("activate", "server"),
    ]

    ticket = server.ticket(login)
    with server.connect(ticket=ticket) as ws:
        welcome = recv_json(ws)
        assert welcome["type"] == "welcome"
        assert welcome["session_id"] == login.session_id
        assert welcome["state"] == "ws_connected"
        connection_id = welcome["connection_id"]
        assert uuid.UUID(connection_id)
        assert welcome["heartbeat_interval"] == 25.0
        assert welcome["last_seq"] == 3  # authenticate, activate, connect
        assert welcome["recovered"] is None
        assert 890 <= welcome["token_expires_in"] <= 900

        view = server.session(login.session_id, login.headers)
        assert view["state"] == "ws_connected"
        assert view["version"] == 3
        assert view["connections"] == [connection_id]
        assert server.connection(connection_id)["state"] == "open"

        server.refresh(login)
        transition = recv_type(ws, "transition")
        assert transition == {
            "type": "transition",
            "seq": 4,
            "event": "refresh",
            "from_state": "ws_connected",
            "to_state": "ws_connected",
            "actor": "client",
            "at": transition["at"],
        }
        ws.close(1000)

    server.wait_state(login.session_id, "session_active")
    events = [h["event"] for h in server.history(login.session_id, login.headers)]
    assert events == ["authenticate", "activate", "connect", "refresh", "disconnect"]
    row = server.wait_connection(connection_id, "closed")
    assert row["close_code"] == 1000
    assert server.session(login.session_id, login.headers)["connections"] == []
    # The handshake is logged by its path only: no ticket, no token there.
    output = server.output()
    assert "WebSocket /api/ws" in output
    assert ticket not in output
    assert login.access_token not in output


def test_transitions_reach_every_connection_in_order(server: Server) -> None:
    """Several HTTP transitions arrive on the socket with consecutive seq numbers."""
    login = server.login()
    with server.connect(login) as ws:
        seq = recv_type(ws, "welcome")["last_seq"]
        for _ in range(3):
            server.refresh(login)
        seqs = [recv_type(ws, "transition")["seq"] for _ in range(3)]
        assert seqs == [seq + 1, seq + 2, seq + 3]


def test_bearer_on_the_handshake_opens_like_a_ticket(server: Server) -> None:
    """``Authorization: Bearer <access token>`` on the handshake is the other way in."""
    login = server.login()
    with server.connect(headers=login.headers) as ws:
        welcome = recv_type(ws, "welcome")
        assert welcome["session_id"] == login.session_id
        assert welcome["state"] == "ws_connected"
        assert 890 <= welcome["token_expires_in"] <= 900


def test_two_tabs_connect_once_and_disconnect_when_the_last_closes(server: Server) -> None:
    """Two connections, one ``connect``; the session stays connected until the second closes."""
    login = server.login()
    with server.connect(login) as first, server.connect(login) as second:
        one = recv_type(first, "welcome")
        two = recv_type(second, "welcome")
        assert one["connection_id"] != two["connection_id"]
        assert one["state"] == two["state"] == "ws_connected"
        view = server.session(login.session_id, login.headers)
        assert sorted(view["connections"]) == sorted([one["connection_id"], two["connection_id"]])
        assert server.events(login.session_id).count("connect") == 1

        # Both tabs see a transition caused over HTTP.
        server.refresh(login)
        assert recv_type(first, "transition")["event"] == "refresh"
        assert recv_type(second, "transition")["event"] == "refresh"

        first.close(1000)
        server.wait_connection(one["connection_id"], "closed")
        assert server.state(login.session_id) == "ws_connected"
        assert server.session(login.session_id, login.headers)["connections"] == [two["connection_id"]]

        second.close(1000)
    server.wait_state(login.session_id, "session_active")
    assert server.events(login.session_id) == ["authenticate", "activate", "connect", "refresh", "disconnect"]
    assert server.connection(two["connection_id"])["close_code"] == 1000


def test_the_last_tab_lost_abnormally_drops_the_session_until_the_grace_is_over(server: Server) -> None:
    """A connection lost without a close frame is ``dropped``; the last one drops the session, then grace."""
    login = server.login()
    with server.connect(login) as first, server.connect(login) as second:
        one = recv_type(first, "welcome")["connection_id"]
        two = recv_type(second, "welcome")["connection_id"]
        first.close(1000)
        server.wait_connection(one, "closed")
        abort(second)
        row = server.wait_connection(two, "dropped")
    # No close frame arrived: uvicorn reports a lost connection as 1005 (no status), which is not a clean close.
    assert row["close_code"] == 1005
    server.wait_state(login.session_id, "ws_disconnected")
    server.wait_state(login.session_id, "session_active", timeout=5)  # SESSIONFLOW_SESSION_RECONNECT_GRACE=1
    assert server.events(login.session_id)[-3:] == ["connect", "drop", "grace_elapsed"]


def test_a_tab_lost_abnormally_while_another_lives_leaves_the_session_connected(server: Server) -> None:
    login = server.login()
    with server.connect(login) as first, server.connect(login) as second:
        one = recv_type(first, "welcome")["connection_id"]
        recv_type(second, "welcome")
        abort(first)
        server.wait_connection(one, "dropped")
        assert server.state(login.session_id) == "ws_connected"
        second.close(1000)
    server.wait_state(login.session_id, "session_active")
    assert server.events(login.session_id)[-2:] == ["connect", "disconnect"]


# -- reauthentication -------------------------------------------------------------------------


def test_reauth_keeps_the_connection_past_the_old_expiry(short_tokens: Server) -> None:
    """token_expiring, refresh over HTTP, reauth, reauthenticated; open past the old expiry; 4419 at the new one.

    A second connection of the same session (bearer on the handshake) never reauthenticates: it is closed
    with 4419 when the old token expires, while the first stays open. Timeline, in seconds after the
    handshakes: the old credentials end by 3; the refresh at 1.9 issues a token whose ``exp`` (whole seconds)
    is at least 3.9; the quiet window ends at 3.45, 0.45 s clear of both.
    """
    server = short_tokens
    login = server.login()
    with server.connect(login) as ws, server.connect(headers=login.headers) as stale:
        opened = time.monotonic()
        welcome = recv_json(ws)
        assert welcome["type"] == "welcome"
        assert ACCESS_TTL - 1 <= welcome["token_expires_in"] <= ACCESS_TTL
        # The warning comes 60 s before expiry: with a 3 s credential, at once.
        warning = recv_json(ws, timeout=1)
        assert warning["type"] == "token_expiring"
        assert 0 <= warning["expires_in"] <= ACCESS_TTL
        stale_id = recv_type(stale, "welcome")["connection_id"]

        time.sleep(max(0.0, opened + 1.9 - time.monotonic()))
        server.refresh(login)
        assert recv_type(ws, "transition")["event"] == "refresh"
        ws.send(json.dumps({"type": "reauth", "access_token": login.access_token}))
        reauthenticated = recv_type(ws, "reauthenticated")
        assert time.monotonic() < opened + ACCESS_TTL, "too slow to test anything: the old credential ran out"
        assert ACCESS_TTL - 1 <= reauthenticated["token_expires_in"] <= ACCESS_TTL

        # Without reauth, the old credential's expiry closes the other tab: refresh, then reconnect.
        closed = expect_close(stale, 4419, timeout=ACCESS_TTL, reason="credentials expired; refresh, then reconnect")
        # (The login token's exp is whole seconds: it may run out before the refresh or after.)
        assert [m["type"] for m in closed.messages] in (["token_expiring"], ["token_expiring", "transition"])
        assert closed.at - opened <= ACCESS_TTL + 0.3

        # Past the old expiry the reauthenticated connection is still open and quiet.
        with pytest.raises(TimeoutError):
            recv_json(ws, timeout=max(0.0, opened + ACCESS_TTL + 0.45 - time.monotonic()))

        # Without another reauth, the new credential's expiry closes it too.
        closed = expect_close(ws, 4419, timeout=ACCESS_TTL, reason="credentials expired; refresh, then reconnect")
        assert closed.messages == []
        assert closed.at - opened >= ACCESS_TTL + 0.45

    assert server.wait_connection(stale_id, "closed")["close_code"] == 4419
    assert server.wait_connection(welcome["connection_id"], "closed")["close_code"] == 4419
    # The credential expired, not the session: it is usable again, and refreshing works.
    server.wait_state(login.session_id, "session_active")
    server.refresh(login)


def test_a_ticket_opened_connection_ends_when_the_token_behind_the_ticket_does(short_tokens: Server) -> None:
    """A ticket stands for the access token it was obtained with: the connection's credential runs out when that
    token does (here at most 3 s after login), not a whole token lifetime after the ticket is used (4.2 s)."""
    server = short_tokens
    login = server.login()
    logged_in = time.monotonic()
    time.sleep(1.2)
    with server.connect(ticket=server.ticket(login)) as ws:
        welcome = recv_type(ws, "welcome")
        assert welcome["token_expires_in"] <= ACCESS_TTL - 1
        closed = expect_close(ws, 4419, timeout=ACCESS_TTL, reason="credentials expired; refresh, then reconnect")
        assert closed.at - logged_in <= ACCESS_TTL + 0.8


def test_a_ticket_used_after_its_token_expired_closes_4419(short_tokens: Server) -> None:
    """The ticket itself is still fresh (30 s), the credential it stands for is not: refresh, then a new ticket."""
    server = short_tokens
    login = server.login()
    ticket = server.ticket(login)
    time.sleep(ACCESS_TTL + 0.2)
    with server.connect(ticket=ticket) as ws:
        closed = expect_close(
            ws,
            4419,
            reason="the access token this ticket was obtained with has expired; refresh, then get a new ticket",
        )
        assert closed.messages == []
    assert server.state(login.session_id) == "session_active", "nothing was opened"


def test_reauth_with_a_token_of_another_session_closes_4401(short_tokens: Server) -> None:
    server = short_tokens
    login, other = server.login(), server.login()
    with server.connect(login) as ws:
        recv_type(ws, "welcome")
        ws.send(json.dumps({"type": "reauth", "access_token": other.access_token}))
        expect_close(ws, 4401, reason="that token belongs to another session")


def test_reauth_with_a_superseded_token_closes_4401(short_tokens: Server) -> None:
    """The access token from before a refresh is no credential any more."""
    server = short_tokens
    login = server.login()
    old = login.access_token
    with server.connect(login) as ws:
        recv_type(ws, "welcome")
        server.refresh(login)
        recv_type(ws, "transition")
        ws.send(json.dumps({"type": "reauth", "access_token": old}))
        expect_close(ws, 4401)


def test_reauth_with_garbage_closes_4401(server: Server) -> None:
    login = server.login()
    with server.connect(login) as ws:
        recv_type(ws, "welcome")
        ws.send(json.dumps({"type": "reauth", "access_token": "not-a-token"}))
        expect_close(ws, 4401)
    wait_until(lambda: server.state(login.session_id) == "session_active", what="session back to session_active")
