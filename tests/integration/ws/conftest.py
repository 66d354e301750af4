"""Real servers for the WebSocket tests: ``python -m sessionflow.api.cli serve`` on a free loopback port.

:func:`make_server` (module scope) starts a server with its own environment
(a SQLite file in a temporary directory unless given a database URL, a shared
signing secret, short timers where a test needs them), waits for
``/api/health`` and stops it at teardown (SIGTERM, then kill), keeping its
output for assertions. A :class:`Server` knows how to make users, log in over
HTTP, get tickets, open WebSockets with the ``websockets`` client, and read
the database directly where the API does not say enough (close codes of
connection rows).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from sessionflow.api.passwords import hash_password
from sessionflow.persistence import queries
from sessionflow.persistence.database import Database
from sessionflow.persistence.models import Connection as ConnectionRow
from sessionflow.persistence.models import Session as SessionRow
from sessionflow.persistence.users import create_user

ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "ws-test-password-correct-horse"
SECRET = "ws-test-signing-secret-" + "s" * 48
ORIGIN = "https://app.example"
STARTUP_TIMEOUT = 30.0

# Every server: generous login limits and session caps (tests log in often from one address),
# a fast sweeper and a short reconnect grace, one allowed Origin.
BASE_ENV = {
    "JWT_SECRET": SECRET,
    "LOGIN_LIMIT_PER_USER": "1000",
    "LOGIN_LIMIT_PER_ADDRESS": "10000",
    "MAX_SESSIONS_PER_USER": "1000",
    "SWEEP_INTERVAL": "0.1",
    "SESSION_RECONNECT_GRACE": "1",
    "ALLOWED_ORIGINS": ORIGIN,
    "LOG_LEVEL": "info",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], Any], *, timeout: float = 5.0, interval: float = 0.02, what: str = "condition"
) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned), or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"{what} not reached within {timeout} s (last value: {value!r})")
        time.sleep(interval)


@dataclass
class Login:
    """A logged-in session, as the login response gave it (tokens updated by :meth:`Server.refresh`)."""

    session_id: str
    access_token: str
    refresh_token: str
    username: str
    user_id: uuid.UUID

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@dataclass
class Closed:
    """How a connection ended, as the client saw it: the close frame and what arrived before it."""

    code: int | None
    reason: str
    messages: list[dict[str, Any]]
    at: float  # time.monotonic() when the close was seen


def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    message = ws.recv(timeout=timeout)
    assert isinstance(message, str), f"expected a text frame, got {message!r}"
    data: dict[str, Any] = json.loads(message)
    return data


def recv_type(
    ws: ClientConnection, kind: str, timeout: float = 5.0, *, skip: tuple[str, ...] = ("ping", "token_expiring")
) -> dict[str, Any]:
    """The next message of type ``kind``, skipping heartbeats and warnings; anything else fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        message = recv_json(ws, timeout=max(0.01, deadline - time.monotonic()))
        if message["type"] == kind:
            return message
        assert message["type"] in skip, f"expected {kind}, got {message}"


