"""The bad-token table (:mod:`tests.bad_tokens`) presented to the experience service, over HTTP and WebSocket.

Checked mode refuses every case exactly as the API does: same status, same
problem code, the same close code after accept. Offline mode refuses the same
way every case the token alone decides; the cases only the session row can
decide (a revoked or superseded session, another user's sub) it admits, which
is its documented delay (docs/services.md).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sessionflow.api.app import build_context
from sessionflow.api.context import AppContext
from sessionflow.api.settings import Settings
from sessionflow.persistence import users
from tests.bad_tokens import BAD_TOKENS, EXPECTED_CLOSE_CODE, BadToken, TokenContext
from tests.integration.client.conftest import Server
from tests.integration.services.conftest import Experience

# The table's RS256-server cases and its cases signed with HS256 secrets need keys this EdDSA server has not;
# the same forgeries against EdDSA stand in for them.
HS256_SERVER_ONLY = {"hs256_wrong_key", "hs512_with_the_right_key"}
EDDSA_CASES = (
    BadToken(
        "eddsa_signed_with_another_key",
        "token_invalid",
        lambda tc: tc.sign(tc.claims, key=Ed25519PrivateKey.generate()),
    ),
    BadToken(
        "hs256_to_an_eddsa_server", "token_invalid", lambda tc: tc.sign(tc.claims, key=b"k" * 32, algorithm="HS256")
    ),
)
# What only the session row tells: offline mode admits these until the token expires.
ROW_DECIDED = {
    "sub_of_another_user",
    "unknown_sid",
    "revoked_session",
    "logged_out_session",
    "idle_expired_session",
    "old_generation_after_refresh",
    "future_generation",
}
# An anonymous token is not an access token: offline says so (the API, which can look it up, says superseded).
OFFLINE_CODE = {"anonymous_token_after_login": "token_invalid"}
CASES = [
    *(case for case in BAD_TOKENS if case.algorithm == "HS256" and case.name not in HS256_SERVER_ONLY),
    *EDDSA_CASES,
]


@pytest.fixture(scope="module")
def context(server: Server) -> Iterator[TokenContext]:
    """The server's own database and keys, opened from this process to make the cases' tokens."""
    app: AppContext = build_context(Settings.from_env(server.env()))
    alice, root = users.by_name(app.db, "alice"), users.by_name(app.db, "root")
    assert alice is not None
    assert root is not None
    try:
        yield TokenContext(app, alice.id, root.id, app.flows.login_user(alice))
    finally:
        app.db.dispose()


def _expected(mode: str, case: BadToken) -> str | None:
    """The problem code ``mode`` answers ``case`` with; None: admitted."""
    if mode == "offline":
        return None if case.name in ROW_DECIDED else OFFLINE_CODE.get(case.name, case.code)
    return case.code


@pytest.mark.parametrize("mode", ["checked", "offline"])
def test_the_bad_token_table_through_the_middleware(
    context: TokenContext, experiences: dict[str, Experience], mode: str
) -> None:
    experience = experiences[mode]
    failures = []
    for case in CASES:
        token = case.make(context)
        header = case.authorization(token)  # a real client cannot send trailing blanks
        response = experience.get(None, authorization=header.strip() if header else None)
        expected = _expected(mode, case)
        got = None if response.status_code == 200 else response.json().get("code")
        if got != expected or (expected is not None and response.status_code != 401):
            failures.append(f"{case.name}: HTTP {response.status_code} {got}, expected {expected}")
        if case.scheme == "Bearer":
            handshake = experience.handshake(token)
            want = "admitted" if expected is None else EXPECTED_CLOSE_CODE[expected]
            if (handshake if isinstance(handshake, int) else "admitted") != want:
                failures.append(f"{case.name}: WebSocket {handshake}, expected {want}")
    assert failures == []
