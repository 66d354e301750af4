"""Browser credential mode: the refresh token in an HttpOnly cookie, CSRF checks on what it authenticates, CORS.

In-process: the cookie's attributes, the CSRF and Origin rules and the CORS
answers are decided by the app alone. A real headless Chromium exercises
the same paths end to end in tests/integration/browser/.
"""

from __future__ import annotations

from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any

import pytest

from tests.integration.api.conftest import PASSWORD, Api, assert_problem, bearer

OWN = "http://testserver.local"
APP = "http://app.example.test"
EVIL = "https://evil.example"
CSRF = {"X-Sessionflow-CSRF": "1"}


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api(allowed_origins=(APP,))


def _login(api: Api, **headers: str) -> Any:
    body = {"username": "alice", "password": PASSWORD, "refresh_cookie": True}
    return api.client.post("/api/auth/login", json=body, headers={"Origin": OWN, **CSRF, **headers})


def _cookie(response: Any) -> Any:
    jar: SimpleCookie = SimpleCookie()
    jar.load(response.headers["set-cookie"])
    return jar["sessionflow_refresh"]


def _with(cookie: str, **headers: str) -> dict[str, str]:
    """Headers as a browser sends them with the refresh cookie (the test client keeps no Secure cookie over http)."""
    return {"Cookie": f"sessionflow_refresh={cookie}", **headers}


def test_login_puts_the_refresh_token_in_a_cookie_page_scripts_cannot_read(api: Api) -> None:
    response = _login(api)
    assert response.status_code == 200, response.text
    assert response.json()["refresh_token"] is None
    assert response.json()["access_token"]
    cookie = _cookie(response)
    assert cookie.value.startswith("sfr_")
    assert (cookie["httponly"], cookie["secure"], cookie["samesite"].lower()) == (True, True, "strict")
    assert cookie["path"] == "/api/auth"
    assert cookie["max-age"] == str(int(api.ctx.settings.refresh_token_ttl.total_seconds()))


def test_refresh_with_the_cookie_rotates_it(api: Api) -> None:
    first = _cookie(_login(api)).value
    response = api.client.post("/api/auth/refresh", headers=_with(first, Origin=OWN, **CSRF))
    assert response.status_code == 200, response.text
    assert response.json()["refresh_token"] is None
    assert _cookie(response).value not in ("", first)


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"Origin": OWN}, "csrf_header_missing"),
        ({**CSRF}, "origin_not_allowed"),
        ({**CSRF, "Origin": EVIL}, "origin_not_allowed"),
    ],
    ids=["no-csrf-header", "no-origin", "another-site"],
)
def test_a_cookie_refresh_without_the_csrf_header_or_from_another_site_is_refused(
    api: Api, headers: dict[str, str], code: str
) -> None:
    cookie = _cookie(_login(api)).value
    refused = api.client.post("/api/auth/refresh", headers=_with(cookie, **headers))
    assert_problem(refused, 403, code)
    assert "set-cookie" not in refused.headers
    assert api.client.post("/api/auth/refresh", headers=_with(cookie, Origin=OWN, **CSRF)).status_code == 200


def test_a_cross_site_form_post_is_refused(api: Api) -> None:
    """What another site's <form method=post> makes the browser send: the cookie, its Origin, no custom header."""
    cookie = _cookie(_login(api)).value
    form = {"Origin": EVIL, "Content-Type": "application/x-www-form-urlencoded"}
    refresh = api.client.post("/api/auth/refresh", headers=_with(cookie, **form))
    assert_problem(refresh, 403, "csrf_header_missing")
    logout = api.client.post("/api/auth/logout", headers=_with(cookie, **form))
    assert_problem(logout, 403, "csrf_header_missing")
    assert api.client.post("/api/auth/refresh", headers=_with(cookie, Origin=OWN, **CSRF)).status_code == 200


def test_an_allowed_app_on_another_origin_may_refresh_with_the_cookie(api: Api) -> None:
    cookie = _cookie(_login(api)).value
    response = api.client.post("/api/auth/refresh", headers=_with(cookie, Origin=APP, **CSRF))
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["access-control-allow-credentials"] == "true"


def test_a_login_asking_for_the_cookie_needs_the_csrf_header(api: Api) -> None:
    body = {"username": "alice", "password": PASSWORD, "refresh_cookie": True}
    assert_problem(api.client.post("/api/auth/login", json=body, headers={"Origin": OWN}), 403, "csrf_header_missing")


def test_json_body_tokens_keep_working_without_a_cookie(api: Api) -> None:
    login = api.login()
    assert login["refresh_token"].startswith("sfr_")
    refreshed = api.client.post("/api/auth/refresh", json={"refresh_token": login["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["refresh_token"].startswith("sfr_")
    assert "set-cookie" not in refreshed.headers


def test_logout_ends_the_session_and_clears_the_cookie(api: Api) -> None:
    login = _login(api)
    access, cookie = login.json()["access_token"], _cookie(login).value
    response = api.client.post("/api/auth/logout", headers=_with(cookie, **bearer(access), Origin=OWN, **CSRF))
    assert response.status_code == 200, response.text
    assert _cookie(response)["max-age"] == "0"
    assert_problem(
        api.client.post("/api/auth/refresh", headers=_with(cookie, Origin=OWN, **CSRF)), 401, "session_closed"
    )


def test_a_page_that_lost_its_access_token_logs_out_with_the_cookie(api: Api) -> None:
    login = _login(api)
    session_id, cookie = login.json()["session_id"], _cookie(login).value
    response = api.client.post("/api/auth/logout", headers=_with(cookie, Origin=OWN, **CSRF))
    assert response.status_code == 200, response.text
    assert response.json() == {"session_id": session_id, "state": "closed"}


def test_cors_answers_allowed_origins_only(api: Api) -> None:
    """Refused origins get no CORS headers at all, so their scripts cannot read a response."""
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-sessionflow-csrf"}
    allowed = api.client.options("/api/auth/refresh", headers={"Origin": APP, **preflight})
    assert allowed.status_code in (200, 204)
    assert allowed.headers["access-control-allow-origin"] == APP
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "x-sessionflow-csrf" in allowed.headers["access-control-allow-headers"].lower()
    refused = api.client.options("/api/auth/refresh", headers={"Origin": EVIL, **preflight})
    assert "access-control-allow-origin" not in refused.headers
    plain = api.client.get("/api/health", headers={"Origin": EVIL})
    assert "access-control-allow-origin" not in plain.headers


@pytest.mark.parametrize(("host", "secure"), [("localhost:8000", False), ("sessions.example.com", True)])
def test_secure_is_relaxed_only_for_a_loopback_host(make_api: Callable[..., Api], host: str, secure: bool) -> None:
    api = make_api(refresh_cookie_secure=False)
    body = {"username": "alice", "password": PASSWORD, "refresh_cookie": True}
    response = api.client.post("/api/auth/login", json=body, headers={"Host": host, "Origin": f"http://{host}", **CSRF})
    assert response.status_code == 200, response.text
    assert bool(_cookie(response)["secure"]) is secure
