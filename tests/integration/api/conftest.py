"""Fixtures for in-process HTTP API tests: an app per test, on SQLite and PostgreSQL in turn.

Each test gets a fresh app on the ``db_url`` database with a :class:`ManualClock`,
a user ``alice`` and an admin ``root`` (both with :data:`PASSWORD`, hashed once per
run: argon2 is slow on purpose), and an :class:`Api` helper around Litestar's
``TestClient`` that logs in and builds bearer headers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from sessionflow.api.app import create_app
from sessionflow.api.auth.flows import Issued
from sessionflow.api.context import AppContext
from sessionflow.api.passwords import hash_password
from sessionflow.api.settings import Settings
from sessionflow.lifecycle import ManualClock
from sessionflow.persistence import users
from sessionflow.persistence.users import create_user

PASSWORD = "correct horse battery staple"
SECRET = "test-signing-secret-" + "x" * 64  # long enough for HS512 too (a bad-token case)
PROBLEM_JSON = "application/problem+json"


def settings_for(db_url: str, **overrides: Any) -> Settings:
    """Settings for a test app: nothing read from the environment, a fixed HS256 secret unless overridden."""
    values: dict[str, Any] = {"database_url": db_url, "jwt_secret": SECRET, "pool_size": 4}
    values.update(overrides)
    return Settings.from_env({}, **values)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem with ``status`` (and ``code``); returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers["content-type"]
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"] == f"urn:sessionflow:problem:{body['code']}"
    assert body["title"]
    if code is not None:
        assert body["code"] == code, body
    return body


@dataclass
class User:
    id: uuid.UUID
    name: str


@dataclass
class Api:
    """One app and its client, with the users created for the test."""

    app: Litestar
    client: TestClient[Litestar]
    clock: ManualClock
    alice: User
    admin: User
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ctx(self) -> AppContext:
        ctx: AppContext = self.app.state.ctx
        return ctx

    def login(self, username: str = "alice", password: str = PASSWORD, **extra: Any) -> dict[str, Any]:
        """Log in through the API (one argon2 verification); the token response."""
        response = self.client.post("/api/auth/login", json={"username": username, "password": password, **extra})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def issue(self, user: User) -> Issued:
        """Log ``user`` in without a password check (the login flow after verification): fast."""
        record = users.by_id(self.ctx.db, user.id)
        assert record is not None
        return self.ctx.flows.login_user(record)

    def session_for(self, user: User) -> dict[str, Any]:
        """A logged-in session of ``user``, shaped like the login response."""
        issued = self.issue(user)
        return {
            "session_id": str(issued.session_id),
            "access_token": issued.access_token,
            "refresh_token": issued.refresh_token,
            "state": issued.state,
        }

    def admin_headers(self) -> dict[str, str]:
        if "admin" not in self.tokens:
            self.tokens["admin"] = self.session_for(self.admin)
        return bearer(self.tokens["admin"]["access_token"])

    def admin_session_id(self) -> str:
        """The session behind :meth:`admin_headers`."""
        self.admin_headers()
        session_id: str = self.tokens["admin"]["session_id"]
        return session_id

    def create_anonymous(self) -> dict[str, Any]:
        response = self.client.post("/api/session/create")
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture(scope="session")
def password_hash() -> str:
    """The argon2id hash of :data:`PASSWORD`, computed once per run."""
    return hash_password(PASSWORD)


@pytest.fixture
def make_api(db_url: str, clock: ManualClock, password_hash: str) -> Iterator[Callable[..., Api]]:
    """Build apps on the test's database (several share it, like workers); every one is shut down at the end.

    The first call creates the users; later calls reuse them.
    """
    stack = ExitStack()
    made: dict[str, User] = {}

    def build(*, settings: Settings | None = None, **overrides: Any) -> Api:
        app = create_app(settings or settings_for(db_url, **overrides), clock=clock, run_sweeper=False)
        ctx: AppContext = app.state.ctx
        if not made:
            for name, is_admin in (("alice", False), ("root", True)):
                created = create_user(ctx.db, name, password_hash, is_admin=is_admin, now=clock.now())
                made[name] = User(created.id, created.username)
        client = stack.enter_context(TestClient(app))
        return Api(app, client, clock, made["alice"], made["root"])

    with stack:
        yield build


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    """The default app: default limits and TTLs, HS256 with a fixed secret."""
    return make_api()


@pytest.fixture
def unmigrated_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'empty.db'}"
