"""The inspector page in a real headless Chromium, served by a real ``sessionflow serve``, fed live.

Screenshots for the docs are taken here: ``SESSIONFLOW_SCREENSHOTS=1 .venv/bin/pytest
tests/integration/browser/test_inspector.py`` writes ``docs/images/inspector-*.png`` and records what they
were taken from (tests/unit/test_inspector_screenshots.py fails when that changed without them).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from sessionflow.api.passwords import hash_password
from sessionflow.persistence import queries
from tests import screenshots
from tests.integration.ws.conftest import PASSWORD, Login, Server, Servers, _servers, expect_close, recv_type

pytestmark = pytest.mark.slow

PROMPTLY = 1.0  # seconds: a login or logout elsewhere to the counts on the page
SCREENSHOTS = os.environ.get("SESSIONFLOW_SCREENSHOTS", "") == "1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    servers: Servers
    for servers in _servers(tmp_path_factory.mktemp("inspector-browser"), hash_password(PASSWORD)):
        yield servers("inspector", LOG_LEVEL="warning")


def wait_js(page: Any, expression: str, arg: Any = None, *, timeout: float = 5.0) -> float:
    """Seconds until ``expression`` (a function of ``arg``) is truthy in the page; fail after ``timeout``.

    Polls with ``page.evaluate``, which the page's Content-Security-Policy allows (Playwright's
    ``wait_for_function`` compiles its predicate with ``eval``, which the policy forbids, as it should).
    """
    started = time.monotonic()
    while not page.evaluate(expression, arg):
        if time.monotonic() - started > timeout:
            pytest.fail(f"not within {timeout} s: {expression} ({arg!r})")
        time.sleep(0.02)
    return time.monotonic() - started


@dataclass
class Inspector:
    """The inspector in one browser context, with every console error and page error it met."""

    page: Any
    server: Server
    errors: list[str] = field(default_factory=list)

    def log_in(self, username: str) -> None:
        self.page.get_by_test_id("username").fill(username)
        self.page.get_by_test_id("password").fill(PASSWORD)
        self.page.get_by_test_id("login").click()

    def count(self, machine: str, state: str) -> int:
        return int(self.page.get_by_test_id(f"count-{machine}-{state}").text_content())

    def wait_count(self, machine: str, state: str, expected: int, timeout: float) -> float:
        """Seconds until the page shows ``expected`` sessions (or connections) in ``state``."""
        return wait_js(
            self.page,
            "([id, n]) => document.querySelector(`[data-testid='${id}']`)?.textContent === String(n)",
            [f"count-{machine}-{state}", expected],
            timeout=timeout,
        )

    def live(self) -> None:
        wait_js(self.page, "() => document.getElementById('status')?.textContent === 'live'", timeout=10)


@pytest.fixture
def open_inspector(chromium: Any, server: Server) -> Iterator[Callable[..., Inspector]]:
    contexts: list[Any] = []

    def make(*, admin: bool = True, path: str = "") -> Inspector:
        context = chromium.new_context(viewport={"width": 1400, "height": 1000})
        contexts.append(context)
        page = context.new_page()
        inspector = Inspector(page, server)
        page.on("console", lambda m: inspector.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: inspector.errors.append(str(error)))
        page.goto(f"{server.base_url}/api/inspector{path}")
        name, _ = server.create_user(admin=admin)
        inspector.log_in(name)
        if admin:
            inspector.live()
        return inspector

    yield make
    for context in contexts:
        context.close()


def test_a_non_admin_is_refused(open_inspector: Callable[..., Inspector], server: Server) -> None:
    """The page says so and shows nothing; the reads behind it answer 403 and the feed closes 4406."""
    inspector = open_inspector(admin=False)
    inspector.page.get_by_test_id("refused").wait_for()
    assert "admin" in inspector.page.get_by_test_id("refused").inner_text()
    assert inspector.page.locator("[data-testid^='diagram-']").count() == 0
    user = server.login()
    assert server.http.get("/api/inspector/overview", headers=user.headers).status_code == 403
    assert server.http.get(f"/api/inspector/sessions/{user.session_id}", headers=user.headers).status_code == 403


def test_a_login_elsewhere_shows_in_the_counts_within_a_second_and_a_logout_moves_it(
    open_inspector: Callable[..., Inspector], server: Server
) -> None:
    inspector = open_inspector()
    inspector.page.get_by_test_id("rates").wait_for(state="attached")  # the overview is drawn
    active, closed = inspector.count("session", "session_active"), inspector.count("session", "closed")

    user = server.login()
    waited = inspector.wait_count("session", "session_active", active + 1, timeout=5)
    assert waited <= PROMPTLY, f"the login took {waited:.2f} s to reach the page"

    flashed = inspector.page.evaluate(
        "() => [...document.querySelectorAll('g.edge.flash title')].map(t => t.textContent)"
    )
    assert "authenticated->session_active" in flashed

    assert server.logout(user).status_code == 200
    waited = inspector.wait_count("session", "closed", closed + 1, timeout=5)
    assert waited <= PROMPTLY, f"the logout took {waited:.2f} s to reach the page"
    assert inspector.count("session", "session_active") == active

    rates = inspector.page.get_by_test_id("rates").inner_text()
    assert "logout" in rates
    assert "activate" in rates
    if SCREENSHOTS:
        _some_traffic(server)
        inspector.page.wait_for_timeout(1500)
        screenshots.take(inspector.page, "overview")
    assert inspector.errors == []


def _some_traffic(server: Server) -> list[Login]:
    """A few sessions in a few states, for a screenshot with something on it."""
    logins = [server.login() for _ in range(4)]
    server.logout(logins[0])
    server.revoke(logins[1].session_id)
    return logins


def test_a_sessions_timeline_matches_its_history_and_shows_its_connections_and_refusals(
    open_inspector: Callable[..., Inspector], server: Server
) -> None:
    user = server.login()
    with server.connect(user) as socket:
        recv_type(socket, "welcome")
        server.refresh(user)
        refused = server.http.post(
            f"/api/session/{user.session_id}/events/activate",
            headers={**user.headers, "X-Request-ID": "inspector-refused-1"},
        )
        assert refused.status_code == 409
        inspector = open_inspector(path=f"#/session/{user.session_id}")
        page = inspector.page
        page.get_by_test_id("timeline").wait_for()
        wait_js(page, "() => document.querySelector(\"[data-testid='refusals'] tbody tr\") !== null")

        history = server.history(user.session_id)
        rows = page.eval_on_selector_all(
            "[data-testid='timeline'] tbody tr",
            "rows => rows.map(r => [...r.cells].map(c => c.dataset.at ?? c.textContent))",
        )
        assert [[int(r[0]), r[1], r[2], r[3], r[4]] for r in rows] == [
            [e["seq"], e["at"], e["event"], e["actor"], f"{e['from_state']} → {e['to_state']}"] for e in history
        ]
        assert server.db is not None
        stored = queries.history(server.db, "session", uuid.UUID(user.session_id), limit=queries.MAX_PAGE)
        assert [r[5] for r in rows] == [e.request_id or "" for e in stored]
        assert rows[-1][2] == "refresh"
        assert rows[-1][5], "a transition made over HTTP carries its request id"
        assert page.get_by_test_id("session-state").inner_text() == "ws_connected"
        assert page.locator("[data-testid='connections'] tr[data-state='open']").count() == 1
        assert "heartbeat" in page.get_by_test_id("connections").inner_text()
        refusals = page.get_by_test_id("refusals").inner_text()
        assert "activate" in refusals
        assert "inspector-refused-1" in refusals
        allowed = page.get_by_test_id("allowed-events").inner_text()
        assert "logout" in allowed
        assert "revoke" in allowed
        assert page.locator("#view svg g.edge.on-path").count() >= 3

        server.refresh(user)  # a move while the page is open reaches its timeline
        rows_now = "n => document.querySelectorAll(\"[data-testid='timeline'] tbody tr\").length === n"
        wait_js(page, rows_now, len(history) + 1)
        if SCREENSHOTS:
            screenshots.take(page, "session")
    assert inspector.errors == []


def test_revoke_from_the_page_closes_that_sessions_sockets(
    open_inspector: Callable[..., Inspector], server: Server
) -> None:
    user, other = server.login(), server.login()
    with server.connect(user) as first, server.connect(user) as second, server.connect(other) as unrelated:
        for socket in (first, second, unrelated):
            recv_type(socket, "welcome")
        inspector = open_inspector(path=f"#/session/{user.session_id}")
        page = inspector.page
        open_rows = "() => document.querySelectorAll(\"[data-testid='connections'] tr[data-state='open']\").length"
        wait_js(page, f"{open_rows} === 2")
        revoke = page.get_by_test_id("revoke")
        revoke.click()
        revoke.click()  # the second click confirms
        expect_close(first, 4403)
        expect_close(second, 4403)
        wait_js(page, "() => document.querySelector(\"[data-testid='session-state']\")?.textContent === 'revoked'")
        assert server.state(other.session_id) == "ws_connected"
        assert server.history(user.session_id)[-1]["event"] == "revoke"
    assert inspector.errors == []


def test_search_finds_sessions_by_user_by_state_and_by_id(
    open_inspector: Callable[..., Inspector], server: Server
) -> None:
    first, second = server.login(), server.login()
    server.logout(second)
    inspector = open_inspector()
    page = inspector.page

    page.get_by_test_id("search-text").fill(first.username)
    page.get_by_test_id("search").click()
    page.get_by_test_id("results").wait_for()
    assert first.session_id in page.get_by_test_id("results").inner_text()
    assert second.session_id not in page.get_by_test_id("results").inner_text()

    page.get_by_test_id("search-text").fill("")
    page.get_by_test_id("search-state").select_option("closed")
    page.get_by_test_id("search").click()
    wait_js(
        page, "id => document.querySelector(\"[data-testid='results']\")?.textContent.includes(id)", second.session_id
    )
    assert first.session_id not in page.get_by_test_id("results").inner_text()

    page.get_by_test_id("search-text").fill(first.session_id)
    page.get_by_test_id("search").click()
    wait_js(page, "id => document.querySelector(\"[data-testid='session-id']\")?.textContent === id", first.session_id)
    assert page.get_by_test_id("session-user").inner_text() == first.username
    assert inspector.errors == []


def test_the_page_follows_the_feed_across_a_server_restart(
    open_inspector: Callable[..., Inspector], server: Server
) -> None:
    """The feed reconnects by itself and resumes from its seq: what happened meanwhile reaches the counts."""
    inspector = open_inspector()
    inspector.page.get_by_test_id("rates").wait_for(state="attached")
    closed = inspector.count("session", "closed")
    server.stop()
    wait_js(inspector.page, "() => document.getElementById('status')?.textContent !== 'live'")
    server.start()
    user = server.login()
    server.logout(user)  # possibly before the page is back: it must be replayed, not missed
    inspector.live()
    inspector.wait_count("session", "closed", closed + 1, timeout=10)
    # While the server was down the browser reported the lost socket and the refused connections; nothing else.
    unreachable = ("WebSocket", "ERR_CONNECTION_REFUSED")
    assert [e for e in inspector.errors if not any(u in e for u in unreachable)] == []


def test_without_graphviz_on_the_server_the_page_lists_the_states_with_their_counts(
    chromium: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The SVG needs Graphviz's ``dot``; without it the page still counts, from the generated definitions."""
    directory = tmp_path_factory.mktemp("inspector-no-dot")
    server = Server(directory, database_url=None, env={}, password_hash=hash_password(PASSWORD), name="no-dot")
    server._env["PATH"] = str(directory)  # the server runs by its absolute path; `dot` is nowhere to be found
    context = chromium.new_context()
    try:
        server.start()
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{server.base_url}/api/inspector")
        inspector = Inspector(page, server, errors)
        inspector.log_in(server.create_user(admin=True)[0])
        inspector.live()
        page.get_by_test_id("rates").wait_for(state="attached")
        assert page.locator("#view svg").count() == 0
        assert page.locator("ul.states li").count() > 0
        active = inspector.count("session", "session_active")
        server.login()
        inspector.wait_count("session", "session_active", active + 1, timeout=5)
        assert errors == []
    finally:
        context.close()
        server.close()
