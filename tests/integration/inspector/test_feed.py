"""The inspector's feed, over real sockets to a real ``sessionflow serve``: admin-only, complete, resumable."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from tests.integration.ws.conftest import Login, Server, Servers, expect_close, recv_json

pytestmark = pytest.mark.slow


def open_feed(server: Server, login: Login, **query: str) -> ClientConnection:
    params = {"ticket": server.ticket(login), **query}
    url = f"ws://127.0.0.1:{server.port}/api/inspector/feed?{httpx.QueryParams(params)}"
    return ws_connect(url, proxy=None, open_timeout=5, close_timeout=3, compression=None)


def collect(ws: ClientConnection, predicate: Any, *, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Feed items (transitions and refusals, tagged with ``kind``) until ``predicate(items)`` holds."""
    items: list[dict[str, Any]] = []
    while not predicate(items):
        message = recv_json(ws, timeout=timeout)
        kind = message["type"]
        items.extend({**item, "kind": kind} for item in message["items"])
    return items


def of_session(items: list[dict[str, Any]], session_id: str) -> list[tuple[str, str, str, str]]:
    return [(i["machine"], i["event"], i["from"], i["to"]) for i in items if i.get("session_id") == session_id]


@pytest.fixture(scope="module")
def feed_server(make_server: Servers) -> Server:
    return make_server("inspector-feed")


def test_a_non_admin_is_refused_with_4406(feed_server: Server) -> None:
    """A valid ticket of an ordinary user opens no feed: the handshake is accepted, then closed 4406."""
    with open_feed(feed_server, feed_server.login()) as ws:
        expect_close(ws, 4406)


def test_a_foreign_origin_is_refused_with_1008(feed_server: Server) -> None:
    params = httpx.QueryParams({"ticket": feed_server.ticket(feed_server.admin())})
    url = f"ws://127.0.0.1:{feed_server.port}/api/inspector/feed?{params}"
    with ws_connect(url, proxy=None, origin="https://evil.example", open_timeout=5) as ws:  # type: ignore[arg-type]
        expect_close(ws, 1008)


def test_without_a_ticket_the_feed_closes_4401(feed_server: Server) -> None:
    with ws_connect(f"ws://127.0.0.1:{feed_server.port}/api/inspector/feed", proxy=None, open_timeout=5) as ws:
        expect_close(ws, 4401)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_server(request: pytest.FixtureRequest, feed_server: Server, make_server: Servers) -> Server:
    """The module's SQLite server, or one on PostgreSQL (ids there can commit out of order)."""
    if request.param == "sqlite":
        return feed_server
    return make_server("inspector-feed-pg", database_url=request.getfixturevalue("postgres_url"))


def test_the_feed_carries_every_transition_of_a_login_connect_and_logout(any_server: Server) -> None:
    """Session and connection transitions arrive in global order, each tagged with its session."""
    feed_server = any_server
    with open_feed(feed_server, feed_server.admin()) as ws:
        welcome = recv_json(ws)
        assert welcome["type"] == "welcome"
        assert welcome["recovered"] is None
        user = feed_server.login()
        with feed_server.connect(user) as socket:
            assert recv_json(socket)["type"] == "welcome"
        feed_server.logout(user)
        items = collect(ws, lambda got: ("session", "logout") in {(i["machine"], i["event"]) for i in got})
    seqs = [i["seq"] for i in items if i["kind"] == "transitions"]
    assert seqs == sorted(seqs)
    assert seqs[0] > welcome["seq"]
    moves = of_session(items, user.session_id)
    assert moves[:2] == [
        ("session", "authenticate", "anonymous", "authenticated"),
        ("session", "activate", "authenticated", "session_active"),
    ]
    assert ("connection", "accept", "connecting", "open") in moves
    assert ("session", "connect", "session_active", "ws_connected") in moves
    session_moves = [m for m in moves if m[0] == "session"]
    assert session_moves[-1][1] == "logout"  # from session_active or ws_connected: the socket's close may lag
    assert session_moves[-1][3] == "closed"


def test_a_refused_event_reaches_the_feed_with_its_code(feed_server: Server) -> None:
    """A refusal is stored (its transaction rolled back) and fed with its code and request id."""
    with open_feed(feed_server, feed_server.admin()) as ws:
        recv_json(ws)
        user = feed_server.login()
        response = feed_server.http.post(
            f"/api/session/{user.session_id}/events/activate",
            headers={**user.headers, "X-Request-ID": "refused-activate-1"},
        )
        assert response.status_code == 409, response.text
        items = collect(ws, lambda got: any(i["kind"] == "refusals" for i in got))
    refusal = next(i for i in items if i["kind"] == "refusals")
    assert refusal["id"] == user.session_id
    assert refusal["event"] == "activate"
    assert refusal["state"] == "session_active"
    assert refusal["code"] in {"transition_not_allowed", "actor_not_permitted"}
    assert refusal["request_id"] == "refused-activate-1"


def test_the_feed_resumes_after_a_server_restart_from_the_seq_it_saw(make_server: Servers) -> None:
    """Transitions made while the server was down and up again are replayed, once each, in order."""
    server = make_server("inspector-restart")
    admin = server.admin()
    with open_feed(server, admin) as ws:
        seen = recv_json(ws)["seq"]
        server.stop()
        expect_close(ws, 1001)
    server.start()
    missed = server.login()
    server.logout(missed)
    with open_feed(server, admin, after=str(seen)) as ws:
        welcome = recv_json(ws)
        assert welcome == {**welcome, "type": "welcome", "seq": seen, "recovered": True}
        items = collect(ws, lambda got: any(i["event"] == "logout" for i in got))
    assert [i["seq"] for i in items] == list(range(seen + 1, seen + 1 + len(items)))
    assert of_session(items, missed.session_id) == [
        ("session", "authenticate", "anonymous", "authenticated"),
        ("session", "activate", "authenticated", "session_active"),
        ("session", "logout", "session_active", "closed"),
    ]


def test_a_message_to_the_feed_closes_it_4400(feed_server: Server) -> None:
    """The feed is one way; anything a client sends is a protocol error, not something to buffer."""
    with open_feed(feed_server, feed_server.admin()) as ws:
        recv_json(ws)
        ws.send('{"type": "pong"}')
        expect_close(ws, 4400)


def test_a_resume_from_beyond_the_store_is_not_recovered(feed_server: Server) -> None:
    with open_feed(feed_server, feed_server.admin(), after="999999999") as ws:
        welcome = recv_json(ws)
    assert welcome["recovered"] is False
    assert welcome["seq"] < 999999999


def test_revoking_the_admins_session_ends_its_feed(make_server: Servers) -> None:
    server = make_server("inspector-revoked", LOG_LEVEL="warning")
    admin = server.login(admin=True)
    with open_feed(server, admin) as ws:
        recv_json(ws)
        assert server.revoke(admin.session_id).status_code == 200
        expect_close(ws, 4403, timeout=10)


def test_switched_off_nothing_of_the_inspector_is_served(make_server: Servers) -> None:
    """``SESSIONFLOW_INSPECTOR=false``: the page, its files, its reads and its feed are not there."""
    server = make_server("inspector-off", INSPECTOR="false")
    admin = server.admin()
    assert server.http.get("/api/inspector").status_code == 404
    assert server.http.get("/api/inspector/static/index.html").status_code == 404
    assert server.http.get("/api/inspector/overview", headers=admin.headers).status_code == 404
    assert server.http.get(f"/api/inspector/sessions/{admin.session_id}", headers=admin.headers).status_code == 404
