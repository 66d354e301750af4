"""What the application sees of the client: its transitions, why it stopped, the wire, its errors.

Plain values, built by the client and handed out; nothing here talks to the
server or steps a machine. None of them carries a token, a ticket or an id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sessionflow.client.backoff import Delay
from sessionflow.lifecycle.protocol import ClientAction


@dataclass(frozen=True, slots=True)
class ClientTransition:
    """The client machine moved: ``source --event--> dest``, with the close code and wait behind it."""

    event: str
    source: str
    dest: str
    actor: str
    at: datetime
    code: int | None = None
    reason: str = ""
    delay: Delay | None = None


@dataclass(frozen=True, slots=True)
class SessionTransition:
    """The server's session machine moved (a ``transition`` message; ``replayed`` after a resume)."""

    seq: int
    event: str
    from_state: str
    to_state: str
    actor: str
    at: str
    replayed: bool = False


Transition = ClientTransition | SessionTransition


@dataclass(frozen=True, slots=True)
class Stopped:
    """Why the client stopped: ``end`` (the server's doing) or ``stop`` (the application's), and what lay behind it."""

    event: str
    reason: str
    close_code: int | None = None
    status: int | None = None  # HTTP status of the refusal
    problem: str | None = None  # its problem-details code
    action: ClientAction | None = None


@dataclass(frozen=True, slots=True)
class Wire:
    """One message sent or received, described without tokens, tickets or ids (for traces and the demo)."""

    channel: Literal["http", "ws"]
    direction: Literal["send", "receive"]
    kind: str  # request, response, failure, open, message, close
    text: str
    exchange: int = 0  # pairs an HTTP response or failure with its request
    fields: Mapping[str, Any] = field(default_factory=dict)


class TransitionStream:
    """``async for`` over the transitions from subscription on; ends after the client stops."""

    def __init__(self, queue: asyncio.Queue[Transition | None]) -> None:
        self._queue = queue

    def __aiter__(self) -> TransitionStream:
        return self

    async def __anext__(self) -> Transition:
        item = await self._queue.get()
        if item is None:
            raise StopAsyncIteration
        return item
