"""What every request passes through: where its read runs, its access-log line, its metrics, its body's type."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from sessionflow.api.auth.authenticate import WriteNeeded
from sessionflow.lifecycle import CONNECTION, SESSION, Access, Actor, ConnectionEvent, access
from sessionflow.persistence import connections, services
from tests.integration.api.conftest import Api, assert_problem, bearer
from tests.integration.api.test_services_routes import basic

IDLE_TIMEOUT = timedelta(minutes=30)  # the default session_idle_timeout

# -- where a request's read runs ----------------------------------------------------------


def test_a_read_runs_on_the_loop_on_sqlite_and_in_a_worker_thread_on_postgresql(api: Api) -> None:
    """SQLite reads cost less than the hop to a thread; a PostgreSQL round trip must not stall the loop."""
    calls: list[tuple[bool, int]] = []

    def work(may_write: bool) -> str:
        calls.append((may_write, threading.get_ident()))
        return "answer"

    async def run() -> tuple[str, int]:
        return await api.ctx.read(work), threading.get_ident()

    answer, loop_thread = asyncio.run(run())
    assert answer == "answer"
    if api.ctx.db.is_sqlite:
        assert calls == [(False, loop_thread)], "read-only, on the event loop"
    else:
        assert [may_write for may_write, _ in calls] == [True]
        assert calls[0][1] != loop_thread, "in a worker thread"


def test_a_read_that_needs_a_write_runs_again_where_it_may_write(api: Api) -> None:
    calls: list[tuple[bool, int]] = []

    def work(may_write: bool) -> str:
        calls.append((may_write, threading.get_ident()))
        if not may_write:
            raise WriteNeeded
        return "written"

    async def run() -> tuple[str, int]:
        return await api.ctx.read(work), threading.get_ident()

    answer, loop_thread = asyncio.run(run())
    assert answer == "written"
    assert calls[-1][0] is True
    assert calls[-1][1] != loop_thread
    assert [may_write for may_write, _ in calls] == ([False, True] if api.ctx.db.is_sqlite else [True])


@pytest.mark.parametrize("path", ["/api/session/{sid}", "/api/auth/forward"])
def test_a_request_arriving_after_the_idle_timeout_fires_it_and_is_refused(
    make_api: Callable[..., Api], path: str
) -> None:
    """A read-only pass cannot fire the due timer, so the request is answered where it can: the session is
    stored as expired, and the caller gets the expiry's refusal, never the stale usable state."""
    api = make_api(access_token_ttl=timedelta(hours=1))  # the token outlives the idle timeout
    tokens = api.login()
    api.clock.advance(IDLE_TIMEOUT + timedelta(seconds=1))
    response = api.client.get(path.format(sid=tokens["session_id"]), headers=bearer(tokens["access_token"]))
    assert_problem(response, 401, "session_expired")
    stored = api.ctx.service.get(SESSION.name, tokens["session_id"], fire_due=False)
    assert access(stored.state) is Access.REFRESHABLE, stored.state


def test_an_anonymous_token_after_the_login_window_fires_it_and_is_refused(api: Api) -> None:
    """No idle touch stands in for the due timer here: the read-only pass must see it is due by itself."""
    anonymous = api.create_anonymous()
    api.clock.advance(api.ctx.settings.session_login_window + timedelta(seconds=1))
    response = api.client.get(f"/api/session/{anonymous['session_id']}", headers=bearer(anonymous["anonymous_token"]))
    assert_problem(response, 401, "token_superseded")
    stored = api.ctx.service.get(SESSION.name, anonymous["session_id"], fire_due=False)
    assert stored.state != SESSION.initial, "the login window's timer fired"


def test_introspection_after_the_idle_timeout_reports_the_expiry(make_api: Callable[..., Api]) -> None:
    api = make_api(access_token_ttl=timedelta(hours=1))
    secret = services.register(api.ctx.db, "experience", now=api.clock.now())
    token = api.login()["access_token"]
    api.clock.advance(IDLE_TIMEOUT + timedelta(seconds=1))
    answer = api.client.post("/api/auth/introspect", data={"token": token}, headers=basic("experience", secret))
    assert answer.json() == {"active": False, "code": "session_expired"}


