"""Login, refresh, logout and anonymous session creation: where sessions and credentials are born."""

from __future__ import annotations

import uuid
from datetime import timedelta

import msgspec
from litestar import Controller, Request, Response, post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from sessionflow.api import observability
from sessionflow.api.auth import browser
from sessionflow.api.auth.flows import Issued
from sessionflow.api.context import BEARER_REQUIRED, AppContext, Ctx, request_id
from sessionflow.api.errors import InvalidCredentials
from sessionflow.api.problems import problem, responses
from sessionflow.lifecycle import SESSION, Actor, SessionEvent
from sessionflow.persistence import FireOptions, InvalidInput
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
    refresh_cookie: bool = False  # browsers: keep the refresh token in an HttpOnly cookie, not in the body


class RefreshRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The refresh token in the body; browsers send no body and let the cookie carry it."""

    refresh_token: str


class TokenResponse(msgspec.Struct):
    session_id: uuid.UUID
    state: str
    access_token: str
    refresh_token: str | None  # null when the refresh token travels in the cookie
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
        responses=responses(400, 401, 403, 409, 422, 429, 503),
        summary="Log in: create or upgrade a session",
    )
    def login(
        self, ctx: Ctx, request: Request[object, object, State], data: JSONBody[LoginRequest]
    ) -> Response[TokenResponse]:
        if data.refresh_cookie:  # a cookie set for another site's form would log the victim in as someone else
            browser.check_csrf(request, ctx.settings)
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
        return _tokens(ctx, request, issued, cookie=data.refresh_cookie)

    @post(
        "/auth/refresh",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        responses=responses(400, 401, 403, 409, 422, 503),
        summary="Rotate tokens",
    )
    def refresh(
        self, ctx: Ctx, request: Request[object, object, State], data: JSONBody[RefreshRequest | None] = None
    ) -> Response[TokenResponse]:
        """The refresh token from the body, or else from the refresh cookie (with the CSRF checks)."""
        cookie = data is None
        token = data.refresh_token if data is not None else _cookie_token(ctx, request)
        try:
            issued = ctx.flows.refresh(token, request_id=request_id(request))
        except InvalidCredentials as refused:
            if refused.code == "refresh_token_reused":
                observability.REFRESHES.labels("reuse_revoked").inc()
            raise
        observability.REFRESHES.labels("within_grace" if issued.within_grace else "rotated").inc()
        return _tokens(ctx, request, issued, cookie=cookie)

    @post(
        "/auth/logout",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        responses=responses(400, 401, 403, 409, 422, 503),
        summary="Log out (the access token as bearer, or the refresh cookie)",
        security=BEARER_REQUIRED,
    )
    def logout(self, ctx: Ctx, request: Request[object, object, State]) -> Response[LogoutResponse]:
        """End the session of the bearer token; without one, of the refresh cookie. The cookie is cleared."""
        if request.headers.get("authorization") is None and browser.COOKIE in request.cookies:
            session_id = ctx.flows.session_of_refresh(_cookie_token(ctx, request))
            applied = ctx.service.fire(
                SESSION.name, session_id, SessionEvent.LOGOUT, actor=Actor.CLIENT, request_id=request_id(request)
            )
        else:  # one transaction checks the token against its session row and logs it out
            token = ctx.auth.bearer_token(request.headers.get("authorization"))
            applied = ctx.fire_as_holder(
                token, SessionEvent.LOGOUT, lambda: FireOptions(request_id=request_id(request))
            )
            session_id = applied.instance_id
        cookies = [browser.cleared_cookie(request, ctx.settings)] if browser.COOKIE in request.cookies else []
        return Response(LogoutResponse(session_id=session_id, state=applied.to_state), cookies=cookies)


def _cookie_token(ctx: AppContext, request: Request[object, object, State]) -> str:
    """The refresh token the cookie carries, once the request passed the CSRF checks."""
    token = request.cookies.get(browser.COOKIE)
    if not token:
        raise InvalidCredentials(
            'no refresh token: send it as {"refresh_token"} or keep the refresh cookie', code="credentials_missing"
        )
    browser.check_csrf(request, ctx.settings)
    return token


def _tokens(
    ctx: AppContext, request: Request[object, object, State], issued: Issued, *, cookie: bool
) -> Response[TokenResponse]:
    """The token response; with ``cookie`` the refresh token goes into the cookie and the body says null."""
    body = TokenResponse(
        session_id=issued.session_id,
        state=issued.state,
        access_token=issued.access_token,
        refresh_token=None if cookie else issued.refresh_token,
        token_type="Bearer",
        expires_in=issued.expires_in,
        refresh_expires_in=issued.refresh_expires_in,
    )
    if not cookie:
        return Response(body)
    ttl = timedelta(seconds=issued.refresh_expires_in)
    return Response(body, cookies=[browser.refresh_cookie(request, ctx.settings, issued.refresh_token, ttl)])
