"""Bounds on what one HTTP request may hold: the time its body takes to arrive.

The server (api/server.py) bounds the request head, in time and size. This middleware bounds the
body: a client that has not sent all of it within ``body_read_timeout`` of the head gets 408 and its
connection closed. A client that goes away mid-body is recorded as 499 (client closed request, as
nginx names it), never as a server error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

CLIENT_CLOSED_REQUEST = 499


class BodyTimeout(HTTPException):
    status_code = 408
    detail = "the request body did not arrive in time"


class ClientClosedRequest(HTTPException):
    status_code = CLIENT_CLOSED_REQUEST
    detail = "the client closed the connection before sending the whole request"


def body_read_timeout(seconds: float) -> Callable[[ASGIApp], ASGIApp]:
    """Litestar middleware factory: every ``receive`` of an HTTP request body is due ``seconds`` after the head."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def bounded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            deadline = time.monotonic() + seconds
            complete = False

            async def receive_in_time() -> ReceiveMessage:
                nonlocal complete
                if complete:
                    return await receive()  # after the body: only http.disconnect is left to wait for
                try:
                    message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    raise BodyTimeout(headers={"Connection": "close"}) from None
                if message["type"] == "http.disconnect":
                    raise ClientClosedRequest
                complete = not message.get("more_body", False)
                return message

            await app(scope, receive_in_time, send)

        return bounded

    return middleware
