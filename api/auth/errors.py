"""Authentication and authorization failures, with the codes clients act on.

::

    AuthError                       root; ``code`` is stable and machine-readable
    ├── InvalidCredentials (401)    missing, malformed, forged, expired or superseded credentials
    ├── NotConnectable (409)        the session exists but is not in a state that allows this yet
    ├── Forbidden (403)             authenticated, but lacking the right
    └── RateLimited (429)           too many attempts; ``retry_after`` seconds

The same codes drive HTTP problem details and WebSocket close codes
(``api/problems.py`` maps both, in one place).
"""

from __future__ import annotations


class AuthError(Exception):
    status = 401
    default_code = "unauthorized"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        self.detail = detail
        self.code = code or self.default_code
        super().__init__(detail)


class InvalidCredentials(AuthError):
    """The credentials cannot be accepted. ``code`` says which case, never the credential itself.

    Codes: ``credentials_missing``, ``token_malformed``, ``token_invalid``,
    ``token_expired`` (refresh, then retry), ``token_superseded`` (an older
    generation), ``session_unknown``, ``session_expired`` (refreshable),
    ``session_closed``, ``session_revoked``, ``refresh_token_invalid``,
    ``refresh_token_reused`` (the session was revoked), ``ticket_invalid``,
    ``ticket_expired``, ``login_failed``.
    """

    status = 401
    default_code = "token_invalid"


class NotConnectable(AuthError):
    status = 409
    default_code = "session_not_connectable"


class Forbidden(AuthError):
    status = 403
    default_code = "forbidden"


class RateLimited(AuthError):
    status = 429
    default_code = "rate_limited"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(detail)
