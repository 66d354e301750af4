"""Domain errors to RFC 9457 problem details and to WebSocket close codes: the one place for both.

Every problem has a stable ``type`` (``urn:sessionflow:problem:<code>``) and
``code``; refusals by the machine add ``state``, ``event`` and
``allowed_events``. A WebSocket that must be refused or closed gets the
close code of the same error (:func:`close_code_for`), from the table served
at ``GET /api/lifecycle/close-codes``. Messages never carry a credential.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsException

from sessionflow.api.auth.authenticate import refusal
from sessionflow.api.errors import (
    AuthError,
    CloseRefusal,
    IdentityProviderUnavailable,
    RateLimited,
    ServiceUnauthorized,
)
from sessionflow.lifecycle import (
    SESSION,
    ActorNotPermitted,
    Definition,
    EventRefused,
    GuardFailed,
    UnknownEvent,
    UnknownState,
    protocol,
)
from sessionflow.persistence import (
    IdempotencyKeyReused,
    InstanceNotFound,
    InvalidInput,
    StoreUnavailable,
    VersionConflict,
)

log = logging.getLogger("sessionflow.problems")

TYPE_PREFIX = "urn:sessionflow:problem:"
PROBLEM_JSON = "application/problem+json"


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem as sessionflow sends it; refusals carry the state, event and allowed events."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    state: str | None = None
    event: str | None = None
    allowed_events: list[str] | None = None
    guards: list[str] | None = None
    current_version: int | None = None
    retry_after: int | None = None
    known_events: list[str] | None = None
    known_states: list[str] | None = None
    field: str | None = None
    errors: list[dict[str, Any]] | None = None


_DESCRIPTIONS = {
    400: "Malformed request",
    401: "Missing, invalid, expired or superseded credentials; `code` says which",
    403: "A right is missing, the event is not the caller's to fire, or a cookie request failed the CSRF check",
    404: "No such route, event, machine or visible session",
    409: "The machine refuses the event in the session's state, or a guard failed",
    412: "If-Match names a version that is no longer current",
    422: "An invalid value, or an Idempotency-Key reused for another event",
    429: "Too many attempts; see Retry-After",
    500: "A bug; the request id is in the X-Request-ID header",
    503: "The store or the identity provider is unavailable; retry with backoff",
}


def responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problems a handler can answer with (always including 500)."""
    return {
        status: ResponseSpec(
            data_container=Problem, media_type=PROBLEM_JSON, description=_DESCRIPTIONS[status], generate_examples=False
        )
        for status in sorted({*statuses, 500})
    }


def problem(
    status: int, code: str, title: str, detail: str = "", *, headers: dict[str, str] | None = None, **extra: Any
) -> ProblemDetailsException:
    return ProblemDetailsException(
        status_code=status,
        type_=TYPE_PREFIX + code,
        title=title,
        detail=detail or title,
        headers=headers,
        extra={"code": code, **extra},
    )


def _refused(exc: EventRefused) -> ProblemDetailsException:
    extra: dict[str, Any] = {"state": exc.state, "event": exc.event, "allowed_events": list(exc.allowed_events)}
    if isinstance(exc, ActorNotPermitted):
        return problem(403, "event_not_permitted", "You may not fire this event", exc.reason, **extra)
    if isinstance(exc, GuardFailed):
        return problem(
            409, "guard_failed", "A precondition of this event is not met", exc.reason, guards=list(exc.guards), **extra
        )
    return problem(
        409, "transition_not_allowed", f"'{exc.event}' is not allowed in state '{exc.state}'", exc.reason, **extra
    )


