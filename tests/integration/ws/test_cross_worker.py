"""Two server processes on one PostgreSQL database: what happens on B reaches a connection held by A.

Every test runs on both fan-outs: ``postgres`` (``pg_notify`` in the
transition's transaction and a ``LISTEN`` per worker, api/fanout.py) and
``redis`` (published after commit, a subscriber per worker,
api/fanout_redis.py). docs/protocol.md: revocation, logout and expiry reach
every live connection of the session, on every worker, promptly: here,
within one second.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
import uuid

import pytest
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from tests.integration.ws.conftest import Server, Servers, abort, expect_close, free_port, recv_type

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PROMPTLY = 1.0  # seconds from the HTTP call on B to the close frame on A


@pytest.fixture(scope="module", params=["postgres", pytest.param("redis", marks=pytest.mark.redis)])
def workers(request: pytest.FixtureRequest, make_server: Servers, postgres_url: str) -> tuple[Server, Server]:
    """Processes A and B: different ports, one database, one signing secret (BASE_ENV), one fan-out."""
    env = {"FANOUT": request.param}
    if request.param == "redis":
        env |= {"REDIS_URL": request.getfixturevalue("redis_url"), "REDIS_CHANNEL": f"test:{uuid.uuid4().hex}"}
    names = (f"{request.param}-a", f"{request.param}-b")
    servers = make_server.many(dict.fromkeys(names, env), database_url=postgres_url)
    return servers[names[0]], servers[names[1]]


def test_a_transition_on_b_reaches_a_connection_on_a(workers: tuple[Server, Server]) -> None:
    a, b = workers
    login = b.login()
    with a.connect(login) as ws:  # the ticket comes from A; any worker's would do
        welcome = recv_type(ws, "welcome")
        assert a.connection(welcome["connection_id"])["worker_id"] != ""
        started = time.monotonic()
        b.refresh(login)
        transition = recv_type(ws, "transition", timeout=PROMPTLY)
        assert time.monotonic() - started < PROMPTLY
        assert (transition["seq"], transition["event"]) == (welcome["last_seq"] + 1, "refresh")


def test_logout_on_b_closes_a_connection_held_by_a_with_4410_within_a_second(workers: tuple[Server, Server]) -> None:
    a, b = workers
    login = b.login()
    with a.connect(login) as ws:
        connection_id = recv_type(ws, "welcome")["connection_id"]
        started = time.monotonic()
        response = b.logout(login)
        assert response.status_code == 200, response.text
        closed = expect_close(ws, 4410, timeout=5, reason="the session is closed; log in again")
    elapsed = closed.at - started
    assert elapsed < PROMPTLY, f"closed {elapsed:.3f} s after the logout"
    assert [(m["event"], m["to_state"]) for m in closed.messages] == [("logout", "closed")]
    row = a.wait_connection(connection_id, "closed")
    assert row["close_code"] == 4410
    assert b.state(login.session_id) == "closed"


def test_admin_revoke_on_b_closes_a_connection_held_by_a_with_4403_within_a_second(
    workers: tuple[Server, Server],
) -> None:
    a, b = workers
    login = a.login()
    admin = b.admin()
    with a.connect(login) as ws:
        connection_id = recv_type(ws, "welcome")["connection_id"]
        started = time.monotonic()
        response = b.http.post(
            f"/api/admin/sessions/{login.session_id}/revoke",
            headers=admin.headers,
            json={"reason": "cross-worker test"},
        )
        assert response.status_code == 200, response.text
        closed = expect_close(ws, 4403, timeout=5, reason="the session was revoked; log in again")
    elapsed = closed.at - started
    assert elapsed < PROMPTLY, f"closed {elapsed:.3f} s after the revoke"
    assert [(m["event"], m["to_state"], m["actor"]) for m in closed.messages] == [("revoke", "revoked", "admin")]
    assert a.wait_connection(connection_id, "closed")["close_code"] == 4403


def test_two_tabs_on_two_workers_share_one_session_state(workers: tuple[Server, Server]) -> None:
    """A tab on each worker: one connect; closing one keeps ws_connected; logout on either closes both."""
    a, b = workers
    login = a.login()
    with a.connect(login) as on_a, b.connect(login) as on_b:
        one = recv_type(on_a, "welcome")["connection_id"]
        two = recv_type(on_b, "welcome")["connection_id"]
        assert a.connection(one)["worker_id"] != b.connection(two)["worker_id"]
        assert a.events(login.session_id).count("connect") == 1
        on_b.close(1000)
        b.wait_connection(two, "closed")
        assert a.state(login.session_id) == "ws_connected"
        logged_out = b.logout(login)
        assert logged_out.status_code == 200, logged_out.text
        expect_close(on_a, 4410, timeout=PROMPTLY)
    assert a.state(login.session_id) == "closed"


def test_a_dead_workers_connection_is_dropped_by_a_surviving_worker(make_server: Servers, postgres_url: str) -> None:
    """SIGKILL the worker holding a connection: nobody closes it, so after three missed heartbeat intervals the
    survivor's sweeper marks it dropped, the session drops with it, and the grace period returns it to active."""
    env = {"WS_HEARTBEAT_INTERVAL": "0.3", "SWEEP_INTERVAL": "0.2", "SESSION_RECONNECT_GRACE": "0.5"}
    servers = make_server.many({"dying": env, "survivor": env}, database_url=postgres_url)
    dying, survivor = servers["dying"], servers["survivor"]
    login = survivor.login()
    with dying.connect(login) as ws:
        connection_id = recv_type(ws, "welcome")["connection_id"]
        for _ in range(2):  # a pong or two, flushed to the store by the worker that is about to die
            recv_type(ws, "ping", skip=())
            ws.send(json.dumps({"type": "pong"}))
        time.sleep(0.3)
        assert survivor.connection(connection_id)["last_heartbeat_at"] is not None
        dying.kill()
        abort(ws)
    row = survivor.wait_connection(connection_id, "dropped", timeout=5, close_recorded=False)
    assert row["close_code"] is None, "nobody was left to send or record one"
    survivor.wait_state(login.session_id, "session_active", timeout=5)
    assert survivor.events(login.session_id)[-3:] == ["connect", "drop", "grace_elapsed"]


