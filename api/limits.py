"""Bounds on what one HTTP request may hold and carry: the time its body takes, and its media type.

The server (api/server.py) bounds the request head, in time and size. This middleware bounds the
body: a client that has not sent all of it within ``body_read_timeout`` of the head gets 408 and its
connection closed. A client that goes away mid-body is recorded as 499 (client closed request, as
nginx names it), never as a server error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import RequestEncodingType, ScopeType
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

CLIENT_CLOSED_REQUEST = 499
JSON_TYPES = ("application/json",)


class UnsupportedMediaType(HTTPException):
    status_code = 415
    detail = "request bodies are JSON: send Content-Type: application/json"


async def json_bodies_only(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Guard: a request body must be of the media type its route reads, JSON unless the route declares
    another (RFC 7662 introspection reads a form), before anything reads it.

    A cross-site HTML form can send ``text/plain``, ``application/x-www-form-urlencoded`` or
    ``multipart/form-data`` without a CORS preflight; a JSON body under such a type would let another
    site post to the API with the browser's cookies. Refused with 415 whatever the body holds.
    """
    if connection.scope["type"] != ScopeType.HTTP:
        return
    headers = connection.headers
    if headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers:
        return
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    declared = _declared_body_type(handler)
    if declared is not None and declared != RequestEncodingType.JSON:
        if media_type != declared.value:
            raise UnsupportedMediaType(detail=f"this route reads {declared.value}")
        return
    if media_type not in JSON_TYPES and not (media_type.startswith("application/") and media_type.endswith("+json")):
        raise UnsupportedMediaType


def _declared_body_type(handler: BaseRouteHandler) -> RequestEncodingType | None:
    signature = getattr(handler, "parsed_fn_signature", None)
    data = signature.parameters.get("data") if signature is not None else None
    media_type = getattr(data.kwarg_definition, "media_type", None) if data is not None else None
    return RequestEncodingType(media_type) if media_type is not None else None


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
