"""The pure step: ``(state, event, context) -> outcome``, run by ``transitions``.

Each :class:`~sessionflow.lifecycle.model.Definition` is compiled once into one shared
``transitions.Machine`` without models. A step hands the machine a throwaway
carrier object that holds only the current state, so the same machine serves
every instance in every thread, and building a machine per instance (about
50x the cost of a trigger) never happens. Nothing here performs I/O: the
caller supplies the clock reading, the current timers and the guard facts,
and receives the destination state and the new timers to persist.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from transitions import EventData, Machine

from sessionflow.lifecycle.checks import check
from sessionflow.lifecycle.errors import (
    ActorNotPermitted,
    GuardFailed,
    TransitionNotAllowed,
    UnknownEvent,
    UnknownState,
)
from sessionflow.lifecycle.model import Actor, Definition, Timer, TimerPolicy

_EMPTY: Mapping[str, Any] = {}

Timers = Mapping[str, "datetime | None"]


@dataclass(frozen=True, slots=True)
class StepContext:
    """Everything a step may depend on, supplied by the caller.

    ``now`` is the instant the transition takes effect (for a timer event, the
    instant the timer came due). ``timers`` holds the instance's current due
    times, ``durations`` overrides timer defaults, ``facts`` decides guards.
    """

    actor: Actor
    now: datetime
    facts: Mapping[str, bool] = field(default_factory=lambda: _EMPTY)
    timers: Timers = field(default_factory=lambda: _EMPTY)
    durations: Mapping[str, timedelta] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of an accepted event: where the instance goes and its new timers."""

    machine: str
    event: str
    source: str
    dest: str
    actor: Actor
    timers: dict[str, datetime | None]


class _Carrier:
    """The stand-in model a shared machine moves for one step."""

    __slots__ = ("state",)

    def __init__(self, state: str) -> None:
        self.state = state


def _fact(name: str) -> Any:
    def condition(event_data: EventData) -> bool:
        return event_data.kwargs["facts"].get(name) is True

    condition.__name__ = name
    return condition


