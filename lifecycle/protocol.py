"""The WebSocket close codes of docs/protocol.md, as data shared by the server, the API and clients.

``GET /api/lifecycle/close-codes`` serves this table; the reference client
decides what to do on a close from the same rows.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass


class ClientAction(enum.StrEnum):
    STOP = "stop"
    RECONNECT = "reconnect"  # exponential backoff with full jitter, for as long as the session is usable
    RECONNECT_AFTER = "reconnect_after"  # wait retry_after seconds, then reconnect
    NEW_TICKET = "new_ticket"  # get a new ticket, then reconnect
    REFRESH = "refresh"  # refresh the tokens, then reconnect
    LOG_IN = "log_in"  # the session is gone; log in again
    FINISH_LOGIN = "finish_login"


@dataclass(frozen=True, slots=True)
class CloseCode:
    code: int
    name: str
    meaning: str
    action: ClientAction
    retry: bool  # whether reconnecting (possibly after the action) can succeed


CLOSE_CODES: tuple[CloseCode, ...] = (
    CloseCode(1000, "normal", "normal close (client or logout)", ClientAction.STOP, retry=False),
    CloseCode(1001, "going_away", "server going away", ClientAction.RECONNECT, retry=True),
    CloseCode(1008, "policy_violation", "policy violation (Origin not allowed)", ClientAction.STOP, retry=False),
    CloseCode(1009, "message_too_big", "message too big", ClientAction.STOP, retry=False),
    CloseCode(4400, "malformed_message", "malformed message (client bug)", ClientAction.STOP, retry=False),
    CloseCode(4401, "unauthorized", "missing, invalid or forged credentials", ClientAction.LOG_IN, retry=False),
    CloseCode(4403, "revoked", "session revoked", ClientAction.LOG_IN, retry=False),
    CloseCode(
        4406,
        "forbidden",
        "authenticated, but without the role this needs (the inspector's feed: admin)",
        ClientAction.STOP,
        retry=False,
    ),
    CloseCode(
        4408, "ticket_expired", "authentication or ticket expired before use", ClientAction.NEW_TICKET, retry=True
    ),
    CloseCode(
        4409,
        "not_connectable",
        "session not connectable in its state (e.g. anonymous)",
        ClientAction.FINISH_LOGIN,
        retry=False,
    ),
    CloseCode(4410, "session_closed", "session closed (logout, end of life)", ClientAction.LOG_IN, retry=False),
    CloseCode(4419, "session_expired", "token or session expired, refreshable", ClientAction.REFRESH, retry=True),
    CloseCode(4429, "too_many", "too many connections or attempts", ClientAction.RECONNECT_AFTER, retry=True),
    CloseCode(4500, "server_error", "server error", ClientAction.RECONNECT, retry=True),
    CloseCode(4503, "store_unavailable", "store unavailable", ClientAction.RECONNECT, retry=True),
    CloseCode(4504, "heartbeat_timeout", "heartbeat timeout", ClientAction.RECONNECT, retry=True),
)

BY_CODE = {row.code: row for row in CLOSE_CODES}

UNAUTHORIZED = 4401  # what any other refused credential closes with
# The problem codes of refused credentials -> the close code a WebSocket presenting them gets. The server
# and the services middleware (sessionflow.middleware) refuse by this one table.
REFUSAL_CLOSE_CODES: dict[str, int] = {
    "token_expired": 4419,
    "session_expired": 4419,
    "session_revoked": 4403,
    "admin_required": 4406,
    "session_closed": 4410,
    "session_not_connectable": 4409,
    "ticket_expired": 4408,
    "rate_limited": 4429,
}


def as_data() -> list[dict[str, object]]:
    return [{**asdict(row), "action": str(row.action)} for row in CLOSE_CODES]
