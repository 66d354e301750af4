"""What the platform's other services use to trust sessionflow (docs/services.md).

- ``GET /api/auth/jwks`` and the discovery document: the public keys that
  verify access tokens offline (none for HS256, whose secret stays here).
- ``POST /api/auth/introspect``: RFC 7662 introspection with the session
  row checked, for registered services only (HTTP Basic).
- ``GET /api/auth/forward``: Traefik ForwardAuth; 200 with the user and
  session in headers the proxy forwards, or the problem the API would give.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import ResponseHeader, State
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response.base import ASGIResponse
from litestar.status_codes import HTTP_200_OK

from sessionflow.api.auth.authenticate import Principal, Purpose
from sessionflow.api.context import BEARER_REQUIRED, Ctx
from sessionflow.api.errors import AuthError, NotConnectable
from sessionflow.api.problems import responses

USER_HEADER = "X-Sessionflow-User"
SESSION_HEADER = "X-Sessionflow-Session"
STATE_HEADER = "X-Sessionflow-State"
FORWARDED_HEADERS = (USER_HEADER, SESSION_HEADER, STATE_HEADER)
JWKS_MAX_AGE = 300  # verifiers refetch sooner on a kid they do not know


class IntrospectionRequest(msgspec.Struct):
    """RFC 7662 section 2.1: the token, form-encoded; ``token_type_hint`` is accepted and ignored."""

    token: str = ""
    token_type_hint: str | None = None


class Introspection(msgspec.Struct, omit_defaults=True):
    """RFC 7662 section 2.2, with the session: ``sid`` and ``session_state`` when active.

    When inactive, ``code`` says why (the problem code the API would answer),
    so a registered service refuses as the API would; nothing else is told.
    """

    active: bool
    sub: str | None = None
    sid: str | None = None
    exp: int | None = None
    iss: str | None = None
    aud: str | None = None
    token_type: str | None = None
    session_state: str | None = None
    code: str | None = None


class ServicesController(Controller):
    path = "/api"
    tags = ["services"]

    @get("/auth/jwks", sync_to_thread=False, summary="Public keys that verify access tokens (JWKS)")
    def jwks(self, ctx: Ctx) -> Response[dict[str, Any]]:
        """Every key a live token may carry the kid of; empty for HS256, whose secret is never published."""
        keyring = ctx.auth.tokens.keys
        return Response(keyring.jwks(), headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"})

    @get("/.well-known/openid-configuration", sync_to_thread=False, summary="Discovery: keys and endpoints, OIDC-style")
    def discovery(self, ctx: Ctx, request: Request[object, object, State]) -> dict[str, Any]:
        base = str(request.base_url).rstrip("/")
        keyring = ctx.auth.tokens.keys
        return {
            "issuer": ctx.settings.jwt_issuer,
            "audience": ctx.settings.jwt_audience,
            "jwks_uri": f"{base}/api/auth/jwks",
            "introspection_endpoint": f"{base}/api/auth/introspect",
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
            "forward_auth_endpoint": f"{base}/api/auth/forward",
            "revocation_feed_endpoint": f"{base.replace('http', 'ws', 1)}/api/services/revocations",
            "access_token_signing_alg_values_supported": [keyring.algorithm],
            "access_token_lifetime": int(ctx.settings.access_token_ttl.total_seconds()),
        }

    @post(
        "/auth/introspect",
        status_code=HTTP_200_OK,
        responses=responses(400, 401, 503),
        summary="Introspect an access token (RFC 7662), registered services only",
    )
    async def introspect(
        self,
        ctx: Ctx,
        request: Request[object, object, State],
        data: Annotated[IntrospectionRequest, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Introspection:
        """Active only while the token verifies and its session is usable, exactly as the API decides."""
        authorization = request.headers.get("authorization")

        def check(may_write: bool) -> Principal | AuthError:
            ctx.services.authenticate(authorization)
            try:
                return ctx.auth.token(data.token, Purpose.USE, may_write=may_write)
            except AuthError as refused:
                return refused

        principal = await ctx.read(check)
        if isinstance(principal, AuthError):
            return Introspection(active=False, code=principal.code)
        if principal.anonymous or principal.user_id is None:
            return Introspection(active=False, code="token_invalid")
        return Introspection(
            active=True,
            sub=str(principal.user_id),
            sid=str(principal.session_id),
            exp=principal.token_expires_at,
            iss=ctx.settings.jwt_issuer,
            aud=ctx.settings.jwt_audience,
            token_type="Bearer",
            session_state=principal.state,
        )

    @get(
        "/auth/forward",
        responses=responses(401, 409, 503),
        summary="Traefik ForwardAuth: 200 with the user and session in headers, or the API's problem",
        security=BEARER_REQUIRED,
        media_type="text/plain",  # an empty body: what Traefik forwards are the headers
        response_headers=[
            ResponseHeader(name=USER_HEADER, description="the session's user id", documentation_only=True),
            ResponseHeader(name=SESSION_HEADER, description="the session id", documentation_only=True),
            ResponseHeader(name=STATE_HEADER, description="the session's state", documentation_only=True),
        ],
    )
    async def forward(self, ctx: Ctx, request: Request[object, object, State]) -> ASGIResponse:
        """200 with the user, session and state in the headers the proxy forwards; else the API's problem."""
        principal = await ctx.authenticate(request, Purpose.USE)
        if principal.anonymous or principal.user_id is None:
            raise NotConnectable("the session is anonymous: log in first", code="session_not_connectable")
        headers = {
            USER_HEADER: str(principal.user_id),
            SESSION_HEADER: str(principal.session_id),
            STATE_HEADER: principal.state,
        }
        # The low-level response: Litestar's Response, for a body that is always empty, cost about a tenth
        # of the route's CPU in process (bench/services.py measures the route).
        return ASGIResponse(body=b"", status_code=HTTP_200_OK, headers=headers, media_type="text/plain")
