"""The sample experience service, protected by the middleware in each mode, beside a real sessionflow.

HTTP and WebSocket are admitted or refused by one rule, with the API's
problems and close codes; logout and revocation reach each mode within its
documented bound (docs/services.md); with sessionflow down, checked mode
answers 503 at once and never lets a request through.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.exceptions import ConnectionClosed

from sessionflow.api.auth.keys import load_keys
from sessionflow.api.settings import Settings
from tests.integration.client.conftest import Server
from tests.integration.services.conftest import MODES, Experience, login
from tests.integration.services.experience import CACHE_SECONDS

MARGIN = 1.5  # scheduling on a shared, noisy machine


def until_refused(experience: Experience, token: str, within: float) -> dict[str, Any]:
    """Poll until ``token`` is refused; the problem. Fails if it is still admitted after ``within`` seconds."""
    start = time.monotonic()
    while True:
        response = experience.get(token)
        elapsed = time.monotonic() - start
        if response.status_code != 200:
            problem: dict[str, Any] = response.json()
            assert response.headers["content-type"] == "application/problem+json"
            return problem
        assert elapsed < within, f"{experience.mode}: still admitted after {elapsed:.1f}s"
        time.sleep(0.1)


def forged(server: Server, claims: dict[str, Any], *, key: Any = None) -> str:
    """Claims signed with the server's own current key (from its key directory), or with ``key``."""
    keys = load_keys(Settings.from_env(server.env()))
    signing = keys.current
    return jwt.encode(claims, key or signing.signing_key, algorithm="EdDSA", headers={"kid": signing.kid})


@pytest.mark.parametrize("mode", MODES)
def test_a_live_session_is_admitted_on_http_and_websocket_with_its_user(
    server: Server, experiences: dict[str, Experience], mode: str
) -> None:
    """The handler gets the user and session; checked mode also knows the session's state."""
    tokens = login(server)
    user_id = jwt.decode(tokens["access_token"], options={"verify_signature": False})["sub"]
    response = experiences[mode].get(tokens["access_token"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["user_id"], body["session_id"]) == (user_id, tokens["session_id"])
    assert body["state"] == ("session_active" if mode == "checked" else None)
    assert experiences[mode].handshake(tokens["access_token"]) == {"user_id": user_id, "session_id": body["session_id"]}


@pytest.mark.parametrize("mode", MODES)
def test_forged_expired_and_foreign_tokens_are_refused_alike(
    server: Server, experiences: dict[str, Experience], mode: str
) -> None:
    """401 with the API's code over HTTP; the matching close code, after accept, over WebSocket."""
    claims = jwt.decode(login(server)["access_token"], options={"verify_signature": False})
    now = int(time.time())
    foreign_key = Ed25519PrivateKey.generate()
    cases = {
        "forged": (forged(server, claims, key=foreign_key), "token_invalid", 4401),
        "expired": (
            forged(server, claims | {"iat": now - 3600, "nbf": now - 3600, "exp": now - 60}),
            "token_expired",
            4419,
        ),
        "foreign": (forged(server, claims | {"iss": "https://elsewhere.example"}), "token_invalid", 4401),
        "missing": (None, "credentials_missing", 4401),
    }
    for name, (token, code, close_code) in cases.items():
        response = experiences[mode].get(token)
        assert (response.status_code, response.json()["code"]) == (401, code), name
        assert response.headers["www-authenticate"].startswith("Bearer ")
        assert experiences[mode].handshake(token) == close_code, name


def test_after_logout_each_mode_refuses_within_its_bound(server: Server, experiences: dict[str, Experience]) -> None:
    """Checked: within the cache time. Offline with the feed: at once, and its open WebSocket closes 4410.
    Offline alone: the token is honoured until it expires (the documented delay)."""
    tokens = login(server)
    token = tokens["access_token"]
    for mode in MODES:
        assert experiences[mode].get(token).status_code == 200  # checked mode caches this answer
    with experiences["push"].websocket(token) as socket:
        json.loads(socket.recv(timeout=5))
        asyncio.run(server.logout_with(token))
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=CACHE_SECONDS + MARGIN)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4410
    assert until_refused(experiences["checked"], token, within=CACHE_SECONDS + MARGIN)["code"] == "session_closed"
    assert until_refused(experiences["push"], token, within=MARGIN)["code"] == "session_closed"
    assert experiences["offline"].get(token).status_code == 200


def test_after_an_admin_revoke_checked_and_pushed_modes_refuse_within_their_bound(
    server: Server, experiences: dict[str, Experience]
) -> None:
    """Revoked: 401 session_revoked over HTTP, 4403 on the pushed mode's open WebSocket."""
    tokens = login(server)
    token = tokens["access_token"]
    assert experiences["checked"].get(token).status_code == 200
    with experiences["push"].websocket(token) as socket:
        json.loads(socket.recv(timeout=5))
        asyncio.run(server.admin_revoke(tokens["session_id"]))
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=CACHE_SECONDS + MARGIN)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4403
    assert until_refused(experiences["checked"], token, within=CACHE_SECONDS + MARGIN)["code"] == "session_revoked"
    assert experiences["checked"].handshake(token) == 4403


def test_with_sessionflow_down_checked_mode_answers_503_at_once_and_lets_nothing_through(
    server: Server, experiences: dict[str, Experience]
) -> None:
    """Never a pass, never a hang: 503 with a problem over HTTP, 4503 on a WebSocket; offline mode carries on."""
    token = login(server)["access_token"]
    never_seen = forged(server, jwt.decode(token, options={"verify_signature": False}) | {"jti": uuid.uuid4().hex})
    server.stop()
    try:
        start = time.monotonic()
        response = experiences["checked"].get(never_seen)
        assert time.monotonic() - start < 2.0 + MARGIN  # Checked's default timeout, and more: a refused connection
        assert response.status_code == 503
        assert response.json()["code"] == "sessionflow_unavailable"
        assert response.headers["retry-after"] == "1"
        assert experiences["checked"].handshake(never_seen) == 4503
        assert experiences["offline"].get(token).status_code == 200  # verified with the keys it holds
    finally:
        server.start()
