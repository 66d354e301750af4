"""Login, refresh, logout and anonymous session creation: where sessions and credentials are born."""

from __future__ import annotations

import uuid
from dataclasses import asdict

import msgspec
from litestar import Controller, Request, post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from sessionflow.api.auth.authenticate import Purpose
from sessionflow.api.context import BEARER_REQUIRED, Ctx, request_id
from sessionflow.api.errors import InvalidCredentials
from sessionflow.api.problems import problem, responses
from sessionflow.lifecycle import SESSION, Actor, SessionEvent
from sessionflow.persistence import InvalidInput
from sessionflow.persistence.users import validate_username


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Username and password, or an ID token from the configured identity provider.

    ``session_id`` with ``anonymous_token`` upgrades that anonymous session instead of creating one.
    """

    username: str | None = msgspec.field(default=None)
    password: str | None = msgspec.field(default=None)
    id_token: str | None = msgspec.field(default=None)
    session_id: uuid.UUID | None = None
    anonymous_token: str | None = None


class RefreshRequest(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: str


class TokenResponse(msgspec.Struct):
    session_id: uuid.UUID
    state: str
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int
    refresh_expires_in: int


class CreatedSession(msgspec.Struct):
    session_id: uuid.UUID
    state: str
    anonymous_token: str


class LogoutResponse(msgspec.Struct):
    session_id: uuid.UUID
    state: str


MAX_FIELD = 1024


def could_exist(username: str) -> bool:
    """Whether a user could have this name; others fail at once, never reaching the database (NUL breaks PostgreSQL)."""
    try:
        validate_username(username)
    except InvalidInput:
        return False
    return True


class AuthController(Controller):
    path = "/api"
    tags = ["auth"]

    @post(
        "/session/create",
        status_code=HTTP_201_CREATED,
        sync_to_thread=True,
        responses=responses(400, 503),
        summary="Create an anonymous session",
    )
    def create_session(self, ctx: Ctx, request: Request[object, object, State]) -> CreatedSession:
        """The server creates the session; its anonymous token only serves to upgrade it at login."""
        session_id, token = ctx.flows.create_anonymous(request_id=request_id(request))
        return CreatedSession(session_id=session_id, state=SESSION.initial, anonymous_token=token)

    @post(
        "/auth/login",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        responses=responses(400, 401, 409, 422, 429, 503),
        summary="Log in: create or upgrade a session",
    )
    def login(self, ctx: Ctx, request: Request[object, object, State], data: JSONBody[LoginRequest]) -> TokenResponse:
        rid = request_id(request)
        address = request.client.host if request.client else "unknown"
        if data.id_token is not None:
            if data.username is not None or data.password is not None:
                raise problem(400, "invalid_request", "Send either username and password or id_token, not both")
            oidc = request.app.state.get("oidc")
            if oidc is None:
                raise problem(
                    400,
                    "oidc_not_configured",
                    "This server accepts no ID tokens",
                    "log in with a username and password",
                )
            issued = ctx.flows.login_id_token(
                oidc,
                data.id_token,
                client_address=address,
                session_id=data.session_id,
                anonymous_token=data.anonymous_token,
                request_id=rid,
            )
        else:
            if not data.username or not data.password:
                raise problem(400, "invalid_request", "username and password are required")
            if len(data.password) > MAX_FIELD or not could_exist(data.username):
                raise InvalidCredentials("unknown user or wrong password", code="login_failed")
            issued = ctx.flows.login_password(
                data.username,
                data.password,
                client_address=address,
                session_id=data.session_id,
                anonymous_token=data.anonymous_token,
                request_id=rid,
            )
        return TokenResponse(token_type="Bearer", **asdict(issued))

    @post(
        "/auth/refresh",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        responses=responses(400, 401, 409, 422, 503),
        summary="Rotate tokens",
    )
    def refresh(
        self, ctx: Ctx, request: Request[object, object, State], data: JSONBody[RefreshRequest]
    ) -> TokenResponse:
        issued = ctx.flows.refresh(data.refresh_token, request_id=request_id(request))
        return TokenResponse(token_type="Bearer", **asdict(issued))

    @post(
        "/auth/logout",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        responses=responses(400, 401, 409, 422, 503),
        summary="Log out (the access token as bearer)",
        security=BEARER_REQUIRED,
    )
    def logout(self, ctx: Ctx, request: Request[object, object, State]) -> LogoutResponse:
        principal = ctx.principal(request, Purpose.FIRE)
        applied = ctx.service.fire(
            SESSION.name, principal.session_id, SessionEvent.LOGOUT, actor=Actor.CLIENT, request_id=request_id(request)
        )
        return LogoutResponse(session_id=principal.session_id, state=applied.to_state)
