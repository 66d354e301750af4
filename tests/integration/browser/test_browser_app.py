"""The example app and the TypeScript client, in a real headless Chromium, against a real ``sessionflow serve``.

Each test gets its own browser context (its own cookie jar, like a separate
browser profile) and its own server process when it restarts or stops one.
The app is served from ``http://localhost:<app port>``, the API from
``http://localhost:<api port>``: another origin on the server's allowlist, the
same site, so the refresh cookie travels and CORS is exercised throughout.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from sessionflow.api.passwords import hash_password
from sessionflow.persistence import queries, users
from tests.integration.ws.conftest import PASSWORD, Server, Servers, _servers

pytestmark = pytest.mark.slow

PROMPTLY = 1.0  # seconds: logout in one tab to the others' sockets closing
TOKEN_TTL = 12  # seconds of access-token life where the test watches refreshes


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    yield from _servers(tmp_path_factory.mktemp("browser-servers"), hash_password(PASSWORD))


@dataclass
class Tab:
    """One page of the example app, with what it sent: its WebSocket handshakes and refresh requests."""

    page: Any
    sockets: list[str] = field(default_factory=list)
    refreshes: list[float] = field(default_factory=list)

    def idle(self, seconds: float) -> None:
        """Let ``seconds`` pass while Playwright delivers the browser's events (a plain sleep would hold them)."""
        self.page.wait_for_timeout(seconds * 1000)

    def saw(self, url: str) -> None:
        if url.endswith("/api/auth/refresh"):
            self.refreshes.append(time.monotonic())

    def text(self, testid: str) -> str:
        return str(self.page.get_by_test_id(testid).inner_text())

    def wait_text(self, testid: str, text: str, timeout: float = 10.0) -> None:
        self.page.wait_for_function(
            '([id, text]) => document.querySelector(`[data-testid="${id}"]`)?.textContent.includes(text)',
            arg=[testid, text],
            timeout=timeout * 1000,
        )

    def log_in(self, username: str) -> None:
        self.page.get_by_test_id("username").fill(username)
        self.page.get_by_test_id("password").fill(PASSWORD)
        self.page.get_by_test_id("login").click()

    def closes(self) -> list[dict[str, Any]]:
        """The WebSocket closes the page saw: code and wall-clock time (ms), as the page's own clock read them."""
        closes: list[dict[str, Any]] = self.page.evaluate("window.__closes")
        return closes

    def moves(self) -> list[dict[str, Any]]:
        """The client machine's moves since the page loaded, as the client emitted them."""
        moves: list[dict[str, Any]] = self.page.evaluate("window.__moves")
        return moves


@dataclass
class App:
    """The example app on one server, in one browser context (one profile: its tabs share the cookie)."""

    server: Server
    context: Any
    url: str
    tabs: list[Tab] = field(default_factory=list)

    def open(self) -> Tab:
        page = self.context.new_page()
        tab = Tab(page)
        page.on("websocket", lambda ws: tab.sockets.append(ws.url))
        page.on(
            "request",
            lambda request: (
                tab.refreshes.append(time.monotonic()) if request.url.endswith("/api/auth/refresh") else None
            ),
        )
        # Record every move of the client machine from the moment the app creates its client.
        page.add_init_script(
            """
            window.__moves = [];
            window.__closes = [];
            const Native = window.WebSocket;
            window.WebSocket = class extends Native {
              constructor(...args) {
                super(...args);
                this.addEventListener("close", (e) => window.__closes.push({ code: e.code, at: Date.now() }));
              }
            };
            let current;
            Object.defineProperty(window, "sessionflow", {
              configurable: true,
              get() { return current; },
              set(client) {
                current = client;
                client.on("state", (m) => window.__moves.push({
                  event: m.event, from: m.from, to: m.to, code: m.closeCode ?? null, reason: m.reason ?? "",
                  delay: m.delay ? m.delay.seconds : null, at: performance.now() / 1000,
                }));
              },
            });
            """
        )
        page.goto(self.url)
        page.get_by_test_id("message").wait_for()
        self.tabs.append(tab)
        return tab


