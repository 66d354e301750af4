"""The revocation feed: registered services hear at once of every session that stops being usable.

``/api/services/revocations`` is a WebSocket for registered services (HTTP
Basic on the handshake; refused: accepted, then closed 4401). Each session
transition this worker's hub delivers into a state whose holders are refused
that changes whether its tokens are honoured becomes one message,
``{"session_id", "state", "code"}``: ``code`` is the problem code the API now
answers for that session, or null once a refresh made it usable again. The same fan-out carries
the sessions' own WebSocket events: on PostgreSQL every worker hears every
transition; on SQLite, those of this process (docs/services.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from litestar import WebSocket, websocket
from litestar.datastructures import State
from litestar.di import NamedDependency

from sessionflow.api.auth.authenticate import refusal
from sessionflow.api.context import AppContext
from sessionflow.api.errors import AuthError
from sessionflow.api.fanout import Hub, TransitionEvent
from sessionflow.api.problems import close_code_for
from sessionflow.lifecycle import Access, access

CHECK_EVERY = 5.0  # how often a quiet feed checks it was not dropped for falling behind


def revocation(event: TransitionEvent) -> dict[str, str | None] | None:
    """The message for ``event``, if it changes whether the session's tokens are honoured.

    A session that expired, was revoked or ended gets its refusal's code; one
    refreshed back out of expiry gets ``code: null`` (honoured again). Steps
    of a login in progress, and moves between usable states, say nothing.
    """
    refused = refusal(event.to_state)
    if refused is None:
        if access(event.from_state) is Access.REFRESHABLE:
            return {"session_id": event.session_id, "state": event.to_state, "code": None}
        return None
    if access(event.to_state) is Access.LOGIN_PENDING:
        return None
    return {"session_id": event.session_id, "state": event.to_state, "code": refused.code}


@websocket("/api/services/revocations", name="revocations")
async def revocations_endpoint(socket: WebSocket[Any, Any, State], ctx: NamedDependency[AppContext]) -> None:
    """Revocations as they happen, for registered services."""
    await socket.accept()
    try:
        await asyncio.to_thread(ctx.services.authenticate, socket.headers.get("authorization"))
    except AuthError as refused:
        code, reason = close_code_for(refused)
        await socket.close(code=code, reason=reason)
        return
    hub: Hub = socket.app.state.hub
    queue = hub.watch()
    receive: asyncio.Task[Any] = asyncio.ensure_future(socket.receive())
    try:
        while hub.watching(queue):
            incoming = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({receive, incoming}, timeout=CHECK_EVERY, return_when=asyncio.FIRST_COMPLETED)
            if incoming in done:
                message = revocation(incoming.result())
                if message is not None:
                    await socket.send_text(json.dumps(message))
            else:
                incoming.cancel()
            if receive in done:
                if receive.result()["type"] == "websocket.disconnect":
                    return
                receive = asyncio.ensure_future(socket.receive())  # services send nothing; ignored
        await socket.close(code=4500, reason="fell behind; reconnect")
    finally:
        hub.unwatch(queue)
        receive.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await receive
