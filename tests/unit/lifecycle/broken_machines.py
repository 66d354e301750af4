"""Example machine definitions, as data: one sound turnstile and variants that each break one rule.

``BROKEN`` maps a short name to a definition and the exact problems
:func:`sessionflow.lifecycle.checks.problems` must report for it: each variant changes the
sound machine in one way, so any extra or missing problem shows up in a test.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from sessionflow.lifecycle.model import Actor, Definition, EventSpec, Timer, TimerPolicy, Transition

_EVENTS = {
    "coin": EventSpec("coin", frozenset({Actor.CLIENT}), "pay"),
    "push": EventSpec("push", frozenset({Actor.CLIENT}), "walk through"),
    "retire": EventSpec("retire", frozenset({Actor.ADMIN, Actor.TIMER}), "taken out of service"),
}
_TRANSITIONS = (
    Transition("coin", ("locked",), "unlocked"),
    Transition("coin", ("unlocked",), None),  # a second coin is swallowed: a self-loop
    Transition("push", ("unlocked",), "locked"),
    Transition("retire", ("locked", "unlocked"), "retired"),
)
_SERVICE_LIFE = Timer(
    "service_life", "retire", frozenset({"locked", "unlocked"}), timedelta(days=365), TimerPolicy.ON_ENTRY, "wear"
)

SOUND = Definition(
    name="turnstile",
    states=("locked", "unlocked", "retired"),
    initial="locked",
    terminal=frozenset({"retired"}),
    events=_EVENTS,
    transitions=_TRANSITIONS,
    timers=(_SERVICE_LIFE,),
)


def _variant(**changes: object) -> Definition:
    return dataclasses.replace(SOUND, **changes)


def _with_event(name: str, *actors: Actor) -> dict[str, EventSpec]:
    return {**_EVENTS, name: EventSpec(name, frozenset(actors), name)}


BROKEN: dict[str, tuple[Definition, tuple[str, ...]]] = {
    "unreachable state": (
        _variant(
            states=(*SOUND.states, "attic"),
            transitions=(*_TRANSITIONS, Transition("push", ("attic",), "locked")),
        ),
        ("state 'attic' is unreachable from 'locked'",),
    ),
    "non-terminal dead end": (
        _variant(
            states=(*SOUND.states, "jammed"),
            events=_with_event("jam", Actor.CLIENT),
            transitions=(*_TRANSITIONS, Transition("jam", ("unlocked",), "jammed")),
        ),
        ("non-terminal state 'jammed' has no way out",),
    ),
    "non-terminal state whose only exit is a self-loop": (
        _variant(
            states=(*SOUND.states, "jammed"),
            events=_with_event("jam", Actor.CLIENT),
            transitions=(
                *_TRANSITIONS,
                Transition("jam", ("unlocked",), "jammed"),
                Transition("jam", ("jammed",), None),
            ),
        ),
        ("non-terminal state 'jammed' has no way out",),
    ),
    "terminal state with a way out": (
        _variant(
            events=_with_event("repair", Actor.ADMIN),
            transitions=(*_TRANSITIONS, Transition("repair", ("retired",), "locked")),
        ),
        ("terminal state 'retired' has a way out",),
    ),
    "event nobody may fire": (
        _variant(events={**_EVENTS, "push": EventSpec("push", frozenset(), "walk through")}),
        ("event 'push' declares no actor that may fire it",),
    ),
    "timer event without a timer": (
        _variant(events={**_EVENTS, "push": EventSpec("push", frozenset({Actor.CLIENT, Actor.TIMER}), "auto")}),
        ("event 'push' is fired by a timer but no timer fires it",),
    ),
    "timer armed where its event is not allowed": (
        _variant(
            transitions=(*_TRANSITIONS[:3], Transition("retire", ("locked",), "retired")),
        ),
        ("timer 'service_life' is armed in 'unlocked', where 'retire' is not allowed",),
    ),
    "timer armed in a terminal state": (
        _variant(timers=(dataclasses.replace(_SERVICE_LIFE, armed_in=frozenset({"locked", "unlocked", "retired"})),)),
        ("timer 'service_life' is armed in terminal state 'retired'",),
    ),
    "timer that fires an event timers may not fire": (
        _variant(
            timers=(_SERVICE_LIFE, Timer("nag", "coin", frozenset({"locked"}), timedelta(1), TimerPolicy.ON_ENTRY, ""))
        ),
        ("timer 'nag' fires 'coin', which timers may not fire",),
    ),
    "timer that fires an undeclared event": (
        _variant(
            timers=(_SERVICE_LIFE, Timer("nag", "beep", frozenset({"locked"}), timedelta(1), TimerPolicy.ON_ENTRY, ""))
        ),
        ("timer 'nag' fires undeclared event 'beep'",),
    ),
    "timer armed nowhere": (
        _variant(timers=(dataclasses.replace(_SERVICE_LIFE, armed_in=frozenset()),)),
        ("timer 'service_life' is armed in no state",),
    ),
    "timer with a zero duration": (
        _variant(timers=(dataclasses.replace(_SERVICE_LIFE, default=timedelta(0)),)),
        ("timer 'service_life' has a non-positive default duration",),
    ),
    "two timers with one name": (
        _variant(timers=(_SERVICE_LIFE, _SERVICE_LIFE)),
        ("duplicate timer names",),
    ),
    "transition from an unknown state": (
        _variant(transitions=(*_TRANSITIONS, Transition("push", ("cellar",), "locked"))),
        ("event 'push' leaves unknown state 'cellar'",),
    ),
    "transition into an unknown state": (
        _variant(transitions=(*_TRANSITIONS[:2], Transition("push", ("unlocked",), "cellar"), _TRANSITIONS[3])),
        ("event 'push' enters unknown state 'cellar'",),
    ),
    "transition from no state at all": (
        _variant(
            events=_with_event("wave", Actor.CLIENT), transitions=(*_TRANSITIONS, Transition("wave", (), "locked"))
        ),
        ("a transition of event 'wave' has no source state",),
    ),
    "transition on an undeclared event": (
        _variant(transitions=(*_TRANSITIONS, Transition("kick", ("locked",), "unlocked"))),
        ("transition uses undeclared event 'kick'",),
    ),
    "two transitions for one (event, source)": (
        _variant(transitions=(*_TRANSITIONS, Transition("coin", ("locked",), "retired"))),
        ("event 'coin' has two transitions from 'locked'",),
    ),
    "event without a transition": (
        _variant(events=_with_event("wave", Actor.CLIENT)),
        ("event 'wave' has no transition",),
    ),
    "event registered under another name": (
        _variant(events={**_EVENTS, "shove": EventSpec("push", frozenset({Actor.CLIENT}), "")}),
        ("event registered as 'shove' is named 'push'", "event 'shove' has no transition"),
    ),
    "initial state that is not a state": (
        _variant(initial="nowhere"),
        (
            "initial state 'nowhere' is not a state",
            "state 'locked' is unreachable from 'nowhere'",
            "state 'unlocked' is unreachable from 'nowhere'",
            "state 'retired' is unreachable from 'nowhere'",
        ),
    ),
    "terminal state that is not a state": (
        _variant(terminal=frozenset({"retired", "scrapped"})),
        ("terminal state 'scrapped' is not a state",),
    ),
    "duplicate state names": (
        _variant(states=(*SOUND.states, "locked")),
        ("duplicate state names",),
    ),
}
