"""The ASGI middleware: one rule for HTTP requests and WebSocket handshakes.

Every ``http`` and ``websocket`` scope outside ``public_paths`` must carry an
access token (``Authorization: Bearer``, or the cookie named by ``cookie``);
the verifier (:class:`~sessionflow.middleware.offline.Offline` or
:class:`~sessionflow.middleware.checked.Checked`) and a pushed revocation
decide. A refused HTTP request gets the API's problem (401, 409 or 503); a
refused WebSocket is accepted, then closed with the API's close code (a close
before accept would reach browsers as a bare 1006). An admitted WebSocket is
closed with the same codes when its token expires (4419) or its session is
revoked by the feed. The handler finds the :class:`Identity` in
``scope["user"]`` and ``scope["state"]["sessionflow"]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any, Protocol

from sessionflow.lifecycle import protocol
from sessionflow.middleware.feed import Revocation, RevocationFeed
from sessionflow.middleware.refusals import Identity, Refused

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

EXPIRED = protocol.REFUSAL_CLOSE_CODES["token_expired"]


class Verifier(Protocol):
    async def verify(self, token: str) -> Identity: ...

    async def aclose(self) -> None: ...


class SessionflowMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: Verifier,
        revocations: RevocationFeed | None = None,
        public_paths: Collection[str] = (),
        cookie: str | None = None,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.revocations = revocations
        self.public_paths = frozenset(public_paths)
        self.cookie = cookie
        self._sockets: dict[str, set[Callable[[int, str], None]]] = {}
        if revocations is not None:
            revocations.listen(self._revoked)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, self._lifespan(receive), send)
            return
        if kind not in ("http", "websocket") or scope["path"] in self.public_paths:
            await self.app(scope, receive, send)
            return
        try:
            identity = await self.authenticate(scope)
        except Refused as refused:
            await (_refuse_http if kind == "http" else _refuse_websocket)(refused, receive, send)
            return
        scope = {**scope, "user": identity, "state": {**scope.get("state", {}), "sessionflow": identity}}
        if kind == "http":
            await self.app(scope, receive, send)
        else:
            await self._guarded_websocket(identity, scope, receive, send)

    async def authenticate(self, scope: Scope) -> Identity:
        """The one rule, for both kinds of scope: a token, verified, of a session not pushed as revoked."""
        identity = await self.verifier.verify(self._token(scope))
        if self.revocations is not None and (revoked := self.revocations.revoked(identity.session_id)) is not None:
            raise Refused(revoked.code or "token_invalid", f"the session is {revoked.state}")
        return identity

    def _token(self, scope: Scope) -> str:
        headers: dict[bytes, bytes] = dict(scope.get("headers") or ())
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Refused("credentials_missing", "the Authorization header must be 'Bearer <access token>'")
            return token.strip()
        if self.cookie is not None:
            for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
                name, _, value = part.strip().partition("=")
                if name == self.cookie and value:
                    return value
        raise Refused("credentials_missing", "no credentials: send Authorization: Bearer <access token>")

    def _revoked(self, revocation: Revocation) -> None:
        forget = getattr(self.verifier, "forget_session", None)
        if forget is not None:
            forget(revocation.session_id)
        close_code = Refused(revocation.code or "token_invalid", "").close_code
        for close in list(self._sockets.get(revocation.session_id, ())):
            close(close_code, f"the session is {revocation.state}")

    async def _guarded_websocket(self, identity: Identity, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app's WebSocket; close it (once) when the token expires or the session is revoked."""
        loop = asyncio.get_running_loop()
        accepted = closed = False
        closing: list[asyncio.Task[None]] = []

        async def guarded_send(message: Message) -> None:
            nonlocal accepted, closed
            if closed:
                return  # we closed it: the app learns so from its next receive
            if message["type"] == "websocket.accept":
                accepted = True
            elif message["type"] == "websocket.close":
                closed = True
            await send(message)

        def close(code: int, reason: str) -> None:
            nonlocal closed
            if closed or not accepted:
                return
            closed = True
            closing.append(loop.create_task(_send(send, {"type": "websocket.close", "code": code, "reason": reason})))

        sockets = self._sockets.setdefault(identity.session_id, set())
        sockets.add(close)
        expiry = loop.call_later(max(0.0, identity.expires_at - time.time()), close, EXPIRED, "the token expired")
        try:
            await self.app(scope, receive, guarded_send)
        finally:
            expiry.cancel()
            sockets.discard(close)
            if not sockets:
                self._sockets.pop(identity.session_id, None)
            for task in closing:
                with contextlib.suppress(Exception):
                    await task

    def _lifespan(self, receive: Receive) -> Receive:
        """Start the revocation feed with the app, and close what the middleware holds when it stops."""

        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup" and self.revocations is not None:
                self.revocations.start()
            elif message["type"] == "lifespan.shutdown":
                if self.revocations is not None:
                    await self.revocations.aclose()
                await self.verifier.aclose()
            return message

        return wrapped


async def _send(send: Send, message: Message) -> None:
    await send(message)


async def _refuse_http(refused: Refused, receive: Receive, send: Send) -> None:
    status, headers, body = refused.problem()
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _refuse_websocket(refused: Refused, receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": refused.close_code, "reason": refused.close_reason()})
