"""A real ``sessionflow serve`` per test module, on SQLite, and helpers for driving the client against it.

Each module starts its own server with the timings it needs (heartbeats,
token lifetimes, caps) through ``SESSIONFLOW_*`` variables, on a free port.
Users ``alice`` and the admin ``root`` exist from the start. Backoff waits go
through :class:`Sleeps`, which records them and returns at once: no test
waits out a real backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from sessionflow.api.passwords import hash_password
from sessionflow.client import Client, ClientTransition, SessionTransition, Transition, Wire
from sessionflow.lifecycle import SystemClock
from sessionflow.persistence import migrate
from sessionflow.persistence.database import Database
from sessionflow.persistence.users import create_user

ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "correct horse battery staple"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """``python -m sessionflow.api.cli serve`` on a SQLite file; restartable on the same port and database."""

    directory: Path
    settings: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("SESSIONFLOW_")}
        env["SESSIONFLOW_DATABASE_URL"] = f"sqlite:///{self.directory / 'served.db'}"
        env.update(self.settings)
        return env

    def prepare(self) -> None:
        db = Database.from_url(self.env()["SESSIONFLOW_DATABASE_URL"], pool_size=1)
        try:
            migrate.upgrade(db)
            hashed = _password_hash()
            create_user(db, "alice", hashed, is_admin=False, now=SystemClock().now())
            create_user(db, "root", hashed, is_admin=True, now=SystemClock().now())
        finally:
            db.dispose()

    def start(self, **settings: str) -> None:
        self.settings.update(settings)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sessionflow.api.cli", "serve", "--port", str(self.port)],
                env=self.env(),
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/api/ready", timeout=2).status_code == 200:
                    return
            assert self.process.poll() is None, f"the server exited early:\n{self.tail()}"
            assert time.monotonic() < deadline, f"the server did not get ready:\n{self.tail()}"
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM: live WebSockets are closed with 1001, then the process exits."""
        process, self.process = self.process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""

    # Another party acting on a client's session, over plain HTTP.

    async def admin_revoke(self, session_id: str) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as http:
            login = await http.post("/api/auth/login", json={"username": "root", "password": PASSWORD})
            assert login.status_code == 200, login.text
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            revoked = await http.post(f"/api/admin/sessions/{session_id}/revoke", headers=headers)
            assert revoked.status_code == 200, revoked.text
            await http.post("/api/auth/logout", headers=headers)

    async def logout_with(self, access_token: str) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as http:
            response = await http.post("/api/auth/logout", headers={"Authorization": f"Bearer {access_token}"})
            assert response.status_code == 200, response.text


_HASH: list[str] = []


def _password_hash() -> str:
    if not _HASH:
        _HASH.append(hash_password(PASSWORD))  # argon2 is slow on purpose: once per run
    return _HASH[0]


BASE_SETTINGS = {
    "SESSIONFLOW_JWT_SECRET": "",  # filled per server
    "SESSIONFLOW_LOG_LEVEL": "warning",
    "SESSIONFLOW_LOGIN_LIMIT_PER_USER": "1000",
    "SESSIONFLOW_LOGIN_LIMIT_PER_ADDRESS": "1000",
    "SESSIONFLOW_MAX_SESSIONS_PER_USER": "1000",
}


@contextlib.contextmanager
def running_server(directory: Path, **settings: str) -> Iterator[Server]:
    server = Server(directory, {**BASE_SETTINGS, "SESSIONFLOW_JWT_SECRET": secrets.token_urlsafe(48), **settings})
    server.prepare()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def server_fixture(**settings: str) -> Any:
    """A module-scoped ``server`` fixture with these settings."""

    @pytest.fixture(scope="module")
    def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
        with running_server(tmp_path_factory.mktemp("server"), **settings) as running:
            yield running

    return server


# -- driving the client --------------------------------------------------------------------


class Sleeps:
    """The client's backoff sleep: records each wait, optionally runs ``then``, and returns without waiting."""

    def __init__(self, then: Callable[[float], Awaitable[None]] | None = None) -> None:
        self.delays: list[float] = []
        self.then = then

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.then is not None:
            await self.then(seconds)
        await asyncio.sleep(0)


@dataclass
class Trace:
    """What the client sent and received (as the trace hook describes it: no tokens, no ids)."""

    wires: list[Wire] = field(default_factory=list)

    def __call__(self, wire: Wire) -> None:
        self.wires.append(wire)

    def texts(self, kind: str | None = None) -> list[str]:
        return [w.text for w in self.wires if kind is None or w.kind == kind]


def moves(client: Client) -> list[tuple[str, str, str]]:
    """The client machine's moves so far: (event, source, dest)."""
    return [(t.event, t.source, t.dest) for t in client.history if isinstance(t, ClientTransition)]


def client_transitions(client: Client, event: str) -> list[ClientTransition]:
    return [t for t in client.history if isinstance(t, ClientTransition) and t.event == event]


def session_transitions(client: Client) -> list[SessionTransition]:
    return [t for t in client.history if isinstance(t, SessionTransition)]


async def until(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll ``predicate`` until it holds (real time: the server's own timers are real)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.02)


def run(coroutine: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    """Run one async test body, bounded in time."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def moved(client: Client, event: str, source: str | None = None) -> Callable[[], bool]:
    return lambda: any(
        t.event == event and (source is None or t.source == source) for t in client_transitions(client, event)
    )


def history_events(items: list[Transition]) -> list[str]:
    return [t.event for t in items]
