"""Checked mode: every token introspected by sessionflow (RFC 7662), answers cached for a few seconds.

sessionflow checks the session row, so a logout or revocation reaches this
service within ``cache_seconds`` (2 s by default). If sessionflow cannot be
asked within ``timeout``, the request is refused with 503: never let
through, never left waiting.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time

import httpx

from sessionflow.middleware.refusals import Identity, Refused, unavailable

log = logging.getLogger("sessionflow.middleware")

MAX_TOKEN_LENGTH = 4096


class Checked:
    def __init__(
        self,
        server_url: str,
        *,
        client_id: str,
        client_secret: str,
        cache_seconds: float = 2.0,
        timeout: float = 2.0,
        max_cached: int = 10_000,
    ) -> None:
        self.introspection_url = server_url.rstrip("/") + "/api/auth/introspect"
        self.cache_seconds = cache_seconds
        self.timeout = timeout
        self.max_cached = max_cached
        self._auth = httpx.BasicAuth(client_id, client_secret)
        self._http: httpx.AsyncClient | None = None
        self._cache: dict[bytes, tuple[float, Identity | Refused]] = {}

    async def verify(self, token: str) -> Identity:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise Refused("token_malformed", "the access token is malformed")
        digest = hashlib.sha256(token.encode()).digest()
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < self.cache_seconds:
            outcome = cached[1]
        else:
            outcome = await self._introspect(token)
            if len(self._cache) >= self.max_cached:
                self._cache.clear()
            self._cache[digest] = (now, outcome)
        if isinstance(outcome, Refused):
            raise outcome
        return outcome

    def forget_session(self, session_id: str) -> None:
        """Drop cached answers about ``session_id`` (a pushed revocation)."""
        for digest, (_, outcome) in list(self._cache.items()):
            if isinstance(outcome, Identity) and outcome.session_id == session_id:
                self._cache.pop(digest, None)

    async def _introspect(self, token: str) -> Identity | Refused:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.timeout, auth=self._auth)
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._http.post(self.introspection_url, data={"token": token})
        except (httpx.HTTPError, TimeoutError) as exc:
            raise unavailable(f"cannot reach sessionflow ({type(exc).__name__})") from None
        if response.status_code != 200:
            if response.status_code == 401:
                log.error("sessionflow refused this service's credentials: check client_id and client_secret")
            raise unavailable(f"sessionflow answered {response.status_code} to introspection")
        try:
            body = response.json()
            if not body["active"]:
                return Refused(str(body.get("code") or "token_invalid"), "the access token is not active")
            return Identity(str(body["sub"]), str(body["sid"]), int(body["exp"]), str(body["session_state"]))
        except (ValueError, KeyError, TypeError):
            raise unavailable("sessionflow's introspection answer cannot be read") from None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