def test_with_redis_unreachable_a_logout_on_b_reaches_a_within_the_resync_interval(
    make_server: Servers, postgres_url: str
) -> None:
    """Publishing after commit can lose a notification (Redis down, a worker dying between commit and publish);
    it never loses the transition: every worker re-reads its live sessions at the resync interval."""
    nobody = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    env = {"FANOUT": "redis", "REDIS_URL": nobody, "WS_RESYNC_INTERVAL": "1"}
    servers = make_server.many({"no-redis-a": env, "no-redis-b": env}, database_url=postgres_url)
    a, b = servers["no-redis-a"], servers["no-redis-b"]
    login = b.login()
    with a.connect(login) as ws:
        recv_type(ws, "welcome")
        started = time.monotonic()
        response = b.logout(login)
        assert response.status_code == 200, response.text
        closed = expect_close(ws, 4410, timeout=5, reason="the session is closed; log in again")
    assert closed.at - started < 1.0 + PROMPTLY, f"closed {closed.at - started:.3f} s after the logout"
    assert a.http.get("/api/ready").status_code == 200, "Redis is not needed to serve; only to deliver promptly"
    assert "lost Redis" in a.output()
    assert nobody not in a.output() + b.output()


def test_the_per_address_cap_holds_across_workers(make_server: Servers, postgres_url: str) -> None:
    """Issue 11, defect 8: the cap is counted in the store, so two workers together admit no more than it."""
    env = {"WS_MAX_CONNECTIONS_PER_ADDRESS": "2"}
    servers = make_server.many({"cap-a": env, "cap-b": env}, database_url=postgres_url)
    first, second = servers["cap-a"], servers["cap-b"]
    # An address of our own on the loopback network: other tests' connections share this database.
    address = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"

    def connect(server: Server) -> ClientConnection:
        url = f"{server.ws_url}?ticket={server.ticket(server.login())}"
        return ws_connect(url, source_address=(address, 0), open_timeout=5)

    with contextlib.ExitStack() as stack:
        for server in (first, second):
            assert recv_type(stack.enter_context(connect(server)), "welcome")
        for server in (first, second):
            with connect(server) as refused:
                expect_close(refused, 4429, reason="too many connections from this address; retry_after=5")
