"""A session as a resource: its state, history, events and WebSocket tickets.

A caller sees its own session (access or anonymous token) and, with the admin
role, any session. Anything else is 404: whether a foreign session exists is
not the caller's business.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, HeaderParameter, JSONBody, Parameter

from sessionflow.api.auth.authenticate import Principal, Purpose
from sessionflow.api.context import AppContext, Ctx, request_id
from sessionflow.api.problems import problem, responses
from sessionflow.lifecycle import SESSION, Actor, engine
from sessionflow.persistence import queries
from sessionflow.persistence.errors import InstanceNotFound
from sessionflow.persistence.records import Applied, Snapshot

_ETAG = re.compile(r'^\s*(?:W/)?"?(\d{1,10})"?\s*$')


class SessionView(msgspec.Struct):
    session_id: uuid.UUID
    state: str
    version: int
    user_id: uuid.UUID | None
    allowed_events: list[str]
    connections: list[uuid.UUID]
    created_at: datetime
    updated_at: datetime
    login_window_due_at: datetime | None
    idle_due_at: datetime | None
    grace_due_at: datetime | None
    refresh_window_due_at: datetime | None
    lifetime_due_at: datetime | None


class HistoryItem(msgspec.Struct):
    seq: int
    event: str
    from_state: str
    to_state: str
    actor: str
    at: datetime


class HistoryPage(msgspec.Struct):
    items: list[HistoryItem]
    next: int | None  # pass as ?after= for the next page; null when this page is the last


class EventRequest(msgspec.Struct, forbid_unknown_fields=True):
    reason: str | None = None  # recorded with revoke


class EventResult(msgspec.Struct):
    session_id: uuid.UUID
    event: str
    from_state: str
    to_state: str
    version: int
    repeated: bool


class Ticket(msgspec.Struct):
    ticket: str
    expires_in: int


class SessionController(Controller):
    path = "/api/session/{session_id:uuid}"
    tags = ["sessions"]

    @get(
        "/",
        sync_to_thread=True,
        responses=responses(400, 401, 404, 409, 422, 503),
        summary="A session's state, timers and allowed events",
    )
    def show(
        self, ctx: Ctx, request: Request[Any, Any, State], session_id: FromPath[uuid.UUID]
    ) -> Response[SessionView]:
        actor = _caller(ctx, request, session_id)
        snapshot = ctx.service.get("session", session_id)
        return Response(_view(ctx, snapshot, actor), headers={"ETag": f'"{snapshot.version}"'})

    @get(
        "/history",
        sync_to_thread=True,
        responses=responses(400, 401, 404, 409, 422, 503),
        summary="A session's transitions, oldest first",
    )
    def history(
        self,
        ctx: Ctx,
        request: Request[Any, Any, State],
        session_id: FromPath[uuid.UUID],
        after: Annotated[int, Parameter(ge=0, le=2**31 - 1, description="return transitions with seq > after")] = 0,
        limit: Annotated[int, Parameter(ge=1, le=queries.MAX_PAGE)] = 100,
    ) -> HistoryPage:
        _caller(ctx, request, session_id)
        entries = queries.history(ctx.db, "session", session_id, after_seq=after, limit=limit + 1)
        more = len(entries) > limit
        items = [HistoryItem(e.seq, e.event, e.from_state, e.to_state, e.actor, e.at) for e in entries[:limit]]
        return HistoryPage(items=items, next=items[-1].seq if more else None)

    @post(
        "/events/{event:str}",
        status_code=200,
        sync_to_thread=True,
        responses=responses(400, 401, 403, 404, 409, 412, 422, 503),
        summary="Fire an event the caller may fire",
    )
    def fire(
        self,
        ctx: Ctx,
        request: Request[Any, Any, State],
        session_id: FromPath[uuid.UUID],
        event: FromPath[str],
        data: JSONBody[EventRequest | None] = None,
        if_match: Annotated[str | None, HeaderParameter(name="If-Match")] = None,
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
    ) -> Response[EventResult]:
        """Client events for the session's own holder, admin events for admins; never server or timer events."""
        actor = _caller(ctx, request, session_id)
        spec = SESSION.events.get(event)
        if spec is None:
            engine(SESSION).require_event(event)  # raises UnknownEvent with the known events
            raise AssertionError("unreachable")
        if actor not in spec.fired_by:
            state = ctx.service.get("session", session_id).state
            firers = " or ".join(sorted(spec.fired_by))
            raise problem(
                403,
                "event_not_permitted",
                "You may not fire this event",
                f"'{event}' is fired by the {firers}, not by a {actor}",
                state=state,
                event=event,
                allowed_events=list(engine(SESSION).allowed_events(state, actor)),
            )
        expected = _if_match(if_match)
        rid = request_id(request)
        if event == "logout":
            applied = ctx.flows.logout(
                session_id, request_id=rid, idempotency_key=idempotency_key, expected_version=expected
            )
        elif event == "revoke":
            reason = (data.reason if data and data.reason else "admin")[:200]
            applied = ctx.flows.revoke(
                session_id,
                actor=actor,
                reason=reason,
                request_id=rid,
                idempotency_key=idempotency_key,
                expected_version=expected,
            )
        elif event == "refresh":
            raise problem(
                422, "use_refresh_endpoint", "Refresh needs the refresh token", "POST it to /api/auth/refresh"
            )
        else:  # pragma: no cover - every client or admin event is handled above
            applied = ctx.service.fire(
                "session",
                session_id,
                event,
                actor=actor,
                expected_version=expected,
                idempotency_key=idempotency_key,
                request_id=rid,
            )
        return Response(_result(applied), headers={"ETag": f'"{applied.version}"'})

    @post(
        "/ws-ticket",
        status_code=201,
        sync_to_thread=True,
        responses=responses(400, 401, 404, 409, 422, 503),
        summary="A single-use WebSocket ticket (30 s)",
    )
    def ticket(self, ctx: Ctx, request: Request[Any, Any, State], session_id: FromPath[uuid.UUID]) -> Ticket:
        principal = ctx.principal(request, Purpose.WEBSOCKET)
        if principal.session_id != session_id:
            raise InstanceNotFound("session", session_id)
        ticket, expires_in = ctx.flows.ticket(
            session_id, credential_expires_at=datetime.fromtimestamp(principal.token_expires_at, UTC)
        )
        return Ticket(ticket=ticket, expires_in=expires_in)


