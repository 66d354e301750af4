"""The routes other services use: JWKS and discovery, introspection for registered services, ForwardAuth."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest
from litestar.exceptions import WebSocketDisconnect

from sessionflow.api.context import BEARER_REQUIRED
from sessionflow.persistence import services
from tests.integration.api.conftest import SECRET, Api, assert_problem, bearer


def basic(name: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{secret}".encode()).decode()}


def test_hs256_publishes_no_key_and_its_secret_appears_nowhere(api: Api) -> None:
    """A single HS256 service has nothing public to publish: the secret would let anyone sign."""
    jwks = api.client.get("/api/auth/jwks")
    assert jwks.status_code == 200
    assert jwks.json() == {"keys": []}
    discovery = api.client.get("/api/.well-known/openid-configuration")
    assert discovery.json()["jwks_uri"].endswith("/api/auth/jwks")
    assert SECRET not in jwks.text + discovery.text
    assert jwt.get_unverified_header(api.login()["access_token"])["kid"].startswith("hs-")


def test_eddsa_publishes_the_public_key_whose_kid_tokens_carry(make_api: Callable[..., Api], tmp_path: Path) -> None:
    api = make_api(jwt_algorithm="EdDSA", jwt_keys_dir=str(tmp_path / "keys"))
    keys = api.client.get("/api/auth/jwks").json()["keys"]
    assert [(key["kty"], key["crv"], key["alg"], "d" in key) for key in keys] == [("OKP", "Ed25519", "EdDSA", False)]
    assert jwt.get_unverified_header(api.login()["access_token"])["kid"] == keys[0]["kid"]
    assert [path.stat().st_mode & 0o777 for path in (tmp_path / "keys").iterdir()] == [0o600]


def test_introspection_answers_registered_services_only(api: Api) -> None:
    """No or wrong credentials: 401 with a Basic challenge. A removed service is refused once its cache lapses."""
    secret = services.register(api.ctx.db, "experience", now=api.clock.now())
    token = api.login()["access_token"]
    for headers in ({}, basic("experience", "sfs_wrong"), basic("nobody", secret), bearer(token)):
        refused = api.client.post("/api/auth/introspect", data={"token": token}, headers=headers)
        assert_problem(refused, 401, "service_unauthorized")
        assert refused.headers["www-authenticate"] == 'Basic realm="sessionflow services"'
    answer = api.client.post("/api/auth/introspect", data={"token": token}, headers=basic("experience", secret))
    assert answer.status_code == 200
    body = answer.json()
    assert body["active"] is True
    assert body["session_state"] == "session_active"
    assert body["sub"] == str(api.alice.id)
    assert set(body) == {"active", "sub", "sid", "exp", "iss", "aud", "token_type", "session_state"}

    api.client.post("/api/auth/logout", headers=bearer(token))
    answer = api.client.post("/api/auth/introspect", data={"token": token}, headers=basic("experience", secret))
    assert answer.json() == {"active": False, "code": "session_closed"}

    assert services.remove(api.ctx.db, "experience")
    api.ctx.services.cache_seconds = 0
    gone = api.client.post("/api/auth/introspect", data={"token": token}, headers=basic("experience", secret))
    assert_problem(gone, 401, "service_unauthorized")


def test_forward_auth_puts_the_user_and_session_in_headers_or_answers_the_apis_problem(api: Api) -> None:
    tokens = api.login()
    allowed = api.client.get("/api/auth/forward", headers=bearer(tokens["access_token"]))
    assert allowed.status_code == 200
    assert allowed.headers["x-sessionflow-user"] == str(api.alice.id)
    assert allowed.headers["x-sessionflow-session"] == tokens["session_id"]
    assert allowed.headers["x-sessionflow-state"] == "session_active"
    assert_problem(api.client.get("/api/auth/forward"), 401, "credentials_missing")
    api.client.post("/api/auth/logout", headers=bearer(tokens["access_token"]))
    refused = api.client.get("/api/auth/forward", headers=bearer(tokens["access_token"]))
    assert_problem(refused, 401, "session_closed")
    assert "x-sessionflow-user" not in refused.headers


def test_forward_auth_refuses_an_anonymous_session_other_methods_and_websockets(api: Api) -> None:
    """ForwardAuth is a raw ASGI route that checks what Litestar's router would: the same problems."""
    anonymous = api.create_anonymous()
    assert_problem(
        api.client.get("/api/auth/forward", headers=bearer(anonymous["anonymous_token"])),
        409,
        "session_not_connectable",
    )
    token = api.login()["access_token"]
    for method in ("POST", "PUT", "DELETE", "HEAD"):
        refused = api.client.request(method, "/api/auth/forward", headers=bearer(token))
        assert refused.status_code == 405, (method, refused.status_code)
        assert refused.headers["allow"] == "GET"
        if method != "HEAD":
            assert_problem(refused, 405, "method_not_allowed")
    closes = []
    for path in ("/api/auth/forward", "/api/health"):  # a WebSocket is refused as on any HTTP route
        with pytest.raises(WebSocketDisconnect) as refusal, api.client.websocket_connect(path) as socket:
            socket.receive_text()
        closes.append(refusal.value.code)
    assert closes[0] == closes[1]