@pytest.fixture
def make_app(
    chromium: Any, app_origin: str, servers: Servers, request: pytest.FixtureRequest
) -> Iterator[Callable[..., App]]:
    contexts: list[Any] = []

    def make(server: Server | None = None, *, origin: str | None = None, **env: str) -> App:
        server = server or servers(f"browser-{request.node.name[:40]}", ALLOWED_ORIGINS=app_origin, **env)
        context = chromium.new_context()
        contexts.append(context)
        page_origin = origin or app_origin
        api = f"http://localhost:{server.port}"
        return App(server, context, f"{page_origin}/example/index.html?api={api}")

    yield make
    for context in contexts:
        context.close()


def _user(server: Server) -> str:
    name, _ = server.create_user()
    return name


def _sessions_of(server: Server, username: str) -> list[queries.SessionRow]:
    assert server.db is not None
    user_id = next(row.id for row in _users(server) if row.username == username)
    return queries.list_sessions(server.db, user_id=user_id)


def _users(server: Server) -> list[users.UserListing]:
    assert server.db is not None
    return users.listing(server.db)


def test_no_websocket_opens_before_login_and_one_opens_after(make_app: Callable[..., App]) -> None:
    app = make_app()
    tab = app.open()
    tab.wait_text("message", "Logged out")
    tab.idle(1)  # time enough for a client that connects on page load to have done so
    assert tab.sockets == []
    username = _user(app.server)
    tab.log_in(username)
    tab.wait_text("socket-state", "open")
    tab.wait_text("session-state", "ws_connected")
    assert len(tab.sockets) == 1
    assert "ticket=sft_" in tab.sockets[0]
    (session,) = _sessions_of(app.server, username)
    assert session.state == "ws_connected"


def test_the_refresh_cookie_is_invisible_to_page_scripts(make_app: Callable[..., App]) -> None:
    app = make_app()
    tab = app.open()
    tab.log_in(_user(app.server))
    tab.wait_text("socket-state", "open")
    assert "sessionflow_refresh" not in tab.page.evaluate("document.cookie")
    (cookie,) = [c for c in app.context.cookies() if c["name"] == "sessionflow_refresh"]
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"], cookie["path"]) == (
        True,
        True,
        "Strict",
        "/api/auth",
    )
    assert "sessionflow_refresh" not in tab.page.evaluate(
        "JSON.stringify(localStorage) + JSON.stringify(sessionStorage)"
    )


def test_three_tabs_refresh_together_with_one_rotation_and_stay_connected(make_app: Callable[..., App]) -> None:
    """Short-lived access tokens: every expiry is one refresh request in all, whichever tab sends it."""
    app = make_app(ACCESS_TOKEN_TTL=str(TOKEN_TTL))
    first = app.open()
    username = _user(app.server)
    first.log_in(username)
    first.wait_text("socket-state", "open")
    tabs = [first, app.open(), app.open()]
    for tab in tabs:
        tab.wait_text("socket-state", "open")
    for tab in tabs:
        tab.refreshes.clear()
    watched = 2.5 * TOKEN_TTL
    first.idle(watched)
    times = sorted(t for tab in tabs for t in tab.refreshes)
    assert times, "nobody refreshed while the tokens expired"
    # One refresh per expiry: requests at least most of a token's refresh period apart, never a burst.
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap > 0.5 * TOKEN_TTL for gap in gaps), gaps
    assert len(times) <= watched / (0.8 * TOKEN_TTL) + 1
    (session,) = _sessions_of(app.server, username)
    assert app.server.db is not None
    events = [e.event for e in queries.history(app.server.db, "session", session.id, limit=500)]
    assert "revoke" not in events
    assert session.state == "ws_connected"
    for tab in tabs:
        assert tab.text("socket-state") == "open"
        assert tab.closes() == [], "every socket's credential followed the shared tokens (reauth): none closed 4419"


