"""Every contract path of docs/http-api.md is routed, and no route answers malformed input with a 500.

The table below is written out literally from docs/http-api.md on purpose: a route
that goes missing (the 404-by-omission this project was born from) fails here
by name, not somewhere downstream.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.routes import ASGIRoute, HTTPRoute, WebSocketRoute
from litestar.testing import TestClient

from sessionflow.api import problems
from sessionflow.api.app import create_app
from sessionflow.lifecycle import ManualClock
from sessionflow.persistence.users import create_user
from tests.integration.api.conftest import PROBLEM_JSON, Api, bearer, settings_for

# (method, path) exactly as docs/http-api.md lists them.
CONTRACT = [
    ("POST", "/api/session/create"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/refresh"),
    ("POST", "/api/auth/logout"),
    ("GET", "/api/session/{session_id}"),
    ("GET", "/api/session/{session_id}/history"),
    ("POST", "/api/session/{session_id}/events/{event}"),
    ("POST", "/api/session/{session_id}/ws-ticket"),
    ("GET", "/api/lifecycle/machines"),
    ("GET", "/api/lifecycle/machines/{name}"),
    ("GET", "/api/lifecycle/machines/{name}/diagram"),
    ("GET", "/api/lifecycle/close-codes"),
    ("GET", "/api/admin/sessions"),
    ("POST", "/api/admin/sessions/{session_id}/revoke"),
    ("POST", "/api/admin/users/{user_id}/revoke-sessions"),
    ("POST", "/api/admin/users/{user_id}/disable"),
    ("GET", "/api/health"),
    ("GET", "/api/ready"),
    ("GET", "/api/schema"),
    ("GET", "/api/auth/jwks"),
    ("GET", "/api/.well-known/openid-configuration"),
    ("POST", "/api/auth/introspect"),
    ("GET", "/api/auth/forward"),
]
ENTRIES = [
    pytest.param(method, path, id=f"{method} {path}")
    for method, path in [*CONTRACT, ("WEBSOCKET", "/api/ws"), ("WEBSOCKET", "/api/services/revocations")]
]


def _plain(path: str) -> str:
    """``/api/session/{session_id:uuid}`` -> ``/api/session/{session_id}``."""
    return re.sub(r"\{(\w+):[^}]+\}", r"{\1}", path)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Litestar]]:
    """An app whose routing is inspected; its (unmigrated) database is never used."""
    url = f"sqlite:///{tmp_path_factory.mktemp('routes') / 'unused.db'}"
    with TestClient(create_app(settings_for(url), clock=ManualClock(), run_sweeper=False)) as client:
        yield client


def routed(app: Litestar) -> dict[str, set[str]]:
    table: dict[str, set[str]] = {}
    for route in app.routes:
        path = _plain(route.path).rstrip("/") or "/"
        if isinstance(route, HTTPRoute):
            table.setdefault(path, set()).update(route.methods)
        elif isinstance(route, ASGIRoute):  # a raw route checks the method itself, and declares which
            table.setdefault(path, set()).update(route.route_handler.opt["methods"])
        elif isinstance(route, WebSocketRoute):
            table.setdefault(path, set()).add("WEBSOCKET")
    return table


@pytest.mark.parametrize(("method", "path"), ENTRIES)
def test_the_contract_path_is_routed_with_its_method(client: TestClient[Litestar], method: str, path: str) -> None:
    assert method in routed(client.app).get(path, set()), f"{method} {path} is not routed"


@pytest.mark.parametrize(
    ("method", "path"),
    [(m, p) for m, p in CONTRACT if p != "/api/schema"],
    ids=[f"{m} {p}" for m, p in CONTRACT if p != "/api/schema"],
)
def test_the_contract_path_is_in_the_openapi_document(client: TestClient[Litestar], method: str, path: str) -> None:
    document = client.get("/api/schema/openapi.json").json()
    assert method.lower() in document["paths"].get(path, {}), f"{method} {path} is missing from /api/schema"


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p in CONTRACT], ids=[f"{m} {p}" for m, p in CONTRACT])
def test_a_request_to_the_contract_path_reaches_a_handler(client: TestClient[Litestar], method: str, path: str) -> None:
    """Whatever the handler answers (401 without credentials, 503 on this unmigrated database), it is not
    the router's bare 404 or 405."""
    concrete = path.format(session_id=uuid.uuid4(), user_id=uuid.uuid4(), event="logout", name="session")
    response = client.request(method, concrete)
    assert response.status_code not in (404, 405) or response.json().get("code") not in (
        "not_found",
        "method_not_allowed",
    ), response.text


