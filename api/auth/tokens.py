"""Access tokens: JWTs the server signs and verifies with a pinned algorithm.

Verification requires every claim, checks ``iss``, ``aud`` and ``typ``, and
checks time claims against the service's clock (so tests and simulations can
move time). The session row is checked afterwards by :mod:`sessionflow.api.auth.authenticate`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import jwt

from sessionflow.api.auth.keys import VERIFY_LEEWAY, Keyring
from sessionflow.api.errors import InvalidCredentials
from sessionflow.lifecycle import Clock

ACCESS_TYPE = "access"
ANONYMOUS_TYPE = "anonymous"  # proves creation of one anonymous session; single use, for the login upgrade
REQUIRED = ("iss", "aud", "sub", "sid", "jti", "iat", "nbf", "exp", "typ", "gen")
MAX_TOKEN_LENGTH = 4096
LEEWAY = VERIFY_LEEWAY


@dataclass(frozen=True, slots=True)
class AccessClaims:
    typ: str
    user_id: uuid.UUID | None  # None for an anonymous token
    session_id: uuid.UUID
    generation: int
    jti: str
    expires_at: int


class AccessTokens:
    def __init__(self, keys: Keyring, *, issuer: str, audience: str, ttl: timedelta, clock: Clock) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl
        self.clock = clock

    def issue(self, *, user_id: uuid.UUID, session_id: uuid.UUID, generation: int) -> str:
        return self._encode(ACCESS_TYPE, str(user_id), session_id, generation, self.ttl)

    def issue_anonymous(self, *, session_id: uuid.UUID, ttl: timedelta) -> str:
        return self._encode(ANONYMOUS_TYPE, "anonymous", session_id, 0, ttl)

    def _encode(self, typ: str, sub: str, session_id: uuid.UUID, generation: int, ttl: timedelta) -> str:
        now = int(self.clock.now().timestamp())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "sid": str(session_id),
            "jti": uuid.uuid4().hex,
            "iat": now,
            "nbf": now,
            "exp": now + int(ttl.total_seconds()),
            "typ": typ,
            "gen": generation,
        }
        key = self.keys.current
        return jwt.encode(claims, key.signing_key, algorithm=key.algorithm, headers={"kid": key.kid})

    def verify(self, token: str) -> AccessClaims:
        """Decode and check ``token``; raise :class:`InvalidCredentials` with a code saying why not."""
        if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            raise InvalidCredentials("the access token is malformed", code="token_malformed")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self.keys.find(kid) if kid is None or isinstance(kid, str) else None
            if key is None:
                raise InvalidCredentials(
                    "the access token was signed with a key this server does not hold", code="token_invalid"
                )
            claims = jwt.decode(
                token,
                key.verifying_key,
                algorithms=[key.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": list(REQUIRED), "verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.InvalidTokenError as exc:
            raise InvalidCredentials(f"the access token is not valid ({_reason(exc)})", code="token_invalid") from None
        now = self.clock.now().timestamp()
        leeway = LEEWAY.total_seconds()
        try:
            if claims["typ"] not in (ACCESS_TYPE, ANONYMOUS_TYPE):
                raise InvalidCredentials("the token is not an access token", code="token_invalid")
            if not all(
                isinstance(claims[name], int) and not isinstance(claims[name], bool)
                for name in ("iat", "nbf", "exp", "gen")
            ):
                raise InvalidCredentials("the access token has malformed claims", code="token_invalid")
            if claims["nbf"] > now + leeway or claims["iat"] > now + leeway:
                raise InvalidCredentials("the access token is not valid yet", code="token_invalid")
            if claims["exp"] <= now - leeway:
                raise InvalidCredentials("the access token has expired; refresh it", code="token_expired")
            user_id = uuid.UUID(claims["sub"]) if claims["typ"] == ACCESS_TYPE else None
            return AccessClaims(
                claims["typ"], user_id, uuid.UUID(claims["sid"]), claims["gen"], str(claims["jti"]), claims["exp"]
            )
        except (ValueError, TypeError, AttributeError):
            raise InvalidCredentials("the access token has malformed claims", code="token_invalid") from None


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
