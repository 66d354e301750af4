"""Offline mode: tokens verified with sessionflow's published keys (JWKS), nothing asked per request.

Keys are fetched once and again when a token names a ``kid`` not yet known
(a rotation), at most once a second. A logged-out or revoked session is
refused only when its token expires (``SESSIONFLOW_ACCESS_TOKEN_TTL``,
15 minutes by default), unless a :class:`~sessionflow.middleware.feed.RevocationFeed`
pushes it sooner.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import jwt

from sessionflow.middleware import claims
from sessionflow.middleware.refusals import Identity, Refused, unavailable

ASYMMETRIC = frozenset({"EdDSA", "RS256", "ES256"})
REFETCH_AFTER = 1.0


class Offline:
    def __init__(
        self,
        server_url: str,
        *,
        issuer: str = "sessionflow",
        audience: str = "sessionflow",
        timeout: float = 3.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.jwks_url = server_url.rstrip("/") + "/api/auth/jwks"
        self.issuer = issuer
        self.audience = audience
        self.timeout = timeout
        self._http = http
        self._keys: dict[str, tuple[Any, str]] = {}
        self._fetched_at = -REFETCH_AFTER
        self._lock = asyncio.Lock()
        self._verified: claims.Verified[Identity] = claims.Verified()

    async def verify(self, token: str) -> Identity:
        """The token's identity; a token verified before is only checked for expiry (its claims cannot change)."""
        known = self._verified.get(token)
        if known is not None:
            if known.expires_at <= time.time() - claims.LEEWAY_SECONDS:
                self._verified.forget(token)
                raise Refused("token_expired", "the access token has expired; refresh it")
            return known
        try:
            kid = claims.key_id(token)
            key = await self._key(kid)
            checked = claims.verify(token, key[0], key[1], issuer=self.issuer, audience=self.audience, now=time.time())
        except claims.ClaimsRefused as refused:
            raise Refused(refused.code, refused.detail) from None
        assert checked.user_id is not None  # typ is access
        identity = Identity(str(checked.user_id), str(checked.session_id), checked.expires_at, None)
        self._verified.remember(token, identity)
        return identity

    async def _key(self, kid: str | None) -> tuple[Any, str]:
        if kid is None:
            raise claims.ClaimsRefused("the access token names no key (kid)", code="token_invalid")
        if kid not in self._keys and time.monotonic() - self._fetched_at >= REFETCH_AFTER:
            async with self._lock:
                if kid not in self._keys and time.monotonic() - self._fetched_at >= REFETCH_AFTER:
                    await self._fetch()
        found = self._keys.get(kid)
        if found is None:
            raise claims.ClaimsRefused("the access token was signed with an unknown key", code="token_invalid")
        return found

    async def _fetch(self) -> None:
        http = self._http or httpx.AsyncClient(timeout=self.timeout)
        try:
            async with asyncio.timeout(self.timeout):
                response = await http.get(self.jwks_url)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError, TimeoutError) as exc:
            if self._keys:  # keep the keys we have; a new kid waits for the next fetch
                self._fetched_at = time.monotonic()
                return
            raise unavailable(f"cannot fetch sessionflow's keys ({type(exc).__name__})") from None
        finally:
            if self._http is None:
                await http.aclose()
        keys: dict[str, tuple[Any, str]] = {}
        for entry in document.get("keys", []) if isinstance(document, dict) else []:
            try:
                jwk = jwt.PyJWK.from_dict(entry)
            except (jwt.PyJWKError, jwt.InvalidKeyError, KeyError, TypeError):
                continue
            if jwk.key_id and jwk.algorithm_name in ASYMMETRIC:
                keys[jwk.key_id] = (jwk.key, jwk.algorithm_name)
        if not keys:
            raise unavailable("sessionflow publishes no keys: it signs with HS256; set SESSIONFLOW_JWT_ALGORITHM=EdDSA")
        self._keys = keys
        self._fetched_at = time.monotonic()

    async def aclose(self) -> None:
        return None