def _caller(ctx: AppContext, request: Request[Any, Any, State], session_id: uuid.UUID) -> Actor:
    """The actor the caller acts as on this session, or 404 if the session is not theirs to see."""
    principal: Principal = ctx.principal(request, Purpose.HTTP)
    if principal.session_id == session_id:
        return Actor.CLIENT
    if ctx.is_admin(principal):
        return Actor.ADMIN
    raise InstanceNotFound("session", session_id)


def _if_match(value: str | None) -> int | None:
    if value is None:
        return None
    match = _ETAG.match(value)
    if match is None:
        raise problem(400, "invalid_if_match", 'If-Match must be the session\'s ETag, a version in quotes, e.g. "3"')
    return int(match.group(1))


def _view(ctx: AppContext, snapshot: Snapshot, actor: Actor) -> SessionView:
    row = snapshot.row
    return SessionView(
        session_id=snapshot.id,
        state=snapshot.state,
        version=snapshot.version,
        user_id=row.get("user_id"),
        allowed_events=[str(e) for e in engine(SESSION).allowed_events(snapshot.state, actor)],
        connections=queries.live_connections(ctx.db, snapshot.id),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        **{f"{name}_due_at": due for name, due in snapshot.timers.items()},
    )


def _result(applied: Applied) -> EventResult:
    return EventResult(
        applied.instance_id, applied.event, applied.from_state, applied.to_state, applied.version, applied.repeated
    )
