"""Access tokens: JWTs the server signs with its current key and verifies with the key their ``kid`` names.

The claims rule (every claim required, ``iss``, ``aud`` and ``typ`` checked,
time claims with leeway) is :mod:`sessionflow.middleware.claims`, the one the
services middleware applies too; time is the service's clock (so tests and
simulations can move time). The session row is checked afterwards by
:mod:`sessionflow.api.auth.authenticate`.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import jwt

from sessionflow.api.auth.keys import VERIFY_LEEWAY, Key, Keyring
from sessionflow.api.errors import InvalidCredentials
from sessionflow.lifecycle import Clock
from sessionflow.middleware import claims
from sessionflow.middleware.claims import ACCESS_TYPE, ANONYMOUS_TYPE, MAX_TOKEN_LENGTH, AccessClaims

__all__ = ["ACCESS_TYPE", "ANONYMOUS_TYPE", "LEEWAY", "MAX_TOKEN_LENGTH", "AccessClaims", "AccessTokens"]

LEEWAY = VERIFY_LEEWAY
assert LEEWAY.total_seconds() == claims.LEEWAY_SECONDS


class AccessTokens:
    def __init__(self, keys: Keyring, *, issuer: str, audience: str, ttl: timedelta, clock: Clock) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl
        self.clock = clock
        self._verified: claims.Verified[tuple[str | None, Key, AccessClaims]] = claims.Verified()  # kid, key, claims

    def issue(self, *, user_id: uuid.UUID, session_id: uuid.UUID, generation: int) -> str:
        return self._encode(ACCESS_TYPE, str(user_id), session_id, generation, self.ttl)

    def issue_anonymous(self, *, session_id: uuid.UUID, ttl: timedelta) -> str:
        return self._encode(ANONYMOUS_TYPE, "anonymous", session_id, 0, ttl)

    def _encode(self, typ: str, sub: str, session_id: uuid.UUID, generation: int, ttl: timedelta) -> str:
        now = int(self.clock.now().timestamp())
        jti, expires_at = uuid.uuid4().hex, now + int(ttl.total_seconds())
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "sid": str(session_id),
            "jti": jti,
            "iat": now,
            "nbf": now,
            "exp": expires_at,
            "typ": typ,
            "gen": generation,
        }
        key = self.keys.current
        token = jwt.encode(payload, key.signing_key, algorithm=key.algorithm, headers={"kid": key.kid})
        # What verify() would find, remembered now: a client's first request with a token this process just
        # issued (after a login or a refresh) is not decoded again. Another worker decodes it once.
        user_id = uuid.UUID(sub) if typ == ACCESS_TYPE else None
        self._verified.remember(
            token, (key.kid, key, AccessClaims(typ, user_id, session_id, generation, jti, expires_at))
        )
        return token

    def verify(self, token: str) -> AccessClaims:
        """Decode and check ``token``; raise :class:`InvalidCredentials` with a code saying why not.

        A token that passed once is remembered: its claims cannot change, so a later use only checks that
        its key is still held and that it has not expired (the session row is checked by the caller anyway).
        """
        remembered = self._verified.get(token)
        if remembered is not None and self.keys.find(remembered[0]) is remembered[1]:
            if remembered[2].expires_at <= self.clock.now().timestamp() - claims.LEEWAY_SECONDS:
                raise InvalidCredentials("the access token has expired; refresh it", code="token_expired")
            return remembered[2]
        try:
            kid = claims.key_id(token)
            key = self.keys.find(kid)
            if key is None:
                raise InvalidCredentials(
                    "the access token was signed with a key this server does not hold", code="token_invalid"
                )
            checked = claims.verify(
                token,
                key.verifying_key,
                key.algorithm,
                issuer=self.issuer,
                audience=self.audience,
                now=self.clock.now().timestamp(),
                types=(ACCESS_TYPE, ANONYMOUS_TYPE),
            )
        except claims.ClaimsRefused as refused:
            raise InvalidCredentials(refused.detail, code=refused.code) from None
        self._verified.remember(token, (kid, key, checked))
        return checked
