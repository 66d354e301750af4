"""A session as a resource: its state, history, events and WebSocket tickets.

A caller sees its own session (access or anonymous token) and, with the admin
role, any session. Anything else is 404: whether a foreign session exists is
not the caller's business.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.enums import MediaType
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, HeaderParameter, JSONBody, Parameter
from litestar.response.base import ASGIResponse
from litestar.serialization import encode_json

from sessionflow.api.auth.authenticate import Principal, Purpose, require
from sessionflow.api.context import BEARER_REQUIRED, AppContext, Ctx, request_id
from sessionflow.api.problems import problem, responses
from sessionflow.lifecycle import SESSION, Actor, engine
from sessionflow.persistence import Applied, FireOptions, InstanceNotFound, Snapshot, queries

_ETAG = re.compile(r'^\s*(W/)?"(\d{1,10})"\s*$')


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


MAX_REASON = 200


class EventRequest(msgspec.Struct, forbid_unknown_fields=True):
    reason: str | None = None  # recorded in the history row's detail (first 200 characters)


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
    security = BEARER_REQUIRED
    path = "/api/session/{session_id:uuid}"
    tags = ["sessions"]

    @get(
        "/",
        # The answer is encoded here (see the end), so the schema of its body is declared rather than inferred.
        responses={
            200: ResponseSpec(
                SessionView,
                description="The session; the ETag header is its version, for If-Match",
                generate_examples=False,
            ),
            **responses(400, 401, 404, 409, 422, 503),
        },
        summary="A session's state, timers and allowed events",
    )
    async def show(self, ctx: Ctx, request: Request[Any, Any, State], session_id: FromPath[uuid.UUID]) -> ASGIResponse:
        def answer(may_write: bool) -> SessionView:
            with ctx.reading(may_write):  # authentication and the answer: one read, if any
                actor, principal = _access(ctx, request, session_id, may_write=may_write)
                snapshot = principal.snapshot if actor is Actor.CLIENT else None
                if snapshot is None:  # an admin's look at another session, or a ticket's principal
                    snapshot = ctx.auth.session(session_id, may_write=may_write)
                return _view(ctx, snapshot, actor, may_write=may_write)

        view = await ctx.read(answer)
        # The low-level response, encoded as Litestar encodes: its Response cost a twentieth of the read.
        return ASGIResponse(body=encode_json(view), media_type=MediaType.JSON, headers={"ETag": f'"{view.version}"'})

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
        entries = queries.history(ctx.db, SESSION.name, session_id, after_seq=after, limit=limit + 1)
        more = len(entries) > limit
        items = [HistoryItem(e.seq, e.event, e.from_state, e.to_state, e.actor, e.at) for e in entries[:limit]]
        return HistoryPage(items=items, next=items[-1].seq if more else None)

    @post(
        "/events/{event:str}",
        status_code=200,
        responses=responses(400, 401, 403, 404, 409, 412, 422, 503),
        summary="Fire an event the caller may fire",
    )
    async def fire(
        self,
        ctx: Ctx,
        request: Request[Any, Any, State],
        session_id: FromPath[uuid.UUID],
        event: FromPath[str],
        data: JSONBody[EventRequest | None] = None,
        if_match: Annotated[str | None, HeaderParameter(name="If-Match")] = None,
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
    ) -> Response[EventResult]:
        """The caller acts as the session's holder (``client``) on its own session, as ``admin`` on another's.

        The session machine decides the rest, and its refusals are the answer:
        an event fired by the server or a timer is 403, one the state does not
        allow 409, a guard that is not met 409 with the guard named.
        """

        def options() -> FireOptions:
            return FireOptions(
                expected_version=_if_match(if_match),
                idempotency_key=idempotency_key,
                request_id=request_id(request),
                detail={"reason": data.reason[:MAX_REASON]} if data and data.reason else None,
            )

        applied = await ctx.write(lambda: _fire(ctx, request, session_id, event, options))
        return Response(_result(applied), headers={"ETag": f'"{applied.version}"'})

    @post(
        "/ws-ticket",
        status_code=201,
        sync_to_thread=True,
        responses=responses(400, 401, 404, 409, 422, 503),
        summary="A single-use WebSocket ticket (30 s)",
    )
    def ticket(self, ctx: Ctx, request: Request[Any, Any, State], session_id: FromPath[uuid.UUID]) -> Ticket:
        principal = ctx.principal(request, Purpose.CONNECT)
        if principal.session_id != session_id or principal.token_generation is None:
            raise InstanceNotFound(SESSION.name, session_id)
        ticket, expires_in = ctx.flows.ticket(
            session_id,
            credential_expires_at=datetime.fromtimestamp(principal.token_expires_at, UTC),
            token_generation=principal.token_generation,
        )
        return Ticket(ticket=ticket, expires_in=expires_in)


def _fire(
    ctx: AppContext,
    request: Request[Any, Any, State],
    session_id: uuid.UUID,
    event: str,
    options: Callable[[], FireOptions],
) -> Applied:
    """The event route's work: authenticate the caller, then fire as the holder or as an admin.

    May run twice (``AppContext.write``). On the holder's own session one transaction checks the token
    against the session row and fires from that read; an admin's own session is checked first, on its own.
    """
    token = ctx.auth.bearer_token(request.headers.get("authorization"))
    if ctx.auth.tokens.verify(token).session_id == session_id:
        return ctx.fire_as_holder(token, event, options)
    actor = _caller(ctx, request, session_id, Purpose.FIRE)
    return ctx.service.fire(SESSION.name, session_id, event, actor=actor, **options())


def _caller(
    ctx: AppContext, request: Request[Any, Any, State], session_id: uuid.UUID, purpose: Purpose = Purpose.USE
) -> Actor:
    """The actor the caller acts as on this session, or 404 if the session is not theirs to see."""
    return _access(ctx, request, session_id, purpose)[0]


def _access(
    ctx: AppContext,
    request: Request[Any, Any, State],
    session_id: uuid.UUID,
    purpose: Purpose = Purpose.USE,
    *,
    may_write: bool = True,
) -> tuple[Actor, Principal]:
    """The caller's actor on this session, and who the caller is; 404 if the session is not theirs to see.

    On its own session the caller is the holder, with its credentials checked for ``purpose``; on
    another's it must be an admin whose own session is usable. ``may_write``: see ``AppContext.read``.
    """
    principal: Principal = ctx.principal(request, purpose, may_write=may_write)
    if principal.session_id == session_id:
        return Actor.CLIENT, principal
    require(principal.state, Purpose.USE)
    if ctx.is_admin(principal):
        return Actor.ADMIN, principal
    raise InstanceNotFound(SESSION.name, session_id)


def _if_match(value: str | None) -> int | None:
    """The version an ``If-Match`` header requires, or None for none (no header, or ``*``).

    RFC 9110 compares If-Match strongly: a weak tag (``W/"3"``) never matches, so it is 412. Anything
    but one quoted version, a weak tag or ``*`` (a bare ``3``, a list) is malformed: 400.
    """
    if value is None or value.strip() == "*":
        return None
    match = _ETAG.match(value)
    if match is None:
        raise problem(
            400, "invalid_if_match", 'If-Match must be the session\'s ETag, one version in quotes, e.g. "3", or *'
        )
    if match.group(1):
        raise problem(
            412,
            "version_mismatch",
            "A weak entity tag never matches",
            'If-Match compares strongly: send "3", not W/"3"',
        )
    return int(match.group(2))


def _view(ctx: AppContext, snapshot: Snapshot, actor: Actor, *, may_write: bool = True) -> SessionView:
    row = snapshot.row
    connections = ctx.auth.kept(
        ("connections", snapshot.id), lambda: queries.live_connections(ctx.db, snapshot.id), may_write
    )
    return SessionView(
        session_id=snapshot.id,
        state=snapshot.state,
        version=snapshot.version,
        user_id=row.get("user_id"),
        allowed_events=[str(e) for e in engine(SESSION).allowed_events(snapshot.state, actor)],
        connections=connections,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        **{f"{name}_due_at": due for name, due in snapshot.timers.items()},
    )


def _result(applied: Applied) -> EventResult:
    return EventResult(
        applied.instance_id, applied.event, applied.from_state, applied.to_state, applied.version, applied.repeated
    )
