"""AccessTokens remembers what it issued: the first use of a token this process issued is not decoded again."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from sessionflow.api.auth.keys import load_keys
from sessionflow.api.auth.tokens import AccessTokens
from sessionflow.api.errors import InvalidCredentials
from sessionflow.api.settings import Settings
from sessionflow.lifecycle import ManualClock
from sessionflow.middleware import claims

TTL = timedelta(minutes=15)


def _tokens(clock: ManualClock) -> AccessTokens:
    keys = load_keys(Settings.from_env({"SESSIONFLOW_JWT_SECRET": "s" * 40}))
    return AccessTokens(keys, issuer="sessionflow", audience="sessionflow", ttl=TTL, clock=clock)


@pytest.mark.parametrize("anonymous", [False, True])
def test_an_issued_token_verifies_without_decoding_to_what_decoding_gives(
    monkeypatch: pytest.MonkeyPatch, anonymous: bool
) -> None:
    clock = ManualClock()
    issuer, stranger = _tokens(clock), _tokens(clock)  # same key; the stranger has seen no token
    session_id = uuid.uuid4()
    if anonymous:
        token = issuer.issue_anonymous(session_id=session_id, ttl=TTL)
    else:
        token = issuer.issue(user_id=uuid.uuid4(), session_id=session_id, generation=3)
    decoded = stranger.verify(token)

    def no_decoding(*_: object, **__: object) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(claims, "verify", no_decoding)
    assert issuer.verify(token) == decoded
    with pytest.raises(AssertionError, match="decoded again"):
        _tokens(clock).verify(token)


def test_an_issued_token_still_expires() -> None:
    clock = ManualClock()
    tokens = _tokens(clock)
    token = tokens.issue(user_id=uuid.uuid4(), session_id=uuid.uuid4(), generation=1)
    clock.advance(TTL + timedelta(minutes=5))
    with pytest.raises(InvalidCredentials) as refused:
        tokens.verify(token)
    assert refused.value.code == "token_expired"
