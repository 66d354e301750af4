"""Every error the API layer raises, with the codes clients act on.

::

    AuthError                       root of refusals; ``code`` is stable and machine-readable
    ├── InvalidCredentials (401)    missing, malformed, forged, expired or superseded credentials
    ├── ServiceUnauthorized (401)   not a registered service's credentials (HTTP Basic)
    ├── NotConnectable (409)        the session exists but is not in a state that allows this yet
    ├── Forbidden (403)             authenticated, but lacking the right
    └── RateLimited (429)           too many attempts; ``retry_after`` seconds
    IdentityProviderUnavailable     the OIDC provider's keys cannot be fetched (503)
    CloseRefusal                    a WebSocket refused before it opened: a close code and reason
    SettingsError                   a ``SESSIONFLOW_*`` value cannot be used (also a ValueError)
    WeakPassword                    a password shorter than the minimum (also a ValueError)
    DiagramError                    Graphviz missing or failing, or README markers missing
    CommandFailed                   a CLI command failed in an expected way: one line, no traceback

The same codes drive HTTP problem details and WebSocket close codes;
:mod:`sessionflow.api.problems` maps both, in one place. Messages never
carry a credential.
"""

from __future__ import annotations

from typing import Any


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
    ``ticket_expired``, ``login_failed``, ``id_token_invalid``.
    """

    status = 401
    default_code = "token_invalid"


class ServiceUnauthorized(AuthError):
    """Missing or wrong registered-service credentials (introspection, the revocation feed)."""

    status = 401
    default_code = "service_unauthorized"


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


class IdentityProviderUnavailable(Exception):
    """The provider's JWKS could not be fetched or read, so no ID token can be checked now (503, retry)."""

    code = "identity_provider_unavailable"

    def __init__(self, detail: str = "the identity provider's keys cannot be fetched; retry later") -> None:
        self.detail = detail
        super().__init__(detail)


class CloseRefusal(Exception):
    """A WebSocket the server refuses before it opens: closed with ``code`` and ``reason``.

    ``extra`` (such as ``retry_after``) is sent in an ``error`` message before the close.
    """

    def __init__(self, code: int, reason: str, **extra: Any) -> None:
        self.code = code
        self.reason = reason
        self.extra = extra
        super().__init__(reason)


class SettingsError(ValueError):
    """A ``SESSIONFLOW_*`` variable has a value that cannot be used; the message names it."""


class WeakPassword(ValueError):
    """The password is too short to be accepted."""


class DiagramError(Exception):
    """A diagram could not be drawn (Graphviz missing or failing) or placed (README markers missing)."""

    code = "diagram_error"


class CommandFailed(Exception):
    """An expected failure of a CLI command, reported in one line without a traceback."""