def test_openapi_is_served_under_api_schema(client: TestClient[Litestar]) -> None:
    assert client.get("/api/schema/openapi.json").status_code == 200
    assert client.get("/api/schema").status_code == 200


# -- malformed input never yields 500 ------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # with {session}, {user}, {event}, {name}
    fields: tuple[str, ...] = ()  # the JSON body fields it reads (junk bodies must be refused with 4xx)
    body_optional: bool = False  # no body (or null) is a valid request
    as_admin: bool = False

    def url(self, api: Api, holder: dict[str, Any], **override: str) -> str:
        values = {"session": holder["session_id"], "user": "", "event": "logout", "name": "session"} | override
        if "{user}" in self.path and "user" not in override:  # a throwaway user: junk may disable it
            values["user"] = str(
                create_user(api.ctx.db, f"u{uuid.uuid4().hex[:12]}", None, is_admin=False, now=api.clock.now()).id
            )
        return self.path.format(**values)


ROUTES = [
    Route("POST", "/api/session/create"),
    Route("POST", "/api/auth/login", fields=("username", "password")),
    Route("POST", "/api/auth/refresh", fields=("refresh_token",)),
    Route("POST", "/api/auth/logout"),
    Route("GET", "/api/session/{session}"),
    Route("GET", "/api/session/{session}/history"),
    Route("POST", "/api/session/{session}/events/{event}", fields=("reason",), body_optional=True),
    Route("POST", "/api/session/{session}/ws-ticket"),
    Route("GET", "/api/lifecycle/machines"),
    Route("GET", "/api/lifecycle/machines/{name}"),
    Route("GET", "/api/lifecycle/machines/{name}/diagram"),
    Route("GET", "/api/lifecycle/close-codes"),
    Route("GET", "/api/admin/sessions", as_admin=True),
    Route("POST", "/api/admin/sessions/{session}/revoke", fields=("reason",), body_optional=True, as_admin=True),
    Route("POST", "/api/admin/users/{user}/revoke-sessions", fields=("reason",), body_optional=True, as_admin=True),
    Route("POST", "/api/admin/users/{user}/disable", as_admin=True),
    Route("GET", "/api/auth/forward"),
    Route("GET", "/api/health"),
    Route("GET", "/api/ready"),
]

JSON = "application/json"
NUL = "\u0000"
# Whole bodies that are not the JSON a route wants.
JUNK_BODIES: list[tuple[str, bytes, str]] = [
    ("not_json", b"this is not json", JSON),
    ("truncated", b'{"username": "alice", "pass', JSON),
    ("empty", b"", JSON),
    ("null", b"null", JSON),
    ("array", b"[1, 2, 3]", JSON),
    ("number", b"42", JSON),
    ("string", b'"refresh_token"', JSON),
    ("unknown_fields", b'{"is_admin": true, "role": "admin", "user_id": "x"}', JSON),
    ("deep_nesting", b"[" * 5000 + b"]" * 5000, JSON),
    ("deep_nesting_object", b'{"a":' * 5000 + b"1" + b"}" * 5000, JSON),
    ("invalid_utf8", b'{"username": "\xff\xfe\xfd", "password": "\xc3\x28"}', JSON),
    ("nan", b'{"username": NaN, "refresh_token": Infinity, "reason": -Infinity}', JSON),
    (
        "bad_session_id",
        b'{"username": "alice", "password": "xxxxxxxx", "session_id": "not-a-uuid", "anonymous_token": "x"}',
        JSON,
    ),
    ("form_encoded", b"username=alice&password=secret", "application/x-www-form-urlencoded"),
    ("text_plain", b"hello", "text/plain"),
    ("too_large", b'{"username": "' + b"a" * 70_000 + b'"}', JSON),
]
# Junk values put into every field a route reads (raw JSON text, so lone surrogates can be written).
JUNK_VALUES: list[tuple[str, str]] = [
    ("wrong_type_number", "7"),
    ("wrong_type_list", "[]"),
    ("wrong_type_object", '{"$ne": null}'),
    ("huge_string", '"' + "a" * 20_000 + '"'),
    ("nul_character", r'"al\u0000ice-and-more"'),
    ("lone_surrogate", r'"\ud800-and-more"'),
    ("control_characters", r'"\u0001\u001b[31m\r\n-and-more"'),
    ("bidi_and_emoji", r'"\u202e\ud83d\ude00 alice"'),
]
JUNK_QUERIES: list[dict[str, str]] = [
    {"limit": "ten"},
    {"limit": "0"},
    {"limit": "99999999999999999999"},
    {"limit": "1e3"},
    {"after": "-1"},
    {"after": NUL},
    {"after": "9" * 40},
    {"state": NUL},
    {"state": "x" * 5000},
    {"user": NUL},
    {"user": "u" * 5000},
    {"format": NUL},
    {"format": "svg" * 1000},
]
JUNK_PATHS: list[dict[str, str]] = [
    {"session": "not-a-uuid"},
    {"session": "%00"},
    {"session": "0" * 5000},
    {"user": "not-a-uuid"},
    {"event": "e" * 5000},
    {"event": "%00"},
    {"event": "..%2F..%2Fetc%2Fpasswd"},
    {"name": "n" * 5000},
    {"name": "%00"},
]
JUNK_HEADERS: list[dict[str, str | bytes]] = [
    {"If-Match": NUL},
    {"If-Match": '"99999999999999999999"'},
    {"If-Match": '"' + "9" * 10 + '"'},
    {"Idempotency-Key": "k" * 10_000},
    {"Idempotency-Key": b"\xff\xfe"},
    {"X-Request-ID": "x" * 10_000},
    {"X-Request-ID": b"\xff\n"},
    {"Content-Type": "application/json; charset=ebcdic"},
]