def test_logout_in_one_tab_closes_the_others_within_a_second_and_every_page_says_so(
    make_app: Callable[..., App],
) -> None:
    app = make_app()
    first = app.open()
    first.log_in(_user(app.server))
    first.wait_text("socket-state", "open")
    others = [app.open(), app.open()]
    for tab in others:
        tab.wait_text("socket-state", "open")
    first.page.bring_to_front()  # a person clicks in the tab they look at (background tabs' timers are throttled)
    clicked = first.page.evaluate("Date.now()")
    first.page.get_by_test_id("logout").click()
    for tab in others:
        tab.page.wait_for_function("window.__closes.length > 0", timeout=5000)
        (closed,) = tab.closes()
        assert closed["at"] - clicked < PROMPTLY * 1000, (closed, clicked)
        tab.wait_text("socket-state", "closed")
    for tab in [first, *others]:
        tab.wait_text("message", "Logged out")
        assert tab.page.get_by_test_id("login-form").is_visible()


def test_every_tab_resumes_after_a_server_restart(make_app: Callable[..., App], servers: Servers) -> None:
    app = make_app()
    tabs = [app.open()]
    tabs[0].log_in(_user(app.server))
    tabs[0].wait_text("socket-state", "open")
    tabs.append(app.open())
    tabs[1].wait_text("socket-state", "open")
    app.server.stop()
    for tab in tabs:
        tab.wait_text("socket-state", "reconnecting")
    app.server.start()
    for tab in tabs:
        tab.wait_text("socket-state", "open", timeout=20)
        welcomes = [m for m in tab.moves() if m["event"] == "welcome"]
        assert welcomes[-1]["reason"] == "recovered=true", welcomes


def test_a_server_down_for_twenty_seconds_gets_jittered_retries_and_a_reconnect(
    make_app: Callable[..., App],
) -> None:
    app = make_app()
    tab = app.open()
    tab.log_in(_user(app.server))
    tab.wait_text("socket-state", "open")
    app.server.stop()
    tab.idle(20)
    app.server.start()
    tab.wait_text("socket-state", "open", timeout=35)  # the backoff's 30 s cap, and the handshake
    waits = [m for m in tab.moves() if m["delay"] is not None]
    delays = [m["delay"] for m in waits]
    assert len(delays) >= 4, waits  # it kept trying through the outage
    assert all(0 <= delay <= 30 for delay in delays)
    ceilings = [min(30.0, 0.5 * 2**attempt) for attempt in range(len(delays))]
    assert all(delay <= ceiling + 0.01 for delay, ceiling in zip(delays, ceilings, strict=False)), delays
    # Full jitter draws each wait as a random fraction of its ceiling: without jitter every fraction would be
    # the same. (Comparing the waits themselves rounded to milliseconds failed once on a fair draw: 3.8872
    # and 3.8870 s under ceilings of 4 and 8 s.)
    fractions = [delay / ceiling for delay, ceiling in zip(delays, ceilings, strict=False)]
    assert len(set(fractions)) == len(fractions), f"jitter: no two waits the same fraction of their ceiling: {delays}"
    assert tab.moves()[-1]["to"] == "connected"


def test_a_revoked_session_says_log_in_again_and_sends_no_retry_storm(make_app: Callable[..., App]) -> None:
    app = make_app()
    tab = app.open()
    username = _user(app.server)
    tab.log_in(username)
    tab.wait_text("socket-state", "open")
    (session,) = _sessions_of(app.server, username)
    sockets, refreshes = len(tab.sockets), len(tab.refreshes)
    assert app.server.revoke(str(session.id)).status_code == 200
    tab.wait_text("message", "log in again")
    assert "revoked" in tab.text("message").lower()
    tab.idle(3)
    assert (len(tab.sockets), len(tab.refreshes)) == (sockets, refreshes)
    assert tab.moves()[-1]["to"] == "stopped"
    assert tab.moves()[-1]["code"] == 4403


def test_an_app_off_the_allowlist_is_refused(make_app: Callable[..., App], app_origin: str) -> None:
    """The same app from an origin the server does not list: the browser sees no CORS answer, so no login."""
    app = make_app(origin=app_origin.replace("localhost", "127.0.0.1"))
    tab = app.open()
    username = _user(app.server)
    tab.log_in(username)
    tab.wait_text("message", "Login refused")
    assert tab.sockets == []
    assert _sessions_of(app.server, username) == []
