"""No credential or secret ever reaches a log record, at DEBUG, on any logger; request ids always do.

A whole session's life is run (create, a failed login, login, refresh, read, ticket, logout,
a reused refresh token) while every record of every logger is captured at DEBUG, rendered
with its arguments and any traceback, and searched for each secret the run handled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.api.conftest import PASSWORD, Api, bearer

# The loggers the app configures itself (they do not propagate), the root for everything else, and
# SQLAlchemy's, which sets its own level: at INFO it logs every statement (parameters hidden). At DEBUG it
# would also log result rows, password hashes included; that level is for debugging SQLAlchemy, not for use.
CAPTURED = {"": logging.DEBUG, "sessionflow": logging.DEBUG, "litestar": logging.DEBUG, "sqlalchemy": logging.INFO}


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self) -> Iterator[tuple[logging.LogRecord, str]]:
        """Each record fully rendered: message with its arguments, the raw arguments, traceback and stack."""
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        for record in self.records:
            parts = [
                formatter.format(record),
                repr(record.args),
                str(record.msg),
                record.exc_text or "",
                record.stack_info or "",
            ]
            parts += [
                repr(value)
                for key, value in vars(record).items()
                if key not in logging.LogRecord("", 0, "", 0, "", None, None).__dict__
            ]
            yield record, "\n".join(parts)


@pytest.fixture
def capture() -> Iterator[Capture]:
    handler = Capture()
    loggers = [logging.getLogger(name) for name in CAPTURED]
    levels = [logger.level for logger in loggers]
    for logger, level in zip(loggers, CAPTURED.values(), strict=True):
        logger.addHandler(handler)
        logger.setLevel(level)
    yield handler
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_a_whole_session_logs_no_secret_and_every_request_id(
    make_api: Callable[..., Api],
    password_hash: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    secret_file = tmp_path / "keys" / "sessionflow.secret"
    api = make_api(jwt_secret="", jwt_secret_file=str(secret_file))  # generated on start: its creation is logged
    capture: Capture = request.getfixturevalue("capture")  # attached after the app configured logging
    caplog.set_level(logging.DEBUG)
    client = api.client

    def call(
        method: str, path: str, rid: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> dict[str, object]:
        response = client.request(method, path, headers={"X-Request-ID": rid, **(headers or {})}, **kwargs)
        assert response.headers["x-request-id"] == rid
        body: dict[str, object] = response.json()
        return body

    anonymous = call("POST", "/api/session/create", "rid-create")
    failed = call(
        "POST", "/api/auth/login", "rid-failed-login", json={"username": "alice", "password": "not the password"}
    )
    assert failed["code"] == "login_failed"
    login = call(
        "POST",
        "/api/auth/login",
        "rid-login",
        json={
            "username": "alice",
            "password": PASSWORD,
            "session_id": anonymous["session_id"],
            "anonymous_token": anonymous["anonymous_token"],
        },
    )
    refreshed = call("POST", "/api/auth/refresh", "rid-refresh", json={"refresh_token": login["refresh_token"]})
    sid = refreshed["session_id"]
    call("GET", f"/api/session/{sid}", "rid-read", headers=bearer(str(refreshed["access_token"])))
    call("GET", f"/api/session/{sid}", "rid-stale", headers=bearer(str(login["access_token"])))  # 401, logged as such
    ticket = call("POST", f"/api/session/{sid}/ws-ticket", "rid-ticket", headers=bearer(str(refreshed["access_token"])))
    call("POST", "/api/auth/logout", "rid-logout", headers=bearer(str(refreshed["access_token"])))
    call(
        "POST", "/api/auth/refresh", "rid-reuse", json={"refresh_token": login["refresh_token"]}
    )  # after logout: refused

    secrets = {
        "password": PASSWORD,
        "wrong password": "not the password",
        "password hash": password_hash,
        "password hash digest": password_hash.rsplit("$", 1)[1],
        "signing secret": secret_file.read_text().strip(),
        "anonymous token": str(anonymous["anonymous_token"]),
        "access token": str(login["access_token"]),
        "refresh token": str(login["refresh_token"]),
        "refreshed access token": str(refreshed["access_token"]),
        "refreshed refresh token": str(refreshed["refresh_token"]),
        "ticket": str(ticket["ticket"]),
    }
    # Token signatures alone are secrets too (a header.payload prefix is not).
    secrets |= {
        f"{name} signature": value.rsplit(".", 1)[1] for name, value in list(secrets.items()) if value.count(".") == 2
    }

    records = list(capture.texts()) + [(r, r.getMessage() + repr(r.args)) for r in caplog.records]
    assert len(records) > 10, "nothing was logged: the capture is not attached where the app logs"
    leaks = [
        f"{name} in {record.name}: {text[:160]!r}"
        for record, text in records
        for name, value in secrets.items()
        if value in text
    ]
    assert not leaks, "\n".join(leaks)

    request_ids = {getattr(record, "request_id", None) for record, _ in records}
    for rid in (
        "rid-create",
        "rid-failed-login",
        "rid-login",
        "rid-refresh",
        "rid-read",
        "rid-stale",
        "rid-ticket",
        "rid-logout",
        "rid-reuse",
    ):
        assert rid in request_ids, f"no log record carries request id {rid}"
    assert any(r.name == "sessionflow.access" for r, _ in records), "the access log is silent"
    assert any(r.name.startswith("sqlalchemy.engine") for r, _ in records), "SQL statements were not captured"
    assert any(str(secret_file.parent) in text for _, text in records), (
        "the generated secret's location is logged, not its value"
    )
