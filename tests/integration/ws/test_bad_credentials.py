"""The bad-token table of :mod:`tests.bad_tokens` on the WebSocket handshake (``Authorization: Bearer``).

The HTTP test expects 401 with each case's problem ``code``; the same
credential on ``/api/ws`` must complete the handshake and then close with the
code docs/protocol.md assigns: 4401 for every bad credential, 4419 for an expired
token or session (refreshable), 4403 revoked, 4410 closed, 4409 not
connectable. Never an HTTP rejection of the handshake, which browsers cannot
read (``websockets`` would raise ``InvalidStatus``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from websockets.exceptions import InvalidStatus

from sessionflow.api.app import build_context
from sessionflow.api.context import AppContext
from sessionflow.api.settings import Settings
from sessionflow.persistence import users
from tests.bad_tokens import BAD_TOKENS, BadToken, TokenContext, write_rsa_keys
from tests.integration.ws.conftest import SECRET, Server, Servers, expect_close

pytestmark = pytest.mark.slow

# The brief's mapping of problem codes to close codes, written out independently of the table's own.
CLOSE_CODE_FOR_PROBLEM = {
    "token_expired": 4419,
    "session_expired": 4419,
    "session_revoked": 4403,
    "session_closed": 4410,
    "session_not_connectable": 4409,
}


def expected_close_code(problem_code: str) -> int:
    return CLOSE_CODE_FOR_PROBLEM.get(problem_code, 4401)


@dataclass
class Target:
    """A running server and, in this process, an app context on its database with its keys."""

    server: Server
    ctx: AppContext
    user_id: uuid.UUID
    other_user_id: uuid.UUID

    def token_context(self) -> TokenContext:
        record = users.by_id(self.ctx.db, self.user_id)
        assert record is not None
        return TokenContext(self.ctx, self.user_id, self.other_user_id, self.ctx.flows.login_user(record))


@pytest.fixture(scope="module")
def targets(
    server: Server, make_server: Servers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Target]]:
    """The shared HS256 server and an RS256 one, each with two users and an app context in this process."""
    private, public = write_rsa_keys(tmp_path_factory.mktemp("rsa"))
    rs256 = {"JWT_ALGORITHM": "RS256", "JWT_PRIVATE_KEY_FILE": str(private), "JWT_PUBLIC_KEY_FILE": str(public)}
    servers = {"HS256": server, "RS256": make_server("RS256", **rs256)}
    result = {}
    for algorithm, running in servers.items():
        overrides = {k.lower(): v for k, v in (rs256 if algorithm == "RS256" else {}).items()}
        settings = Settings.from_env(
            {},
            database_url=running.database_url,
            jwt_secret=SECRET,
            max_sessions_per_user=1000,
            pool_size=2,
            **overrides,
        )
        ctx = build_context(settings)
        (_, user_id), (_, other_id) = running.create_user(), running.create_user()
        result[algorithm] = Target(running, ctx, user_id, other_id)
    try:
        yield result
    finally:
        for target in result.values():
            target.ctx.db.dispose()


@pytest.mark.parametrize("case", BAD_TOKENS, ids=[c.name for c in BAD_TOKENS])
def test_bad_token_on_the_handshake_closes_with_its_code(targets: dict[str, Target], case: BadToken) -> None:
    target = targets[case.algorithm]
    tc = target.token_context()
    token = case.make(tc)
    header = case.authorization(token)
    expected = expected_close_code(case.code)
    assert case.close_code == expected, "tests/bad_tokens.py and docs/protocol.md disagree"

    try:
        with target.server.connect(headers=None if header is None else {"Authorization": header}) as ws:
            closed = expect_close(ws, expected)
    except InvalidStatus as exc:
        pytest.fail(f"the handshake was refused with HTTP {exc.response.status_code}; a close code is the contract")
    assert closed.messages == []  # no welcome
    assert closed.reason
    if token:
        assert token not in closed.reason  # the credential is never echoed

    # Only the bad credential was refused: the context's own token opens a connection.
    with target.server.connect(headers={"Authorization": f"Bearer {tc.token}"}) as ws:
        assert ws.recv(timeout=5)
