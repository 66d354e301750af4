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
from urllib.parse import parse_qs

import msgspec
from litestar import Controller, Request, Response, asgi, get, post
from litestar.datastructures import ResponseHeader, State
from litestar.enums import MediaType, RequestEncodingType, ScopeType
from litestar.exceptions import ClientException, MethodNotAllowedException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi import ResponseSpec
from litestar.params import Body
from litestar.serialization import encode_json
from litestar.status_codes import HTTP_200_OK
from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

from sessionflow.api.auth.authenticate import Principal, Purpose
from sessionflow.api.context import BEARER_REQUIRED, AppContext, Ctx
from sessionflow.api.errors import AuthError, NotConnectable
from sessionflow.api.limits import ClientClosedRequest
from sessionflow.api.problems import responses

USER_HEADER = "X-Sessionflow-User"
SESSION_HEADER = "X-Sessionflow-Session"
STATE_HEADER = "X-Sessionflow-State"
FORWARDED_HEADERS = (USER_HEADER, SESSION_HEADER, STATE_HEADER)
RAW_USER_HEADER, RAW_SESSION_HEADER, RAW_STATE_HEADER = (name.lower().encode() for name in FORWARDED_HEADERS)
FORWARD_METHOD = "GET"  # each raw route checks its method; its opt["methods"] tells the route table
INTROSPECTION_METHOD = "POST"
MAX_FORM_BYTES = 8 * 1024  # a token is at most 4 KiB (claims.MAX_TOKEN_LENGTH)
MAX_FORM_FIELDS = 16  # token, token_type_hint and what a client library may add (client_id, ...)
TEXT_PLAIN = b"text/plain; charset=utf-8"
UNSERVED = "documentation only: the route is served by ServicesController"
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

    @asgi(
        "/auth/introspect",
        copy_scope=False,
        opt={"methods": {INTROSPECTION_METHOD}, "body": RequestEncodingType.URL_ENCODED},
    )
    async def introspect(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Active only while the token verifies and its session is usable, exactly as the API decides.

        A raw ASGI route, as ForwardAuth is (:meth:`forward`): a registered service may ask this on every
        request it serves. Its OpenAPI entry is :meth:`ServicesDocs.introspect`'s. The body's media type
        and deadline are checked as on every route (api/limits.py).
        """
        if scope["type"] != ScopeType.HTTP or scope["method"] != INTROSPECTION_METHOD:
            raise MethodNotAllowedException(headers={"Allow": INTROSPECTION_METHOD})
        ctx: AppContext = scope["litestar_app"].state.ctx
        form = await _form(receive)
        answer = await self._introspection(ctx, _header(scope, b"authorization"), form)
        body = encode_json(answer)
        headers = [(b"content-type", MediaType.JSON.encode()), (b"content-length", str(len(body)).encode())]
        await _send(send, headers, body)

    @staticmethod
    async def _introspection(ctx: AppContext, authorization: str | None, data: IntrospectionRequest) -> Introspection:
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

    @asgi("/auth/forward", copy_scope=False, opt={"methods": {FORWARD_METHOD}})
    async def forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        """200 with the user, session and state in the headers the proxy forwards; else the API's problem.

        A raw ASGI route: the proxy asks this on every request to every backend it guards, and Litestar's
        request, parameter and response objects were about 40% of its CPU in process (bench/services.py).
        Its OpenAPI entry is :meth:`ServicesDocs.forward`'s.
        """
        if scope["type"] != ScopeType.HTTP or scope["method"] != FORWARD_METHOD:
            raise MethodNotAllowedException(headers={"Allow": FORWARD_METHOD})
        ctx: AppContext = scope["litestar_app"].state.ctx
        authorization = _header(scope, b"authorization")
        principal = await ctx.read(lambda may_write: ctx.auth.bearer(authorization, Purpose.USE, may_write=may_write))
        if principal.anonymous or principal.user_id is None:
            raise NotConnectable("the session is anonymous: log in first", code="session_not_connectable")
        headers = [
            (b"content-type", TEXT_PLAIN),
            (b"content-length", b"0"),
            (RAW_USER_HEADER, str(principal.user_id).encode()),
            (RAW_SESSION_HEADER, str(principal.session_id).encode()),
            (RAW_STATE_HEADER, principal.state.encode()),
        ]
        await _send(send, headers, b"")


class ServicesDocs(Controller):
    """The OpenAPI entries of :class:`ServicesController`'s raw ASGI routes, which Litestar cannot describe.

    Never served: :func:`sessionflow.api.app.create_app` copies what Litestar generates for them into the
    application's OpenAPI document. Each signature and decorator states what the raw route does.
    """

    path = "/api"
    tags = ["services"]

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
    async def forward(self) -> None:
        """200 with the user, session and state in the headers the proxy forwards; else the API's problem."""
        raise NotImplementedError(UNSERVED)

    @post(
        "/auth/introspect",
        status_code=HTTP_200_OK,
        responses={
            200: ResponseSpec(
                Introspection, description="Whether the token is active, and whose", generate_examples=False
            ),
            **responses(400, 401, 503),
        },
        summary="Introspect an access token (RFC 7662), registered services only",
    )
    async def introspect(
        self, data: Annotated[IntrospectionRequest, Body(media_type=RequestEncodingType.URL_ENCODED)]
    ) -> Introspection:
        """Active only while the token verifies and its session is usable, exactly as the API decides."""
        raise NotImplementedError(UNSERVED)


def _header(scope: Scope, name: bytes) -> str | None:
    """The value of the request header ``name`` (lower case), if sent."""
    return next((value.decode("latin-1") for key, value in scope["headers"] if key == name), None)


async def _form(receive: Receive) -> IntrospectionRequest:
    """The introspection form, read whole but at most :data:`MAX_FORM_BYTES`; 400 or 413 if it cannot be."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()  # api/limits.py bounds the wait
        if message["type"] != "http.request":
            raise ClientClosedRequest
        chunk = message["body"]
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise RequestEntityTooLarge(detail=f"an introspection form is at most {MAX_FORM_BYTES} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    try:  # fields beyond the two are ignored, as RFC 7662 allows
        fields = parse_qs(b"".join(chunks).decode(), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise ClientException(f"the body is not a UTF-8 form of at most {MAX_FORM_FIELDS} fields") from None
    tokens, hints = fields.get("token", [""]), fields.get("token_type_hint", [None])
    if len(tokens) > 1 or len(hints) > 1:
        raise ClientException("token and token_type_hint are each sent at most once (RFC 7662)")
    return IntrospectionRequest(token=tokens[0], token_type_hint=hints[0])


async def _send(send: Send, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    """A raw route's answer: 200, ``headers`` and ``body``."""
    start: HTTPResponseStartEvent = {"type": "http.response.start", "status": HTTP_200_OK, "headers": headers}
    await send(start)
    whole: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(whole)
