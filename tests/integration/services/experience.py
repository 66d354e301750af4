"""The sample "experience" service: a few lines of Starlette behind the sessionflow middleware.

Run as ``python -m tests.integration.services.experience PORT`` with
``EXPERIENCE_SESSIONFLOW_URL``, ``EXPERIENCE_MODE`` (``offline``, ``push`` =
offline with the revocation feed, or ``checked``) and, for ``checked`` and
``push``, ``EXPERIENCE_CLIENT_ID`` and ``EXPERIENCE_CLIENT_SECRET``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from sessionflow.middleware import Checked, Offline, RevocationFeed, SessionflowMiddleware

CACHE_SECONDS = 2.0  # checked mode: the bound on a revocation's delay


async def profile(request: Request) -> JSONResponse:
    identity = request.user  # the middleware's Identity
    return JSONResponse({"user_id": identity.user_id, "session_id": identity.session_id, "state": identity.state})


async def live(websocket: WebSocket) -> None:
    await websocket.accept()
    identity = websocket.user
    await websocket.send_json({"user_id": identity.user_id, "session_id": identity.session_id})
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass


def build(environ: Mapping[str, str]) -> SessionflowMiddleware:
    url, mode = environ["EXPERIENCE_SESSIONFLOW_URL"], environ["EXPERIENCE_MODE"]
    credentials = {
        "client_id": environ.get("EXPERIENCE_CLIENT_ID", ""),
        "client_secret": environ.get("EXPERIENCE_CLIENT_SECRET", ""),
    }
    feed = RevocationFeed(url, **credentials) if mode == "push" else None

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"feed": feed is not None and feed.connected.is_set()})

    app = Starlette(routes=[Route("/health", health), Route("/api/profile", profile), WebSocketRoute("/ws", live)])
    verifier = Checked(url, cache_seconds=CACHE_SECONDS, **credentials) if mode == "checked" else Offline(url)
    return SessionflowMiddleware(app, verifier=verifier, revocations=feed, public_paths={"/health"})


if __name__ == "__main__":
    uvicorn.run(build(os.environ), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", lifespan="on")