def _problems(response: httpx.Response, what: str, *, must_refuse: bool) -> list[str]:
    status = response.status_code
    if status >= 500:
        return [f"{what}: {status} {response.text[:200]}"]
    if status >= 400 and not response.headers.get("content-type", "").startswith(PROBLEM_JSON):
        return [f"{what}: {status} is not a problem detail ({response.headers.get('content-type')})"]
    if must_refuse and status < 400:
        return [f"{what}: accepted with {status}"]
    return []


@pytest.mark.parametrize("route", ROUTES, ids=[f"{r.method} {r.path}" for r in ROUTES])
def test_malformed_input_is_4xx_never_500(make_api: Callable[..., Api], route: Route) -> None:
    """Junk bodies, query strings, path parameters and headers: 4xx problem details, never a 500.

    Routes that read a JSON body must refuse junk bodies; the others may ignore a body they do not read.
    """
    api = make_api(max_sessions_per_user=10_000)
    failures: list[str] = []

    def send(what: str, *, must_refuse: bool = False, path: dict[str, str] | None = None, **kwargs: Any) -> None:
        session = api.session_for(api.alice)  # fresh each time: some junk is accepted and may end the session
        headers = {
            **(api.admin_headers() if route.as_admin else bearer(session["access_token"])),
            **kwargs.pop("headers", {}),
        }
        response = api.client.request(route.method, route.url(api, session, **(path or {})), headers=headers, **kwargs)
        failures.extend(_problems(response, what, must_refuse=must_refuse))

    if route.method == "POST":
        for name, content, content_type in JUNK_BODIES:
            refuse = bool(route.fields) and not (route.body_optional and name in ("empty", "null"))
            send(f"body {name}", must_refuse=refuse, content=content, headers={"Content-Type": content_type})
    for name, value in JUNK_VALUES if route.fields else ():
        fields = "{" + ", ".join(f'"{field}": {value}' for field in route.fields) + "}"
        send(f"field value {name}", content=fields.encode(), headers={"Content-Type": JSON})
    for query in JUNK_QUERIES:
        send(f"query {query!r:.60}", params=query)
    for override in JUNK_PATHS:
        if any("{" + key + "}" in route.path for key in override):
            send(f"path {override!r:.60}", must_refuse=True, path=override)
    for header in JUNK_HEADERS:
        send(f"header {header!r:.60}", headers=header)
    assert not failures, "\n".join(failures)


def test_a_decoding_error_outside_request_parsing_is_still_a_bug() -> None:
    """Only Litestar's request decoding turns these into 400; raised in our code they remain a 500."""
    with pytest.raises(UnicodeDecodeError) as raised:
        b"\xff".decode()
    assert problems.MAPPING[UnicodeDecodeError](raised.value).status_code == 500
