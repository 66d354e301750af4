"""Browser credentials: the refresh token in a cookie page scripts cannot read, and the CSRF rule guarding it.

A browser app keeps its access token in page memory and lets the server keep
the refresh token in an ``HttpOnly``, ``Secure``, ``SameSite=Strict`` cookie
scoped to ``/api/auth``: an XSS in the app cannot read it, and other sites
cannot make the browser send it. A request the cookie authenticates
(refresh, logout without an access token) must also carry the
``X-Sessionflow-CSRF`` header, which no cross-site form can set and no
cross-origin script can send without a CORS preflight the server refuses, and
an ``Origin`` that is the server's own or one of ``SESSIONFLOW_ALLOWED_ORIGINS``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar import Request
from litestar.datastructures import Cookie, State

from sessionflow.api.errors import Forbidden
from sessionflow.api.settings import Settings

COOKIE = "sessionflow_refresh"
COOKIE_PATH = "/api/auth"
CSRF_HEADER = "X-Sessionflow-CSRF"
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def refresh_cookie(request: Request[Any, Any, State], settings: Settings, token: str, ttl: timedelta) -> Cookie:
    """The cookie that carries ``token`` for ``ttl``."""
    return Cookie(
        key=COOKIE,
        value=token,
        max_age=int(ttl.total_seconds()),
        path=COOKIE_PATH,
        httponly=True,
        secure=_secure(request, settings),
        samesite="strict",
    )


def cleared_cookie(request: Request[Any, Any, State], settings: Settings) -> Cookie:
    """The same cookie, expired: the browser forgets it."""
    return Cookie(
        key=COOKIE,
        value="",
        max_age=0,
        path=COOKIE_PATH,
        httponly=True,
        secure=_secure(request, settings),
        samesite="strict",
    )


def _secure(request: Request[Any, Any, State], settings: Settings) -> bool:
    """``Secure``, unless the setting turns it off and the server is addressed by a loopback name."""
    if settings.refresh_cookie_secure:
        return True
    host = (request.url.hostname or "").strip("[]").lower()
    return not (host in _LOOPBACK or host.endswith(".localhost"))


def check_csrf(request: Request[Any, Any, State], settings: Settings) -> None:
    """Refuse a cookie-authenticated request that a page of another site could have made (403)."""
    if not request.headers.get(CSRF_HEADER):
        raise Forbidden(
            f"a request authenticated by the refresh cookie must carry the {CSRF_HEADER} header",
            code="csrf_header_missing",
        )
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin is None or (origin != own and origin not in settings.allowed_origins):
        raise Forbidden(
            "a request authenticated by the refresh cookie must come from this server's origin or an allowed one",
            code="origin_not_allowed",
        )
