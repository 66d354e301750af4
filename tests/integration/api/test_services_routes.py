"""The routes other services use: JWKS and discovery, introspection for registered services, ForwardAuth."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import jwt

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
