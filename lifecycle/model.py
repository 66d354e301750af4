"""The vocabulary machine definitions are written in.

A :class:`Definition` is plain data: states, transitions, guards, timers and
who may fire each event. It is declared once per machine and never mutated;
:mod:`sessionflow.lifecycle.engine` compiles it into one shared ``transitions`` machine.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta


class Actor(enum.StrEnum):
    """Who fires an event. Every event declares the actors allowed to fire it."""

    CLIENT = "client"  # the session's own holder, through its tokens
    ADMIN = "admin"  # an administrator acting on someone else's session
    SERVER = "server"  # the service itself (login, WebSocket handling)
    TIMER = "timer"  # a persisted timer that came due


class TimerPolicy(enum.StrEnum):
    """How a timer's due time moves when a transition lands in a state where it is armed."""

    ON_ENTRY = "on_entry"  # armed when entering its states; kept while moving among them
    ON_ACTIVITY = "on_activity"  # restarted by every transition (and recorded activity)


@dataclass(frozen=True, slots=True)
class Guard:
    """A named precondition, decided by the caller and passed in as a fact.

    Keeping guards as facts keeps the step pure: the layer that owns the I/O
    (password check, user lookup) computes them, the machine only decides.
    """

    name: str
    description: str


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of the transition table. ``dest is None`` means "stay in the same state"."""

    event: str
    sources: tuple[str, ...]
    dest: str | None
    guards: tuple[Guard, ...] = ()


@dataclass(frozen=True, slots=True)
class EventSpec:
    """An event, who may fire it and what it means."""

    name: str
    fired_by: frozenset[Actor]
    description: str


@dataclass(frozen=True, slots=True)
class Timer:
    """A persisted timer: while the instance is in ``armed_in``, ``event`` fires at the due time."""

    name: str
    event: str
    armed_in: frozenset[str]
    default: timedelta
    policy: TimerPolicy
    description: str


@dataclass(frozen=True, eq=False)
class Definition:
    """A complete machine: the single source for the engine, the schema and the diagrams.

    Compared and hashed by identity: each definition is declared once, as a
    module constant, and the engine keeps one compiled machine per definition.
    """

    name: str
    states: tuple[str, ...]
    initial: str
    terminal: frozenset[str]
    events: Mapping[str, EventSpec]
    transitions: tuple[Transition, ...]
    timers: tuple[Timer, ...] = ()
    descriptions: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Declared properties of states (XState calls them state tags), e.g. which session states are
    usable. Code outside the machine asks for a tag, never for a list of state names, so a state added
    to the machine carries its properties with it."""

    def timer(self, name: str) -> Timer:
        """Return the timer called ``name``; ``KeyError`` if there is none."""
        for timer in self.timers:
            if timer.name == name:
                return timer
        raise KeyError(name)
