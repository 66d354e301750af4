"""The claims rule of sessionflow access tokens, shared by the server and the services middleware.

A token is three base64url segments of at most 4096 characters, signed with
the key its ``kid`` names and that key's algorithm only; every claim of
:data:`REQUIRED` is present, ``iss``/``aud`` match, ``typ`` is expected, time
claims are integers checked with :data:`LEEWAY_SECONDS` of skew. A failure
raises :class:`ClaimsRefused` with the problem code the API answers.
"""

from __future__ import annotations

import binascii
import json
import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import jwt
from jwt.utils import base64url_decode

ACCESS_TYPE = "access"
ANONYMOUS_TYPE = "anonymous"  # proves creation of one anonymous session; single use, for the login upgrade
REQUIRED = ("iss", "aud", "sub", "sid", "jti", "iat", "nbf", "exp", "typ", "gen")
MAX_TOKEN_LENGTH = 4096
LEEWAY_SECONDS = 5
MAX_REMEMBERED = 10_000  # verified tokens kept, so a token's later uses cost a lookup, not a signature check

V = TypeVar("V")
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+={0,2}")  # base64url, padded or not


class ClaimsRefused(Exception):
    """Why a token is refused: ``code`` (``token_malformed``, ``token_invalid``, ``token_expired``) and a detail."""

    def __init__(self, detail: str, *, code: str) -> None:
        self.detail = detail
        self.code = code
        super().__init__(detail)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    typ: str
    user_id: uuid.UUID | None  # None for an anonymous token
    session_id: uuid.UUID
    generation: int
    jti: str
    expires_at: int


class Verified(Generic[V]):
    """Tokens whose signature and claims were checked, each with what the check gave.

    A token's claims cannot change, so a later use need only be checked for expiry. At most ``limit``
    tokens are kept; when full, all are forgotten and checked afresh.
    """

    def __init__(self, limit: int = MAX_REMEMBERED) -> None:
        self._limit = limit
        self._seen: dict[str, V] = {}

    def get(self, token: str) -> V | None:
        return self._seen.get(token)

    def remember(self, token: str, checked: V) -> None:
        if len(self._seen) >= self._limit:
            self._seen.clear()
        self._seen[token] = checked

    def forget(self, token: str) -> None:
        self._seen.pop(token, None)


def key_id(token: str) -> str | None:
    """The ``kid`` of a well-formed token's header (None if it names none), to choose the key by.

    Only the header segment is decoded; :func:`verify` then checks the whole token, header included.
    (``jwt.get_unverified_header`` decodes all three segments, checking them a character at a time in
    Python: for a token seen for the first time, as much CPU again as the verification itself.)
    """
    if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise ClaimsRefused("the access token is malformed", code="token_malformed")
    segment = token.partition(".")[0]
    try:
        if not _SEGMENT.fullmatch(segment):
            raise ValueError("not base64url")
        header = json.loads(base64url_decode(segment))
    except (ValueError, binascii.Error):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ClaimsRefused("the access token is not valid (cannot be decoded)", code="token_invalid") from None
    if not isinstance(header, dict):
        raise ClaimsRefused("the access token is not valid (cannot be decoded)", code="token_invalid")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise ClaimsRefused("the access token is not valid (malformed kid)", code="token_invalid")
    return kid


def verify(
    token: str,
    key: Any,
    algorithm: str,
    *,
    issuer: str,
    audience: str,
    now: float,
    types: Collection[str] = (ACCESS_TYPE,),
) -> AccessClaims:
    """Check ``token`` against ``key`` and the rule above; its claims, or :class:`ClaimsRefused`."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=audience,
            issuer=issuer,
            options={"require": list(REQUIRED), "verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
    except jwt.InvalidTokenError as exc:
        raise ClaimsRefused(f"the access token is not valid ({_reason(exc)})", code="token_invalid") from None
    try:
        if claims["typ"] not in types:
            raise ClaimsRefused("the token is not an access token", code="token_invalid")
        if not all(
            isinstance(claims[name], int) and not isinstance(claims[name], bool)
            for name in ("iat", "nbf", "exp", "gen")
        ):
            raise ClaimsRefused("the access token has malformed claims", code="token_invalid")
        if claims["nbf"] > now + LEEWAY_SECONDS or claims["iat"] > now + LEEWAY_SECONDS:
            raise ClaimsRefused("the access token is not valid yet", code="token_invalid")
        if claims["exp"] <= now - LEEWAY_SECONDS:
            raise ClaimsRefused("the access token has expired; refresh it", code="token_expired")
        user_id = uuid.UUID(claims["sub"]) if claims["typ"] == ACCESS_TYPE else None
        return AccessClaims(
            claims["typ"], user_id, uuid.UUID(claims["sid"]), claims["gen"], str(claims["jti"]), claims["exp"]
        )
    except (ValueError, TypeError, AttributeError):
        raise ClaimsRefused("the access token has malformed claims", code="token_invalid") from None


def _reason(exc: jwt.InvalidTokenError) -> str:
    """A short, token-free reason (pyjwt's messages never include the token itself)."""
    return {
        jwt.InvalidSignatureError: "bad signature",
        jwt.InvalidAudienceError: "wrong audience",
        jwt.InvalidIssuerError: "wrong issuer",
        jwt.MissingRequiredClaimError: "a required claim is missing",
        jwt.InvalidAlgorithmError: "algorithm not allowed",
        jwt.DecodeError: "cannot be decoded",
    }.get(type(exc), type(exc).__name__)
