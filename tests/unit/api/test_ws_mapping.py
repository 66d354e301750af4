"""Errors to WebSocket close codes (docs/protocol.md): :func:`sessionflow.api.problems.close_code_for`, no socket.

The integration tests in tests/integration/ws provoke every code a server can
send over a real socket, except 4500: an unexpected error in the handler has
no honest trigger from outside (a test would have to plant a bug), so its
mapping is pinned here.
"""

from __future__ import annotations

import uuid

import pytest

from sessionflow.api.errors import AuthError, Forbidden, InvalidCredentials, NotConnectable, RateLimited
from sessionflow.api.problems import close_code_for, close_code_for_state
from sessionflow.lifecycle import SESSION, Access, EventRefused, access
from sessionflow.lifecycle.protocol import BY_CODE
from sessionflow.persistence.errors import InstanceNotFound, PersistenceError, StoreUnavailable
from tests.bad_tokens import EXPECTED_CLOSE_CODE

CREDENTIAL_CODES = {
    # every bad credential: log in again
    "credentials_missing": 4401,
    "token_malformed": 4401,
    "token_invalid": 4401,
    "token_superseded": 4401,
    "session_unknown": 4401,
    "ticket_invalid": 4401,
    "refresh_token_invalid": 4401,
    "refresh_token_reused": 4401,
    "login_failed": 4401,
    # the session's state decides
    "token_expired": 4419,
    "session_expired": 4419,
    "session_revoked": 4403,
    "session_closed": 4410,
    # the ticket ran out before use
    "ticket_expired": 4408,
}


@pytest.mark.parametrize(("code", "close_code"), sorted(CREDENTIAL_CODES.items()))
def test_each_credential_error_code_has_its_close_code(code: str, close_code: int) -> None:
    assert close_code_for(InvalidCredentials("refused", code=code)) == (close_code, "refused")


def test_an_unknown_auth_code_is_4401() -> None:
    assert close_code_for(InvalidCredentials("refused", code="something_new"))[0] == 4401
    assert close_code_for(AuthError("refused"))[0] == 4401
    assert close_code_for(Forbidden("not yours", code="something_new"))[0] == 4401


def test_a_missing_admin_role_is_4406() -> None:
    """Authenticated, but not an admin (the inspector's feed): a terminal code, not "log in again"."""
    assert close_code_for(Forbidden("admins only", code="admin_required"))[0] == 4406


def test_not_connectable_is_4409() -> None:
    assert close_code_for(NotConnectable("the session is anonymous: finish login first")) == (
        4409,
        "the session is anonymous: finish login first",
    )


def test_rate_limited_is_4429() -> None:
    assert close_code_for(RateLimited("slow down", retry_after=7))[0] == 4429


def test_the_reason_is_the_detail_cut_to_fit_a_close_frame() -> None:
    code, reason = close_code_for(InvalidCredentials("x" * 500, code="token_invalid"))
    assert code == 4401
    assert reason == "x" * 120


def test_store_unavailable_is_4503_without_the_database_error() -> None:
    error = StoreUnavailable("database error: OperationalError: database is locked at /srv/secret/path.db")
    assert close_code_for(error) == (4503, "store unavailable; reconnect with backoff")


@pytest.mark.parametrize(
    "error",
    [
        InstanceNotFound("session", uuid.uuid4()),
        PersistenceError("something broke"),
        RuntimeError("a bug"),
        KeyError("token=secret"),
    ],
    ids=["instance-not-found", "persistence-error", "runtime-error", "key-error"],
)
def test_anything_else_is_4500_server_error(error: Exception) -> None:
    """Never the error's own text: it may name internals."""
    assert close_code_for(error) == (4500, "server error")


# What the holder of a session in a state is told when its connection closes (docs/protocol.md).
CLOSE_CODE_FOR_ACCESS = {Access.LOGIN_PENDING: 4409, Access.REFRESHABLE: 4419, Access.ENDED: 4410, Access.REVOKED: 4403}


@pytest.mark.parametrize("state", SESSION.states)
def test_a_session_reaching_a_state_closes_its_sockets_with_the_code_of_its_declared_access(state: str) -> None:
    """Usable states keep connections; every other state closes them with its access's code, and a
    refused connect in that state gets the same code."""
    closing = close_code_for_state(state)
    refused = close_code_for(EventRefused("session", state, "connect", (), reason="not connectable"))
    if access(state) is Access.USABLE:
        assert closing is None
        assert refused == (4409, f"session is {state}")
    else:
        assert closing is not None
        assert closing[0] == CLOSE_CODE_FOR_ACCESS[access(state)]
        assert refused == closing


def test_every_mapped_code_is_in_the_design_table() -> None:
    produced = {close_code_for(InvalidCredentials("x", code=code))[0] for code in CREDENTIAL_CODES}
    produced |= {
        close_code_for(NotConnectable("x"))[0],
        close_code_for(RateLimited("x", retry_after=1))[0],
        close_code_for(StoreUnavailable("x"))[0],
        close_code_for(RuntimeError("x"))[0],
    }
    produced |= {
        close_code_for(EventRefused("session", s, "connect", (), reason="x"))[0]
        for s in ("closed", "revoked", "session_expired", "anonymous")
    }
    assert produced <= set(BY_CODE)
    assert produced == {4401, 4403, 4408, 4409, 4410, 4419, 4429, 4500, 4503}


def test_the_bad_token_table_agrees_with_the_server() -> None:
    """tests/bad_tokens.py's expected close codes are what the server's mapping gives."""
    for code, close_code in EXPECTED_CLOSE_CODE.items():
        assert close_code_for(InvalidCredentials("x", code=code))[0] == close_code, code