def test_forward_auth_is_described_in_the_openapi_document(api: Api) -> None:
    """The raw route's entry comes from its documentation twin: bearer security, the three headers, problems."""
    operation = api.client.get("/api/schema/openapi.json").json()["paths"]["/api/auth/forward"]["get"]
    assert operation["security"] == BEARER_REQUIRED
    assert set(operation["responses"]["200"]["headers"]) == {
        "X-Sessionflow-User",
        "X-Sessionflow-Session",
        "X-Sessionflow-State",
    }
    assert {"401", "409", "503"} <= set(operation["responses"])


def test_introspection_reads_only_a_bounded_utf8_form_and_answers_each_refusal_with_its_problem(api: Api) -> None:
    """The raw route reads its form itself: the same refusals Litestar gives elsewhere, nothing stored."""
    secret = services.register(api.ctx.db, "experience", now=api.clock.now())
    login = api.login()
    token = login["access_token"]
    headers = basic("experience", secret) | {"Content-Type": "application/x-www-form-urlencoded"}

    def post(body: bytes, **extra: str) -> httpx.Response:
        return api.client.post("/api/auth/introspect", content=body, headers=headers | extra)

    extra_fields = f"client_id=web&token={token}&token_type_hint=access_token&x=1".encode()
    assert post(extra_fields).json()["active"] is True  # a hint and fields it does not read are ignored
    assert post(b"").json() == {"active": False, "code": "token_malformed"}
    assert_problem(post(f"token={token}&token=other".encode()), 400, "invalid_request")
    assert_problem(post(b"token=\xff\xfe"), 400, "invalid_request")
    assert_problem(post(b"&".join(b"f%d=1" % n for n in range(40))), 400, "invalid_request")
    assert_problem(post(b"token=" + b"a" * 9000), 413, "payload_too_large")
    assert_problem(
        post(f'{{"token": "{token}"}}'.encode(), **{"Content-Type": "application/json"}), 415, "unsupported_media_type"
    )
    refused = api.client.get("/api/auth/introspect", headers=headers)
    assert_problem(refused, 405, "method_not_allowed")
    assert refused.headers["allow"] == "POST"
    assert api.ctx.service.get("session", login["session_id"]).state == "session_active"


def test_introspection_is_described_in_the_openapi_document(api: Api) -> None:
    operation = api.client.get("/api/schema/openapi.json").json()["paths"]["/api/auth/introspect"]["post"]
    form = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert form == {"$ref": "#/components/schemas/IntrospectionRequest"}
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Introspection"
    }
    assert {"400", "401", "503"} <= set(operation["responses"])
