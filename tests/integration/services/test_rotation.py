"""``sessionflow keys rotate`` on a running server: the new key signs, tokens of both keys stay live."""

from __future__ import annotations

import time

import httpx
import jwt

from tests.integration.client.conftest import Server
from tests.integration.services.conftest import Experience, cli, login


def kid(token: str) -> str:
    found = jwt.get_unverified_header(token)["kid"]
    assert isinstance(found, str)
    return found


def test_rotation_signs_with_the_new_key_while_tokens_of_the_old_one_keep_working(
    server: Server, experiences: dict[str, Experience]
) -> None:
    old = login(server)
    rotated = cli(server, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    deadline = time.monotonic() + 5  # the keyring looks at its directory once a second
    new = login(server)
    while kid(new["access_token"]) == kid(old["access_token"]):
        assert time.monotonic() < deadline, "the running server still signs with the old key"
        time.sleep(0.2)
        new = login(server)
    assert kid(new["access_token"]) in rotated.stdout

    published = httpx.get(f"{server.url}/api/auth/jwks", timeout=10).json()["keys"]
    assert {kid(old["access_token"]), kid(new["access_token"])} <= {key["kid"] for key in published}
    assert all(set(key) >= {"kty", "crv", "x", "kid", "alg", "use"} and "d" not in key for key in published)

    for tokens in (old, new):
        own = httpx.get(
            f"{server.url}/api/session/{tokens['session_id']}",
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
            timeout=10,
        )
        assert own.status_code == 200, own.text
        for mode, experience in experiences.items():
            assert experience.get(tokens["access_token"]).status_code == 200, mode  # offline refetches the keys
