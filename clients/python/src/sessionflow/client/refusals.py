"""How the client reads the server's refusals: WebSocket close codes and HTTP problem details.

Close codes are read from the table shared with the server
(:data:`sessionflow.lifecycle.protocol.CLOSE_CODES`); the client keeps no copy, so a change
there changes what the client does.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping

import httpx

from sessionflow.lifecycle import protocol
from sessionflow.lifecycle.client import ClientEvent
from sessionflow.lifecycle.protocol import ClientAction

E = ClientEvent

# What each close-code action of the shared table means for the client machine.
EVENT_FOR_ACTION: Mapping[ClientAction, ClientEvent] = {
    ClientAction.STOP: E.END,
    ClientAction.RECONNECT: E.DROP,
    ClientAction.RECONNECT_AFTER: E.THROTTLE,
    ClientAction.NEW_TICKET: E.DROP,  # every connect fetches a fresh ticket
    ClientAction.REFRESH: E.EXPIRE,
    ClientAction.LOG_IN: E.END,  # the session is gone: the application logs in again, with a new client
    ClientAction.FINISH_LOGIN: E.END,
}
ABNORMAL = 1006  # no close frame: the connection was lost
DEFAULT_RETRY_AFTER = 5.0
EXPIRED = frozenset({"token_expired", "session_expired"})  # problem codes a refresh can cure
_RETRY_AFTER = re.compile(r"retry_after=(\d+(?:\.\d+)?)")


def close_action(code: int) -> tuple[ClientEvent, ClientAction]:
    """The client machine's event for a close code, from the table shared with the server.

    Codes the table does not list (1006 lost, 1011, 1012, ...) reconnect with backoff.
    """
    row = protocol.BY_CODE.get(code)
    action = row.action if row is not None else ClientAction.RECONNECT
    return EVENT_FOR_ACTION[action], action


def close_name(code: int) -> str:
    row = protocol.BY_CODE.get(code)
    return row.name if row is not None else ("abnormal" if code == ABNORMAL else "unlisted")


def close_retry_after(reason: str, retry_after: float | None) -> float:
    """The wait a throttling close asks for: the ``error`` message's ``retry_after``, else the close reason's."""
    if retry_after is not None:
        return retry_after
    match = _RETRY_AFTER.search(reason)
    return float(match.group(1)) if match else DEFAULT_RETRY_AFTER


def problem(response: httpx.Response) -> str | None:
    """The problem-details ``code`` of a response, if it has one."""
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


def response_retry_after(response: httpx.Response) -> float:
    """The wait a throttling response asks for: its ``Retry-After`` header, else its body's ``retry_after``."""
    for value in (response.headers.get("retry-after"), json_field(response, "retry_after")):
        with contextlib.suppress(TypeError, ValueError):
            return float(value)  # type: ignore[arg-type]
    return DEFAULT_RETRY_AFTER


def json_field(response: httpx.Response, name: str) -> object:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get(name) if isinstance(body, dict) else None
