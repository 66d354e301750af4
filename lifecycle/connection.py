"""The connection machine: one instance per WebSocket connection (docs/machines.md).

``connecting -> open -> closed``, with ``rejected`` (authentication or session
state refused) and ``dropped`` (abnormal close or heartbeat timeout). All three
ends are terminal. Opening the first and closing the last connection of a
session drive the session machine's ``connect`` and ``disconnect``/``drop``:
:data:`SESSION_EVENT` says which connection event drives which session event.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import timedelta

from sessionflow.lifecycle.model import Actor, Definition, EventSpec, Timer, TimerPolicy, Transition
from sessionflow.lifecycle.session import SessionEvent


class ConnectionState(enum.StrEnum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSED = "closed"
    REJECTED = "rejected"
    DROPPED = "dropped"


class ConnectionEvent(enum.StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    CLOSE = "close"
    DROP = "drop"


C = ConnectionState
E = ConnectionEvent

CONNECTION = Definition(
    name="connection",
    states=tuple(C),
    initial=C.CONNECTING,
    terminal=frozenset({C.CLOSED, C.REJECTED, C.DROPPED}),
    events={
        spec.name: spec
        for spec in (
            EventSpec(E.ACCEPT, frozenset({Actor.SERVER}), "credentials and session state accepted"),
            EventSpec(
                E.REJECT, frozenset({Actor.SERVER, Actor.TIMER}), "refused with a close code, or handshake too slow"
            ),
            EventSpec(E.CLOSE, frozenset({Actor.SERVER}), "clean close by either side"),
            EventSpec(E.DROP, frozenset({Actor.SERVER, Actor.TIMER}), "abnormal close, or heartbeats missed"),
        )
    },
    transitions=(
        Transition(E.ACCEPT, (C.CONNECTING,), C.OPEN),
        Transition(E.REJECT, (C.CONNECTING,), C.REJECTED),
        Transition(E.CLOSE, (C.OPEN,), C.CLOSED),
        Transition(E.DROP, (C.OPEN,), C.DROPPED),
    ),
    timers=(
        Timer(
            "handshake",
            E.REJECT,
            frozenset({C.CONNECTING}),
            timedelta(seconds=10),
            TimerPolicy.ON_ENTRY,
            "authentication must finish this soon after the handshake",
        ),
        Timer(
            "heartbeat",
            E.DROP,
            frozenset({C.OPEN}),
            timedelta(seconds=75),
            TimerPolicy.ON_ACTIVITY,
            "three missed heartbeat intervals; restarted by every pong",
        ),
    ),
    descriptions={
        C.CONNECTING: "handshake accepted, credentials being checked",
        C.OPEN: "authenticated and live",
        C.CLOSED: "closed cleanly (terminal)",
        C.REJECTED: "refused with a close code (terminal)",
        C.DROPPED: "lost abnormally or heartbeats missed (terminal)",
    },
)

SESSION_EVENT: Mapping[str, str] = {
    E.ACCEPT: SessionEvent.CONNECT,  # fired when the machine allows it: the first live connection
    E.CLOSE: SessionEvent.DISCONNECT,  # fired when the machine allows it and no connection is left open
    E.DROP: SessionEvent.DROP,  # likewise, for a connection lost rather than closed
}
"""The session event each connection event drives, fired by the server as the session machine allows."""
