"""Protect your own ASGI service with sessionflow sessions: HTTP and WebSocket by one rule (docs/services.md).

::

    from sessionflow.middleware import Checked, SessionflowMiddleware

    app = SessionflowMiddleware(app, verifier=Checked("http://sessionflow:8000", client_id=..., client_secret=...))

Plain ASGI: works under Starlette, FastAPI and Litestar, and needs neither the
server nor its dependencies. Two modes, each with its delay for a revoked session:

- :class:`Offline`: JWKS-verified, no request to sessionflow; revocation
  reaches it at token expiry, or at once with a :class:`RevocationFeed`.
- :class:`Checked`: introspection, cached ``cache_seconds`` (2 s); revocation
  reaches it within that; sessionflow unreachable means 503, never a pass.
"""

from __future__ import annotations

from sessionflow.middleware.asgi import SessionflowMiddleware
from sessionflow.middleware.checked import Checked
from sessionflow.middleware.feed import Revocation, RevocationFeed
from sessionflow.middleware.offline import Offline
from sessionflow.middleware.refusals import Identity, Refused, scope_identity

__all__ = [
    "Checked",
    "Identity",
    "Offline",
    "Refused",
    "Revocation",
    "RevocationFeed",
    "SessionflowMiddleware",
    "scope_identity",
]
