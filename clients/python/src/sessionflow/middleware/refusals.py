"""Who the middleware let in, and why it refused: one refusal, as an HTTP problem or a WebSocket close."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sessionflow.lifecycle import protocol

STORE_UNAVAILABLE = 4503  # the close code of an unavailable sessionflow (docs/protocol.md)
_STATUS = {"session_not_connectable": 409, "sessionflow_unavailable": 503}
_TITLES = {401: "Not authenticated", 409: "Not possible in the session's state", 503: "sessionflow is unavailable"}
CLOSE_REASON_BYTES = 123


@dataclass(frozen=True, slots=True)
class Identity:
    """The user and session of a request, handed to the handler as ``scope["user"]`` and ``scope["state"]``.

    ``state`` is the session's state when the middleware asked sessionflow
    (checked mode); offline it is None: the token alone does not say.
    """

    user_id: str
    session_id: str
    expires_at: int  # when the access token expires (epoch seconds)
    state: str | None


class Refused(Exception):
    """A request or handshake the middleware refuses, with the problem code the API would give."""

    def __init__(self, code: str, detail: str) -> None:
        self.code = code
        self.detail = detail
        super().__init__(detail)

    @property
    def status(self) -> int:
        return _STATUS.get(self.code, 401)

    @property
    def close_code(self) -> int:
        if self.status == 503:
            return STORE_UNAVAILABLE
        return protocol.REFUSAL_CLOSE_CODES.get(self.code, protocol.UNAUTHORIZED)

    def problem(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Status, headers and body of the RFC 9457 problem an HTTP request gets."""
        body = {
            "type": f"urn:sessionflow:problem:{self.code}",
            "title": _TITLES.get(self.status, "Refused"),
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        headers = [(b"content-type", b"application/problem+json")]
        if self.status == 401:
            headers.append(
                (b"www-authenticate", f'Bearer error="invalid_token", error_description="{self.code}"'.encode())
            )
        if self.status == 503:
            headers.append((b"retry-after", b"1"))
        return self.status, headers, json.dumps(body).encode()

    def close_reason(self) -> str:
        return self.detail.encode()[:CLOSE_REASON_BYTES].decode(errors="ignore")


def unavailable(detail: str) -> Refused:
    return Refused("sessionflow_unavailable", detail)


def scope_identity(scope: Any) -> Identity | None:
    """The identity the middleware placed on an ASGI scope (Starlette's ``request.scope``, Litestar's too)."""
    found = scope.get("state", {}).get("sessionflow")
    return found if isinstance(found, Identity) else None
