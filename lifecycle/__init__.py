"""Machine definitions and the pure step function. Imports neither persistence nor api."""

from __future__ import annotations

from lifecycle.client import CLIENT, ClientEvent, ClientState
from lifecycle.clock import Clock, ManualClock, SystemClock
from lifecycle.connection import CONNECTION, ConnectionEvent, ConnectionState
from lifecycle.engine import Engine, Outcome, StepContext, engine
from lifecycle.errors import (
    ActorNotPermitted,
    DefinitionError,
    EventRefused,
    GuardFailed,
    LifecycleError,
    TransitionNotAllowed,
    UnknownEvent,
    UnknownState,
)
from lifecycle.model import Actor, Definition, EventSpec, Guard, Timer, TimerPolicy, Transition
from lifecycle.session import SESSION, SessionEvent, SessionGuard, SessionState

MACHINES: dict[str, Definition] = {SESSION.name: SESSION, CONNECTION.name: CONNECTION, CLIENT.name: CLIENT}

__all__ = [
    "CLIENT",
    "CONNECTION",
    "MACHINES",
    "SESSION",
    "Actor",
    "ActorNotPermitted",
    "ClientEvent",
    "ClientState",
    "Clock",
    "ConnectionEvent",
    "ConnectionState",
    "Definition",
    "DefinitionError",
    "Engine",
    "EventRefused",
    "EventSpec",
    "Guard",
    "GuardFailed",
    "LifecycleError",
    "ManualClock",
    "Outcome",
    "SessionEvent",
    "SessionGuard",
    "SessionState",
    "StepContext",
    "SystemClock",
    "Timer",
    "TimerPolicy",
    "Transition",
    "TransitionNotAllowed",
    "UnknownEvent",
    "UnknownState",
    "engine",
]
