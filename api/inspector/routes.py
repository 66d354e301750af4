"""The inspector's page, its assets and the admin-only reads behind it.

The page (``GET /api/inspector``) and its assets are public files: they hold
no data. Everything they show comes from the routes below and the feed, all
of which need an admin's access token.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
from litestar import Controller, Request, get
from litestar.datastructures import CacheControlHeader, State
from litestar.params import FromPath
from litestar.response import File
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from sessionflow.api.context import BEARER_REQUIRED, Ctx
from sessionflow.api.inspector.feed import feed_endpoint
from sessionflow.api.problems import responses
from sessionflow.lifecycle import SESSION, Actor, engine
from sessionflow.persistence import HistoryEntry, inspection, queries

STATIC = Path(__file__).parent / "static"
# The page loads only its own files, talks only to its own server, and is never framed.
POLICY = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class Overview(msgspec.Struct):
    counts: dict[str, dict[str, int]]  # machine -> state -> how many sessions or connections are in it
    seq: int  # the feed's position at the time of the counts: open it with ?after=seq
    refusal_seq: int


class Timer(msgspec.Struct):
    name: str
    due_at: datetime | None


class AllowedEvent(msgspec.Struct):
    event: str
    actors: list[str]


class InspectedSession(msgspec.Struct):
    session_id: uuid.UUID
    state: str
    version: int
    user_id: uuid.UUID | None
    username: str | None
    created_at: datetime
    updated_at: datetime
    timers: list[Timer]
    allowed_events: list[AllowedEvent]
    connections: list[inspection.ConnectionRow]  # newest first
    history: list[HistoryEntry]  # oldest first, the first 500
    refusals: list[inspection.RefusalRow]  # the session's and its connections', oldest first


class InspectorController(Controller):
    path = "/api/inspector"
    tags = ["inspector"]

    @get("/", sync_to_thread=False, include_in_schema=False)
    def page(self) -> File:
        return File(
            STATIC / "index.html",
            content_disposition_type="inline",
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": POLICY, "Cache-Control": "no-cache"},
        )

    @get(
        "/overview",
        sync_to_thread=True,
        security=BEARER_REQUIRED,
        responses=responses(401, 403, 503),
        summary="Sessions and connections by state, and the feed position they were counted at",
    )
    def overview(self, ctx: Ctx, request: Request[Any, Any, State]) -> Overview:
        ctx.require_admin(ctx.principal(request))
        found = inspection.overview(ctx.db)
        return Overview(found.counts, found.seq, found.refusal_seq)

    @get(
        "/sessions/{session_id:uuid}",
        sync_to_thread=True,
        security=BEARER_REQUIRED,
        responses=responses(400, 401, 403, 404, 503),
        summary="One session for the inspector: timers, allowed events, connections, history, refusals",
    )
    def session(self, ctx: Ctx, request: Request[Any, Any, State], session_id: FromPath[uuid.UUID]) -> InspectedSession:
        ctx.require_admin(ctx.principal(request))
        snapshot = ctx.service.get(SESSION.name, session_id, fire_due=False)
        row = snapshot.row
        machine = engine(SESSION)
        allowed: dict[str, list[str]] = {}
        for actor in Actor:
            for event in machine.allowed_events(snapshot.state, actor):
                allowed.setdefault(str(event), []).append(str(actor))
        connections = inspection.connections_of(ctx.db, session_id)
        history = queries.history(ctx.db, SESSION.name, session_id, limit=queries.MAX_PAGE)
        refusals = inspection.refusals_of(ctx.db, [session_id, *(c.id for c in connections)])
        return InspectedSession(
            session_id=snapshot.id,
            state=snapshot.state,
            version=snapshot.version,
            user_id=row.get("user_id"),
            username=inspection.username_of(ctx.db, row.get("user_id")),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            timers=[Timer(name, due) for name, due in snapshot.timers.items()],
            allowed_events=[AllowedEvent(event, actors) for event, actors in allowed.items()],
            connections=connections,
            history=history,
            refusals=refusals,
        )


def route_handlers() -> list[ControllerRouterHandler]:
    """The inspector's routes, for ``create_app`` to mount when the inspector is on."""
    assets = create_static_files_router(
        path="/api/inspector/static",
        directories=[STATIC],
        name="inspector-static",
        include_in_schema=False,
        cache_control=CacheControlHeader(no_cache=True),
    )
    return [InspectorController, feed_endpoint, assets]
