"""Bounds on what one HTTP request may hold and carry: the time its body takes, and its media type.

The server (api/server.py) bounds the request head, in time and size. This middleware bounds the
body: a body of another media type than its route reads is refused with 415 before anything reads it,
and a client that has not sent all of it within ``body_read_timeout`` of the head gets 408 and its
connection closed. A client that goes away mid-body is recorded as 499 (client closed request, as
nginx names it), never as a server error. Both checks run when the route first reads the body, so
requests whose route reads none (most of them: reads, ForwardAuth) pay nothing for them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from litestar.datastructures import Headers
from litestar.enums import RequestEncodingType, ScopeType
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

CLIENT_CLOSED_REQUEST = 499
JSON_TYPES = ("application/json",)


class UnsupportedMediaType(HTTPException):
    status_code = 415
    detail = "request bodies are JSON: send Content-Type: application/json"


def require_body_type(scope: Scope) -> None:
    """Refuse a body that is not of the media type its route reads, JSON unless the route declares
    another (RFC 7662 introspection reads a form), before anything reads it.

    A cross-site HTML form can send ``text/plain``, ``application/x-www-form-urlencoded`` or
    ``multipart/form-data`` without a CORS preflight; a JSON body under such a type would let another
    site post to the API with the browser's cookies. Refused with 415 whatever the body holds. Asked
    only of a request whose head announces a body (:func:`_announces_body`).
    """
    headers = Headers.from_scope(scope)
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    declared = _declared_body_type(scope.get("route_handler"))
    if declared is not None and declared != RequestEncodingType.JSON:
        if media_type != declared.value:
            raise UnsupportedMediaType(detail=f"this route reads {declared.value}")
        return
    if media_type not in JSON_TYPES and not (media_type.startswith("application/") and media_type.endswith("+json")):
        raise UnsupportedMediaType


def _declared_body_type(handler: object) -> RequestEncodingType | None:
    declared = getattr(handler, "opt", {}).get("body")  # a raw ASGI route says what it reads
    if declared is not None:
        return RequestEncodingType(declared)
    signature = getattr(handler, "parsed_fn_signature", None)
    data = signature.parameters.get("data") if signature is not None else None
    media_type = getattr(data.kwarg_definition, "media_type", None) if data is not None else None
    return RequestEncodingType(media_type) if media_type is not None else None


def _announces_body(scope: Scope) -> bool:
    """Whether the request head announces a body (HTTP/1.1: a non-zero Content-Length or a Transfer-Encoding);
    a request that announces none has none, and ``receive`` answers at once with an empty one."""
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


class BodyTimeout(HTTPException):
    status_code = 408
    detail = "the request body did not arrive in time"


class ClientClosedRequest(HTTPException):
    status_code = CLIENT_CLOSED_REQUEST
    detail = "the client closed the connection before sending the whole request"


def request_bodies(seconds: float) -> Callable[[ASGIApp], ASGIApp]:
    """Litestar middleware factory: an HTTP request body must be of its route's media type
    (:func:`require_body_type`), and every ``receive`` of it is due ``seconds`` after the head."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def bounded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP or not _announces_body(scope):
                await app(scope, receive, send)
                return
            deadline = time.monotonic() + seconds
            started = complete = False

            async def receive_in_time() -> ReceiveMessage:
                nonlocal started, complete
                if not started:
                    started = True
                    require_body_type(scope)
                if complete:
                    return await receive()  # after the body: only http.disconnect is left to wait for
                try:
                    # A deadline on the awaiting task, not a task of its own per receive (as wait_for makes).
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        message = await receive()
                except TimeoutError:
                    raise BodyTimeout(headers={"Connection": "close"}) from None
                if message["type"] == "http.disconnect":
                    raise ClientClosedRequest
                complete = not message.get("more_body", False)
                return message

            await app(scope, receive_in_time, send)

        return bounded

    return middleware
