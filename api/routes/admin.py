"""Administration: list sessions, revoke one session or all of a user's, disable a user."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, JSONBody, Parameter, QueryParameter

from sessionflow.api.auth.authenticate import Purpose
from sessionflow.api.context import BEARER_REQUIRED, AppContext, Ctx, request_id
from sessionflow.api.problems import problem, responses
from sessionflow.api.routes.auth import could_exist
from sessionflow.lifecycle import SESSION, Actor, SessionEvent
from sessionflow.persistence import queries, sessions, users

StateName = Annotated[str | None, QueryParameter(name="state", description="only sessions in this state")]


class AdminSession(msgspec.Struct):
    session_id: uuid.UUID
    state: str
    version: int
    user_id: uuid.UUID | None
    username: str | None
    created_at: datetime
    updated_at: datetime


class SessionPage(msgspec.Struct):
    items: list[AdminSession]  # newest first
    next: uuid.UUID | None  # pass as ?after= for the next page (older sessions); null on the last page


class RevokeRequest(msgspec.Struct, forbid_unknown_fields=True):
    reason: str = "admin"


class Revoked(msgspec.Struct):
    revoked: list[uuid.UUID]


async def admin_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Authenticate and authorise before anything else is read: an anonymous caller learns 401, not how a
    body or a parameter would have been validated."""
    ctx: AppContext = connection.app.state.ctx
    header = connection.headers.get("authorization")
    await asyncio.to_thread(lambda: ctx.require_admin(ctx.auth.bearer(header, Purpose.USE)))


class AdminController(Controller):
    security = BEARER_REQUIRED
    path = "/api/admin"
    tags = ["admin"]
    guards = [admin_only]

    @get(
        "/sessions",
        sync_to_thread=True,
        responses=responses(400, 401, 403, 409, 422, 503),
        summary="Sessions by state and user, newest first, paginated",
    )
    def sessions(
        self,
        ctx: Ctx,
        request: Request[Any, Any, State],
        state_filter: StateName = None,
        user: Annotated[str | None, QueryParameter(name="user", description="username")] = None,
        after: Annotated[uuid.UUID | None, QueryParameter(name="after")] = None,
        limit: Annotated[int, Parameter(ge=1, le=queries.MAX_PAGE)] = 50,
    ) -> SessionPage:
        ctx.require_admin(ctx.principal(request, Purpose.USE))
        state = state_filter
        if state is not None and state not in SESSION.states:
            raise problem(422, "unknown_state", "No such state", f"known states: {', '.join(SESSION.states)}")
        user_id = None
        if user is not None:
            found = users.by_name(ctx.db, user) if could_exist(user) else None
            if found is None:
                return SessionPage(items=[], next=None)
            user_id = found.id
        rows = queries.list_sessions(ctx.db, state=state, user_id=user_id, after=after, limit=limit + 1)
        items = [
            AdminSession(r.id, r.state, r.version, r.user_id, r.username, r.created_at, r.updated_at)
            for r in rows[:limit]
        ]
        return SessionPage(items=items, next=items[-1].session_id if len(rows) > limit else None)

    @post(
        "/sessions/{session_id:uuid}/revoke",
        status_code=200,
        sync_to_thread=True,
        responses=responses(400, 401, 403, 404, 409, 422, 503),
        summary="Revoke one session",
    )
    def revoke(
        self,
        ctx: Ctx,
        request: Request[Any, Any, State],
        session_id: FromPath[uuid.UUID],
        data: JSONBody[RevokeRequest | None] = None,
    ) -> Revoked:
        ctx.require_admin(ctx.principal(request, Purpose.USE))
        ctx.service.fire(
            SESSION.name,
            session_id,
            SessionEvent.REVOKE,
            actor=Actor.ADMIN,
            detail={"reason": _reason(data)},
            request_id=request_id(request),
        )
        return Revoked(revoked=[session_id])

    @post(
        "/users/{user_id:uuid}/revoke-sessions",
        status_code=200,
        sync_to_thread=True,
        responses=responses(400, 401, 403, 404, 409, 422, 503),
        summary="Revoke every session of a user",
    )
    def revoke_user(
        self,
        ctx: Ctx,
        request: Request[Any, Any, State],
        user_id: FromPath[uuid.UUID],
        data: JSONBody[RevokeRequest | None] = None,
    ) -> Revoked:
        ctx.require_admin(ctx.principal(request, Purpose.USE))
        _require_user(ctx, user_id)
        with ctx.service.transaction() as tx:
            applied = sessions.revoke_all_of(
                tx, user_id, actor=Actor.ADMIN, reason=_reason(data), request_id=request_id(request)
            )
        return Revoked(revoked=[a.instance_id for a in applied])

    @post(
        "/users/{user_id:uuid}/disable",
        status_code=200,
        sync_to_thread=True,
        responses=responses(400, 401, 403, 404, 409, 422, 503),
        summary="Disable a user and revoke their sessions",
    )
    def disable_user(self, ctx: Ctx, request: Request[Any, Any, State], user_id: FromPath[uuid.UUID]) -> Revoked:
        ctx.require_admin(ctx.principal(request, Purpose.USE))
        _require_user(ctx, user_id)
        with ctx.service.transaction() as tx:
            users.set_enabled(tx, user_id, False)
            applied = sessions.revoke_all_of(
                tx, user_id, actor=Actor.ADMIN, reason="user_disabled", request_id=request_id(request)
            )
        return Revoked(revoked=[a.instance_id for a in applied])


def _reason(data: RevokeRequest | None) -> str:
    """The reason recorded in history: the admin's own words, bounded, or plain "admin"."""
    return (data.reason if data else "admin")[:200]


def _require_user(ctx: AppContext, user_id: uuid.UUID) -> None:
    if users.by_id(ctx.db, user_id) is None:
        raise problem(404, "user_not_found", "No such user")