def answer_pings(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Answer every ping with a pong for ``seconds``; the pings. Any other message fails the test."""
    pings = []
    until = time.monotonic() + seconds
    while (remaining := until - time.monotonic()) > 0:
        try:
            message = recv_json(ws, timeout=remaining)
        except TimeoutError:
            break
        assert message["type"] == "ping", message
        pings.append(message)
        ws.send(json.dumps({"type": "pong"}))
    return pings


def expect_close(ws: ClientConnection, code: int, timeout: float = 5.0, *, reason: str | None = None) -> Closed:
    """Read until the server closes; assert the close code (and reason, if given). Messages before it are kept."""
    closed = wait_close(ws, timeout)
    assert closed.code == code, f"expected close {code}, got {closed.code} {closed.reason!r} after {closed.messages}"
    if reason is not None:
        assert closed.reason == reason, closed
    return closed


def wait_close(ws: ClientConnection, timeout: float = 5.0) -> Closed:
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"the server did not close within {timeout} s; received {messages}")
            try:
                message = ws.recv(timeout=remaining)
            except TimeoutError:
                continue
            messages.append(json.loads(message))
    except ConnectionClosed as exc:
        at = time.monotonic()
        if exc.rcvd is None:
            return Closed(None, "", messages, at)
        return Closed(exc.rcvd.code, exc.rcvd.reason, messages, at)


def abort(ws: ClientConnection) -> None:
    """Lose the connection without a close frame, as a crashed tab or a dead network would."""
    with contextlib.suppress(OSError):
        ws.socket.shutdown(socket.SHUT_RDWR)
    ws.socket.close()


class Server:
    """One ``sessionflow serve`` process, and the client helpers the tests use on it."""

    def __init__(
        self, directory: Path, *, database_url: str | None, env: dict[str, str], password_hash: str, name: str
    ) -> None:
        self.directory = directory
        self.name = name
        self.database_url = database_url or f"sqlite:///{directory / 'sessionflow.db'}"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/api/ws"
        self.log_path = directory / f"{name}.log"
        self._password_hash = password_hash
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONFLOW_")}
        self._env.update({f"SESSIONFLOW_{k}": v for k, v in {**BASE_ENV, **env}.items()})
        self._env["SESSIONFLOW_DATABASE_URL"] = self.database_url
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self.http = httpx.Client(base_url=self.base_url, trust_env=False, timeout=10)
        self.db: Database | None = None
        self._admin: Login | None = None

    # -- process ---------------------------------------------------------------------

    def start(self) -> Server:
        """Start the process and wait until it answers ``/api/health``."""
        self.spawn()
        return self.wait_ready()

    def spawn(self) -> None:
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sessionflow.api.cli", "serve", "--port", str(self.port)],
                env=self._env,
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> Server:
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                if self.http.get("/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.process.poll() is not None:
                pytest.fail(f"server {self.name} exited with {self.process.returncode}:\n{self.output()}")
            if time.monotonic() >= deadline:
                pytest.fail(
                    f"server {self.name} did not answer /api/health within {STARTUP_TIMEOUT} s:\n{self.output()}"
                )
            time.sleep(0.05)
        if self.db is None:
            self.db = Database.from_url(self.database_url, pool_size=2)  # migrated by serve
        return self

    def stop(self, *, timeout: float = 15.0) -> int | None:
        """SIGTERM, then kill after ``timeout``; the exit status."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_with_workers(process)
        return process.returncode

    def kill(self) -> None:
        """SIGKILL the server and its worker processes (granian's children): a crash, nothing cleaned up."""
        assert self.process is not None
        _kill_with_workers(self.process)

    def close(self) -> None:
        self.stop()
        self.http.close()
        if self.db is not None:
            self.db.dispose()
            self.db = None

    def output(self, *, all_runs: bool = True) -> str:
        """What the server printed (this run only with ``all_runs=False``)."""
        data = self.log_path.read_bytes() if self.log_path.exists() else b""
        return data[0 if all_runs else self._log_offset :].decode(errors="replace")

    # -- users and sessions over HTTP ----------------------------------------------------

    def create_user(self, *, admin: bool = False) -> tuple[str, uuid.UUID]:
        """A new user (directly in the database: the password hash is computed once per run)."""
        assert self.db is not None
        name = f"{'admin' if admin else 'user'}-{uuid.uuid4().hex[:10]}"
        created = create_user(self.db, name, self._password_hash, is_admin=admin, now=datetime.now(UTC))
        return name, created.id

    def login(self, username: str | None = None, *, admin: bool = False, **extra: Any) -> Login:
        """Log in over HTTP (a new user unless ``username`` is given)."""
        if username is None:
            username, _ = self.create_user(admin=admin)
        response = self.http.post("/api/auth/login", json={"username": username, "password": PASSWORD, **extra})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["state"] == "session_active", body
        user_id = self.session(body["session_id"], {"Authorization": f"Bearer {body['access_token']}"})["user_id"]
        return Login(body["session_id"], body["access_token"], body["refresh_token"], username, uuid.UUID(user_id))

    def admin(self) -> Login:
        """This server's admin session (one per server)."""
        if self._admin is None:
            self._admin = self.login(admin=True)
        return self._admin

    def ticket(self, login: Login) -> str:
        response = self.http.post(f"/api/session/{login.session_id}/ws-ticket", headers=login.headers)
        assert response.status_code == 201, response.text
        ticket: str = response.json()["ticket"]
        return ticket

    def refresh(self, login: Login) -> dict[str, Any]:
        """Rotate ``login``'s tokens over HTTP (fires ``refresh``); ``login`` gets the new ones."""
        response = self.http.post("/api/auth/refresh", json={"refresh_token": login.refresh_token})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        login.access_token, login.refresh_token = body["access_token"], body["refresh_token"]
        return body

    def logout(self, login: Login) -> httpx.Response:
        return self.http.post("/api/auth/logout", headers=login.headers)

    def revoke(self, session_id: str) -> httpx.Response:
        return self.http.post(
            f"/api/admin/sessions/{session_id}/revoke", headers=self.admin().headers, json={"reason": "ws test"}
        )

    def session(self, session_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        """GET /api/session/{id} (as the admin unless ``headers`` are given)."""
        response = self.http.get(f"/api/session/{session_id}", headers=headers or self.admin().headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def history(self, session_id: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """GET /api/session/{id}/history (as the admin unless ``headers`` are given): every item, oldest first."""
        response = self.http.get(f"/api/session/{session_id}/history", headers=headers or self.admin().headers)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    # -- the database, read directly -------------------------------------------------------

    def state(self, session_id: str) -> str:
        assert self.db is not None
        s = SessionRow.__table__.c
        with self.db.engine.connect() as connection:
            return str(connection.execute(select(s.state).where(s.id == uuid.UUID(session_id))).scalar_one())

    def events(self, session_id: str) -> list[str]:
        """The session's events from the history table, oldest first."""
        assert self.db is not None
        return [
            e.event
            for e in queries.history(self.db, "session", uuid.UUID(session_id), after_seq=0, limit=queries.MAX_PAGE)
        ]

    def connection(self, connection_id: str) -> dict[str, Any]:
        assert self.db is not None
        c = ConnectionRow.__table__.c
        with self.db.engine.connect() as connection:
            row = connection.execute(
                select(c.state, c.close_code, c.close_reason, c.session_id, c.worker_id, c.last_heartbeat_at).where(
                    c.id == uuid.UUID(connection_id)
                )
            ).one()
        return dict(row._mapping)

    def wait_state(self, session_id: str, state: str, timeout: float = 5.0) -> None:
        wait_until(lambda: self.state(session_id) == state, timeout=timeout, what=f"session state {state}")

    def wait_connection(
        self, connection_id: str, state: str, timeout: float = 5.0, *, close_recorded: bool = True
    ) -> dict[str, Any]:
        """The connection's row once it is in ``state`` and, unless told otherwise, its close code is recorded.

        The state and the code can arrive in two transactions: when a silent connection's heartbeat timer
        fires in the sweeper just before its handler records the close, the row is ``dropped`` first and
        gets the code the client was sent a moment later. Only a dead worker's connections get no code.
        """
        row: dict[str, Any] = wait_until(
            lambda: (
                (r := self.connection(connection_id))["state"] == state
                and (r["close_code"] is not None or not close_recorded)
                and r
            ),
            timeout=timeout,
            what=f"connection state {state}" + (" with its close code" if close_recorded else ""),
        )
        return row

    # -- WebSockets ---------------------------------------------------------------------------

    def connect(
        self,
        login: Login | None = None,
        *,
        ticket: str | None = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        origin: str | None = None,
    ) -> ClientConnection:
        """Open ``/api/ws`` (with a new ticket of ``login`` if given); use as a context manager."""
        params = dict(query or {})
        if login is not None and ticket is None:
            ticket = self.ticket(login)
        if ticket is not None:
            params["ticket"] = ticket
        url = self.ws_url + ("?" + str(httpx.QueryParams(params)) if params else "")
        return ws_connect(
            url,
            additional_headers=headers,
            origin=origin,
            proxy=None,
            ping_interval=None,  # the protocol's own heartbeat is under test, not websockets' pings
            open_timeout=5,
            close_timeout=3,
            compression=None,
        )


@pytest.fixture(scope="session")
def password_hash() -> str:
    """The argon2id hash of :data:`PASSWORD`, computed once per run."""
    return hash_password(PASSWORD)


@dataclass
class Servers:
    directory: Path
    password_hash: str
    started: list[Server] = field(default_factory=list)

    def __call__(self, name: str = "server", *, database_url: str | None = None, **env: str) -> Server:
        return self.many({name: env}, database_url=database_url)[name]

    def many(self, configs: dict[str, dict[str, str]], *, database_url: str | None = None) -> dict[str, Server]:
        """Start several servers at once (each name its own directory and, by default, its own SQLite file)."""
        servers = {}
        for name, env in configs.items():
            directory = self.directory / name
            directory.mkdir(exist_ok=True)
            server = Server(directory, database_url=database_url, env=env, password_hash=self.password_hash, name=name)
            self.started.append(server)
            server.spawn()
            servers[name] = server
        for server in servers.values():
            server.wait_ready()
        return servers


def worker_pids(pid: int) -> list[int]:
    """The processes serving for the ``sessionflow serve`` process ``pid`` (granian's workers, its children)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def _kill_with_workers(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``process``'s children, then ``process``: killing only the parent would orphan granian's workers."""
    with contextlib.suppress(OSError):
        for child in worker_pids(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
    process.kill()
    process.wait(timeout=10)


def _servers(directory: Path, password_hash: str) -> Iterator[Servers]:
    servers = Servers(directory, password_hash)
    try:
        yield servers
    finally:
        for server in servers.started:
            server.close()
    for server in servers.started:
        output = server.output()
        assert "Traceback" not in output, f"server {server.name} logged a traceback:\n{output}"


@pytest.fixture(scope="module")
def make_server(tmp_path_factory: pytest.TempPathFactory, password_hash: str) -> Iterator[Servers]:
    """Start servers for this module: ``make_server(name, WS_HEARTBEAT_INTERVAL="0.3", ...)`` (SESSIONFLOW_ implied).

    Each is stopped at module teardown; a traceback in any server's output fails the module.
    """
    yield from _servers(tmp_path_factory.mktemp("ws-servers"), password_hash)


@pytest.fixture(scope="session")
def _shared_servers(tmp_path_factory: pytest.TempPathFactory, password_hash: str) -> Iterator[Servers]:
    yield from _servers(tmp_path_factory.mktemp("ws-shared"), password_hash)


@pytest.fixture(scope="session")
def server(_shared_servers: Servers) -> Server:
    """One server with default settings (25 s heartbeat, 15 min tokens) for every module that needs nothing else.

    Every test logs in as a new user, so tests share nothing but the process; a 1 s reconnect grace and a
    fast sweeper (BASE_ENV) keep the timers quick.
    """
    return _shared_servers("default")