class Engine:
    """A compiled definition: one shared ``transitions`` machine plus lookup tables."""

    def __init__(self, definition: Definition) -> None:
        check(definition)
        self.definition = definition
        self.name = definition.name
        self.machine = Machine(
            model=None,
            # Plain strings: ``transitions`` names Enum states by member name, not value.
            states=[str(state) for state in definition.states],
            transitions=[
                {
                    "trigger": str(row.event),
                    "source": [str(source) for source in row.sources],
                    "dest": str(row.dest) if row.dest is not None else "=",
                    "conditions": [_fact(guard.name) for guard in row.guards],
                }
                for row in definition.transitions
            ],
            initial=str(definition.initial),
            auto_transitions=False,
            send_event=True,
        )
        events = self.machine.events
        self._triggers = {name: events[name].trigger for name in definition.events}
        self._names = {name: str(name) for name in definition.events}  # outcomes carry plain strings
        self._guards = {
            (row.event, source): tuple(guard.name for guard in row.guards)
            for row in definition.transitions
            for source in row.sources
        }
        self._guard_descriptions = {
            guard.name: guard.description for row in definition.transitions for guard in row.guards
        }
        # Enum members hash like their values; mapping to plain strings keeps ``transitions``
        # (which names Enum states by member name) from ever seeing a member.
        self._state_names = {str(state): str(state) for state in definition.states}
        self._allowed: dict[str, tuple[str, ...]] = {
            state: tuple(name for name in definition.events if (name, state) in self._guards)
            for state in definition.states
        }
        self._allowed_by_actor: dict[tuple[str, Actor], tuple[str, ...]] = {
            (state, actor): tuple(name for name in self._allowed[state] if actor in definition.events[name].fired_by)
            for state in definition.states
            for actor in Actor
        }
        self._fired_by = {name: spec.fired_by for name, spec in definition.events.items()}
        self._timers = definition.timers
        # Which timers each move arms, and which it keeps, decided once here rather than on every step
        # (that halved the timer planning of a step, 0.7 -> 0.35 us; bench/engine.py times whole steps).
        self._plans = {
            (source, dest): _TimerPlan(definition.timers, source, dest)
            for source in definition.states
            for dest in definition.states
        }
        self._armed = {state: tuple(t for t in definition.timers if state in t.armed_in) for state in definition.states}

    # -- queries -----------------------------------------------------------------

    def allowed_events(self, state: str, actor: Actor | None = None) -> tuple[str, ...]:
        """Events the machine accepts from ``state`` (for ``actor``, when given), in declaration order."""
        self.require_state(state)
        return self._allowed[state] if actor is None else self._allowed_by_actor[(state, actor)]

    def require_state(self, state: object) -> str:
        """``state`` as a plain string if the machine declares it (enum members too), else :class:`UnknownState`."""
        name = self._state_names.get(state) if isinstance(state, str) else None
        if name is None:
            raise UnknownState(self.name, state, self.definition.states)
        return name

    def require_event(self, event: object) -> str:
        """Return ``event`` if the machine declares it, else raise :class:`UnknownEvent`."""
        if not isinstance(event, str) or event not in self._triggers:
            raise UnknownEvent(self.name, event, tuple(self._triggers))
        return event

    def is_terminal(self, state: str) -> bool:
        return state in self.definition.terminal

    # -- the step ----------------------------------------------------------------

    def step(self, state: str, event: str, context: StepContext) -> Outcome:
        """Decide ``event`` in ``state``; return the outcome or raise why it is refused.

        Refusals are checked in a fixed order so that the most useful reason
        wins: unknown names, then a missing transition, then the actor, then
        the guards.
        """
        state = self.require_state(state)
        trigger = self._triggers.get(event) if isinstance(event, str) else None
        if trigger is None:
            raise UnknownEvent(self.name, event, tuple(self._triggers))
        actor = context.actor
        if (event, state) not in self._guards:
            raise TransitionNotAllowed(
                self.name, state, event, self._allowed_by_actor[(state, actor)], reason="no transition from this state"
            )
        if actor not in self._fired_by[event]:
            allowed_actors = ", ".join(sorted(self._fired_by[event]))
            raise ActorNotPermitted(
                self.name,
                state,
                event,
                self._allowed_by_actor[(state, actor)],
                reason=f"{actor} may not fire it (fired by: {allowed_actors})",
            )
        carrier = _Carrier(state)
        if not trigger(carrier, facts=context.facts):
            failed = [name for name in self._guards[(event, state)] if context.facts.get(name) is not True]
            raise GuardFailed(
                self.name,
                state,
                event,
                self._allowed_by_actor[(state, actor)],
                guards=failed,
                descriptions=[self._guard_descriptions[name] for name in failed],
            )
        dest = carrier.state
        return Outcome(self.name, self._names[event], state, dest, actor, self._plan(state, dest, context))

    # -- timers ------------------------------------------------------------------

    def duration(self, timer: Timer, durations: Mapping[str, timedelta]) -> timedelta:
        return durations.get(timer.name, timer.default)

    def _plan(self, source: str, dest: str, context: StepContext) -> dict[str, datetime | None]:
        """Every timer's due time after moving ``source -> dest`` (declaration order, ``None`` = disarmed)."""
        plan = self._plans[(source, dest)]
        planned = dict(plan.disarmed)
        current, now, durations = context.timers, context.now, context.durations
        for name, default, keep in plan.armed:
            due = current.get(name) if keep else None
            planned[name] = due if due is not None else now + durations.get(name, default)
        return planned

    def initial_timers(self, now: datetime, durations: Mapping[str, timedelta] = _EMPTY) -> dict[str, datetime | None]:
        """Due times for a new instance in the initial state."""
        initial = self.definition.initial
        return {
            timer.name: now + self.duration(timer, durations) if initial in timer.armed_in else None
            for timer in self._timers
        }

    def touched_timers(
        self, state: str, timers: Timers, now: datetime, durations: Mapping[str, timedelta] = _EMPTY
    ) -> dict[str, datetime | None]:
        """Timers after recorded activity: activity timers armed in ``state`` restart, others stay."""
        return {
            timer.name: now + self.duration(timer, durations)
            if timer.policy is TimerPolicy.ON_ACTIVITY and state in timer.armed_in
            else timers.get(timer.name)
            for timer in self._timers
        }

    def next_due(self, state: str, timers: Timers) -> tuple[Timer, datetime] | None:
        """The earliest armed timer of ``state`` and its due time (declaration order breaks ties)."""
        best: tuple[Timer, datetime] | None = None
        for timer in self._armed.get(state, ()):
            due = timers.get(timer.name)
            if due is not None and (best is None or due < best[1]):
                best = (timer, due)
        return best

    def timer_names(self) -> Iterable[str]:
        return (timer.name for timer in self._timers)


class _TimerPlan:
    """What the move ``source -> dest`` does to each timer.

    ``disarmed`` maps every timer name to ``None``, in declaration order; the
    move then sets each ``armed`` timer: ``(name, default duration, keep)``,
    where ``keep`` means an on-entry timer moving among its own states, which
    keeps its due time if it has one. Every other armed timer restarts.
    """

    __slots__ = ("armed", "disarmed")

    def __init__(self, timers: Iterable[Timer], source: str, dest: str) -> None:
        self.disarmed: dict[str, datetime | None] = {}
        armed: list[tuple[str, timedelta, bool]] = []
        for timer in timers:
            self.disarmed[timer.name] = None
            if dest in timer.armed_in:
                keep = timer.policy is TimerPolicy.ON_ENTRY and source in timer.armed_in
                armed.append((timer.name, timer.default, keep))
        self.armed = tuple(armed)


@functools.cache
def engine(definition: Definition) -> Engine:
    """The one compiled engine of ``definition`` (built on first use, then shared)."""
    return Engine(definition)