@pytest.mark.parametrize("change", ["logout", "revoke", "refresh"])
def test_a_change_made_by_another_worker_reaches_the_next_request_at_once(
    make_api: Callable[..., Api], change: str
) -> None:
    """On SQLite a worker keeps the session rows it read until anything commits (persistence/rowcache.py):
    a logout, revocation or refresh committed by another worker is seen by the very next request."""
    worker, other = make_api(), make_api()  # two apps on one database, as two workers
    tokens = worker.login()
    headers = bearer(tokens["access_token"])
    for _ in range(3):  # read, then answered from what was read
        assert worker.client.get("/api/auth/forward", headers=headers).status_code == 200
    if change == "logout":
        assert other.client.post("/api/auth/logout", headers=headers).status_code == 200
        expected = "session_closed"
    elif change == "revoke":
        revoked = other.client.post(
            f"/api/admin/sessions/{tokens['session_id']}/revoke", json={}, headers=other.admin_headers()
        )
        assert revoked.status_code == 200, revoked.text
        expected = "session_revoked"
    else:
        refreshed = other.client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 200, refreshed.text
        expected = "token_superseded"
    assert_problem(worker.client.get("/api/auth/forward", headers=headers), 401, expected)
    assert_problem(worker.client.get(f"/api/session/{tokens['session_id']}", headers=headers), 401, expected)


def test_a_websocket_opened_by_another_worker_is_listed_by_the_next_read(make_api: Callable[..., Api]) -> None:
    worker, other = make_api(), make_api()
    tokens = worker.login()
    url, headers = f"/api/session/{tokens['session_id']}", bearer(tokens["access_token"])
    assert worker.client.get(url, headers=headers).json()["connections"] == []
    with other.ctx.service.transaction() as tx:
        opened = connections.open_connection(
            tx, uuid.UUID(tokens["session_id"]), worker_id="other-worker", remote_addr=None
        )
        tx.fire(CONNECTION.name, opened.id, ConnectionEvent.ACCEPT, actor=Actor.SERVER)  # as api/ws.py opens one
    assert worker.client.get(url, headers=headers).json()["connections"] == [str(opened.id)]


# -- the access log -----------------------------------------------------------------------


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def access_log() -> Iterator[Lines]:
    logger = logging.getLogger("sessionflow.access")
    handler, level = Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_the_access_log_writes_one_line_per_request_with_method_path_and_status(api: Api, access_log: Lines) -> None:
    """Never the query string, where a careless client may put a token; the status as answered, refusals too."""
    tokens = api.login()
    access_log.lines.clear()
    api.client.get(f"/api/session/{tokens['session_id']}?access_token=SECRET", headers=bearer(tokens["access_token"]))
    api.client.get("/api/auth/forward")
    assert len(access_log.lines) == 2, access_log.lines
    read, refused = (line.split(" ") for line in access_log.lines)
    assert read[:3] == ["GET", f"/api/session/{tokens['session_id']}", "200"]
    assert refused[:3] == ["GET", "/api/auth/forward", "401"]
    assert all(line.endswith("ms") for line in access_log.lines)
    assert not any("SECRET" in line for line in access_log.lines)


# -- metrics ------------------------------------------------------------------------------


def _sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, {"app_name": "sessionflow", **labels})
    return value or 0.0


def test_request_metrics_count_each_route_template_and_status(api: Api) -> None:
    """The names and labels of Litestar's Prometheus middleware: dashboards built on them keep working."""
    tokens = api.login()
    route = "/api/session/{session_id}"
    labels: dict[str, Any] = {"method": "GET", "path": route}
    before = {status: _sample("sessionflow_requests_total", status_code=status, **labels) for status in ("200", "401")}
    histogram_before = _sample("sessionflow_request_duration_seconds_count", status_code="200", **labels)
    for _ in range(3):
        api.client.get(f"/api/session/{tokens['session_id']}", headers=bearer(tokens["access_token"]))
    api.client.get(f"/api/session/{tokens['session_id']}")
    assert _sample("sessionflow_requests_total", status_code="200", **labels) == before["200"] + 3
    assert _sample("sessionflow_requests_total", status_code="401", **labels) == before["401"] + 1
    assert _sample("sessionflow_request_duration_seconds_count", status_code="200", **labels) == histogram_before + 3
    assert _sample("sessionflow_requests_in_progress", status_code="200", **labels) == 0


# -- request bodies -----------------------------------------------------------------------


def test_a_route_that_reads_no_body_ignores_one_sent_under_any_type(api: Api) -> None:
    """The media type is checked when the route reads its body; a body no route reads can do nothing."""
    tokens = api.login()
    response = api.client.request(
        "GET",
        "/api/auth/forward",
        content=b"username=alice",
        headers={**bearer(tokens["access_token"]), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text


def test_a_route_that_reads_json_refuses_a_form_before_reading_it(api: Api) -> None:
    tokens = api.login()
    response = api.client.post(
        f"/api/session/{tokens['session_id']}/events/logout",
        content=b'{"reason": "x"}',
        headers={**bearer(tokens["access_token"]), "Content-Type": "text/plain"},
    )
    assert_problem(response, 415, "unsupported_media_type")
    stored = api.ctx.service.get(SESSION.name, tokens["session_id"], fire_due=False)
    assert stored.state == "session_active", "nothing applied"
