"""Revocations pushed as they happen: a registered service's WebSocket to ``/api/services/revocations``.

sessionflow sends one message per session that stops being usable (logout,
revocation, expiry, end of life), fanned out as the sessions' own WebSockets
are, and one when a refresh makes an expired session usable again. The feed
remembers each such session for ``remember_seconds`` (at least
one access-token lifetime) and tells its listeners, so the middleware
refuses the session's requests and closes its WebSockets at once. Lost
connections are retried with backoff; what was pushed while disconnected is
not replayed, so each mode's own bound still holds then.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, WebSocketException

log = logging.getLogger("sessionflow.middleware")


@dataclass(frozen=True, slots=True)
class Revocation:
    session_id: str
    state: str
    code: str | None  # the problem code a request of this session now gets; None: usable again (refreshed)


Listener = Callable[[Revocation], None]


class RevocationFeed:
    def __init__(
        self,
        server_url: str,
        *,
        client_id: str,
        client_secret: str,
        remember_seconds: float = 3600.0,
        timeout: float = 5.0,
    ) -> None:
        self.url = server_url.rstrip("/").replace("http", "ws", 1) + "/api/services/revocations"
        self.remember_seconds = remember_seconds
        self.timeout = timeout
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self._headers = {"Authorization": f"Basic {basic}"}
        self._revoked: dict[str, tuple[float, Revocation]] = {}
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def revoked(self, session_id: str) -> Revocation | None:
        found = self._revoked.get(session_id)
        if found is None:
            return None
        if time.monotonic() - found[0] > self.remember_seconds:
            self._revoked.pop(session_id, None)
            return None
        return found[1]

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                async with connect(self.url, additional_headers=self._headers, open_timeout=self.timeout) as socket:
                    self.connected.set()
                    delay = 0.5
                    async for message in socket:
                        self._received(message)
            except (OSError, TimeoutError, InvalidHandshake, WebSocketException) as exc:
                log.warning("revocation feed lost (%s); reconnecting in about %.1fs", type(exc).__name__, delay)
            self.connected.clear()
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 30.0)

    def _received(self, message: str | bytes) -> None:
        try:
            body = json.loads(message)
            code = body["code"]
            revocation = Revocation(str(body["session_id"]), str(body["state"]), None if code is None else str(code))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed revocation message")
            return
        now = time.monotonic()
        if len(self._revoked) > 100_000:
            self._revoked = {k: v for k, v in self._revoked.items() if now - v[0] <= self.remember_seconds}
        if revocation.code is None:
            self._revoked.pop(revocation.session_id, None)
            return
        self._revoked[revocation.session_id] = (now, revocation)
        for listener in list(self._listeners):
            listener(revocation)