def _auth(exc: AuthError) -> ProblemDetailsException:
    headers: dict[str, str] = {}
    if isinstance(exc, ServiceUnauthorized):
        headers["WWW-Authenticate"] = 'Basic realm="sessionflow services"'
    elif exc.status == 401:
        headers["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{exc.code}"'
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
        return problem(429, exc.code, "Too many attempts", exc.detail, headers=headers, retry_after=exc.retry_after)
    titles = {401: "Not authenticated", 403: "Forbidden", 409: "Not possible in the session's state"}
    return problem(exc.status, exc.code, titles.get(exc.status, "Refused"), exc.detail, headers=headers)


def _conflict(exc: VersionConflict) -> ProblemDetailsException:
    if exc.stale:
        return problem(
            412, "version_mismatch", "The session changed since you read it", str(exc), current_version=exc.actual
        )
    return problem(
        409, "concurrent_change", "Another change won; read the session and retry", str(exc), current_version=exc.actual
    )


def _http(exc: HTTPException) -> ProblemDetailsException:
    if isinstance(exc, ProblemDetailsException):
        return exc
    if isinstance(exc, ValidationException):
        return problem(400, "invalid_request", "The request is malformed", str(exc.detail), errors=exc.extra or [])
    if isinstance(exc, NotFoundException):
        return problem(404, "not_found", "Nothing here", str(exc.detail))
    codes = {
        400: "invalid_request",
        405: "method_not_allowed",
        408: "request_timeout",
        413: "payload_too_large",
        415: "unsupported_media_type",
        499: "client_closed_request",
    }
    code = codes.get(exc.status_code, f"http_{exc.status_code}")
    return problem(exc.status_code, code, str(exc.detail), headers=exc.headers)


def _undecodable(exc: RecursionError | UnicodeDecodeError) -> ProblemDetailsException:
    """Too deeply nested or not UTF-8: msgspec raises these from Litestar's request decoding as they are,
    not as a decode error. There they are the client's fault (400); raised anywhere else they are bugs."""
    frame = None
    tb = exc.__traceback__
    while tb is not None:
        frame, tb = tb.tb_frame, tb.tb_next
    if frame is not None and frame.f_globals.get("__name__", "").startswith("litestar.serialization"):
        reason = "nested too deeply" if isinstance(exc, RecursionError) else "not valid UTF-8"
        return problem(400, "invalid_request", "The request is malformed", f"the request body is {reason}")
    log.error("unhandled %s", type(exc).__name__, exc_info=exc)
    return problem(500, "internal_error", "Internal error", "the server failed; this is a bug")


# -- WebSocket close codes -----------------------------------------------------------------------

CLOSE_REASON_BYTES = 123  # what fits a close frame (RFC 6455: 125 bytes of payload, 2 of them the code)


def fit_close_reason(reason: str) -> str:
    """``reason`` cut to what a close frame carries, never in the middle of a character."""
    return reason.encode()[:CLOSE_REASON_BYTES].decode(errors="ignore")


def close_code_for(error: Exception) -> tuple[int, str]:
    """The close code and reason a WebSocket gets for ``error``; never an internal message."""
    if isinstance(error, CloseRefusal):
        return error.code, error.reason
    if isinstance(error, AuthError):
        return protocol.REFUSAL_CLOSE_CODES.get(error.code, protocol.UNAUTHORIZED), error.detail[:120]
    if isinstance(error, StoreUnavailable):
        return 4503, "store unavailable; reconnect with backoff"
    if isinstance(error, EventRefused) and error.machine == SESSION.name:
        refused = refusal(error.state)
        return close_code_for(refused) if refused is not None else (4409, f"session is {error.state}")
    return 4500, "server error"


def close_code_for_state(state: str, definition: Definition = SESSION) -> tuple[int, str] | None:
    """How the connections of a session that reached ``state`` close; None while the session is usable."""
    refused = refusal(state, definition)
    return close_code_for(refused) if refused is not None else None


# -- HTTP problem details ------------------------------------------------------------------------

MAPPING: dict[type[Exception], Callable[[Any], ProblemDetailsException]] = {
    RecursionError: _undecodable,
    UnicodeDecodeError: _undecodable,
    HTTPException: _http,
    EventRefused: _refused,
    AuthError: _auth,
    VersionConflict: _conflict,
    UnknownEvent: lambda e: problem(404, "unknown_event", "No such event", str(e), known_events=list(e.known)),
    UnknownState: lambda e: problem(422, "unknown_state", "No such state", str(e), known_states=list(e.known)),
    InstanceNotFound: lambda e: problem(
        404, "session_not_found", "No such session", "no session with this id is visible to you"
    ),
    InvalidInput: lambda e: problem(422, "invalid_input", f"Invalid {e.field}", str(e), field=e.field),
    IdempotencyKeyReused: lambda e: problem(
        422, "idempotency_key_reused", "Idempotency key already used for another event", str(e)
    ),
    IdentityProviderUnavailable: lambda e: problem(
        503, e.code, "The identity provider is unavailable", e.detail, headers={"Retry-After": "5"}
    ),
    StoreUnavailable: lambda e: problem(
        503, "store_unavailable", "The session store is unavailable", "retry with backoff", headers={"Retry-After": "1"}
    ),
}


def config() -> ProblemDetailsConfig:
    return ProblemDetailsConfig(enable_for_all_http_exceptions=True, exception_to_problem_detail_map=MAPPING)


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Anything unmapped is a bug: log it with the request id, answer a problem without internals."""
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "internal_error", "Internal error", "the server failed; this is a bug").to_response(request)
