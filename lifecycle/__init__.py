"""Machine definitions and the pure step function. Imports neither persistence nor api."""

from __future__ import annotations

from sessionflow.lifecycle.client import CLIENT, ClientEvent, ClientState
from sessionflow.lifecycle.clock import Clock, ManualClock, SystemClock
from sessionflow.lifecycle.connection import CONNECTION, ConnectionEvent, ConnectionState
from sessionflow.lifecycle.engine import Engine, Outcome, StepContext, engine
from sessionflow.lifecycle.errors import (
    ActorNotPermitted,
    DefinitionError,
    EventRefused,
    GuardFailed,
    LifecycleError,
    TransitionNotAllowed,
    UnknownEvent,
    UnknownState,
)
from sessionflow.lifecycle.model import Actor, Definition, EventSpec, Guard, Timer, TimerPolicy, Transition
from sessionflow.lifecycle.session import SESSION, Access, SessionEvent, SessionGuard, SessionState, access

MACHINES: dict[str, Definition] = {SESSION.name: SESSION, CONNECTION.name: CONNECTION, CLIENT.name: CLIENT}

__all__ = [
    "CLIENT",
    "CONNECTION",
    "MACHINES",
    "SESSION",
    "Access",
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
    "access",
    "engine",
]
