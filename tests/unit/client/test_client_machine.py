"""The client machine, written out here independently of its definition, and checked pair by pair.

``logged_out -> logging_in -> active -> connecting -> connected``; drops wait in
``reconnecting`` for the backoff timer, 4419 goes through ``refreshing``;
``stopped`` is the only end. The application fires login, connect, logout and
stop; the server's answers fire the rest; the backoff timer fires retry.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from sessionflow.lifecycle import (
    CLIENT,
    MACHINES,
    Actor,
    ActorNotPermitted,
    ClientEvent,
    ClientState,
    StepContext,
    TimerPolicy,
    TransitionNotAllowed,
    engine,
)
from sessionflow.lifecycle.checks import problems

NOW = datetime(2030, 1, 1, tzinfo=UTC)

STATES = (
    "logged_out",
    "logging_in",
    "active",
    "connecting",
    "connected",
    "reconnecting",
    "refreshing",
    "logging_out",
    "stopped",
)
HELD = ("active", "connecting", "connected", "reconnecting", "refreshing")  # a session is held
EXPECTED: dict[tuple[str, str], str] = {
    ("logged_out", "login"): "logging_in",
    ("logging_in", "logged_in"): "active",
    ("active", "connect"): "connecting",
    ("connecting", "welcome"): "connected",
    ("connected", "token_expiring"): "connected",
    ("active", "refreshed"): "active",
    ("connected", "refreshed"): "connected",
    ("reconnecting", "refreshed"): "reconnecting",
    ("refreshing", "refreshed"): "reconnecting",  # refresh, then reconnect through the backoff timer
    ("connected", "reauthenticated"): "connected",
    ("connecting", "drop"): "reconnecting",
    ("connected", "drop"): "reconnecting",
    ("refreshing", "drop"): "reconnecting",
    ("connecting", "throttle"): "reconnecting",
    ("connected", "throttle"): "reconnecting",
    ("connecting", "expire"): "refreshing",
    ("connected", "expire"): "refreshing",
    ("reconnecting", "retry"): "connecting",
    **{(state, "logout"): "logging_out" for state in HELD},
    **{(state, "end"): "stopped" for state in ("logging_in", *HELD, "logging_out")},
    **{(state, "stop"): "stopped" for state in STATES if state != "stopped"},
}
FIRED_BY: dict[str, frozenset[Actor]] = {
    "login": frozenset({Actor.CLIENT}),
    "logged_in": frozenset({Actor.SERVER}),
    "connect": frozenset({Actor.CLIENT}),
    "welcome": frozenset({Actor.SERVER}),
    "token_expiring": frozenset({Actor.SERVER}),
    "refreshed": frozenset({Actor.SERVER}),
    "reauthenticated": frozenset({Actor.SERVER}),
    "drop": frozenset({Actor.SERVER}),
    "throttle": frozenset({Actor.SERVER}),
    "expire": frozenset({Actor.SERVER}),
    "retry": frozenset({Actor.TIMER}),
    "logout": frozenset({Actor.CLIENT}),
    "end": frozenset({Actor.SERVER}),
    "stop": frozenset({Actor.CLIENT}),
}
EVENTS = tuple(FIRED_BY)
CLIENT_ENGINE = engine(CLIENT)
PAIRS = list(itertools.product(STATES, EVENTS))


def expected_allowed(state: str, actor: Actor) -> tuple[str, ...]:
    return tuple(event for event in EVENTS if (state, event) in EXPECTED and actor in FIRED_BY[event])


def test_states_and_events_are_the_designed_names() -> None:
    """logged_out is initial, stopped the only terminal state; the enums match the names."""
    assert tuple(CLIENT.states) == STATES
    assert tuple(CLIENT.events) == EVENTS
    assert {str(s) for s in ClientState} == set(STATES)
    assert {str(e) for e in ClientEvent} == set(EVENTS)
    assert CLIENT.initial == "logged_out"
    assert CLIENT.terminal == frozenset({"stopped"})
    assert {name: spec.fired_by for name, spec in CLIENT.events.items()} == FIRED_BY


def test_the_client_machine_passes_the_definition_checks_and_is_shipped() -> None:
    """It compiles like the server's machines, and MACHINES (hence diagrams and the API) includes it."""
    assert problems(CLIENT) == []
    assert MACHINES["client"] is CLIENT


@pytest.mark.parametrize(("state", "event"), PAIRS, ids=[f"{state}-{event}" for state, event in PAIRS])
def test_every_state_event_pair_goes_where_the_design_says_or_is_refused(state: str, event: str) -> None:
    """Allowed pairs land where expected for their actors and are refused to others; other pairs are refused to all."""
    if (state, event) in EXPECTED:
        for actor in Actor:
            context = StepContext(actor=actor, now=NOW)
            if actor in FIRED_BY[event]:
                outcome = CLIENT_ENGINE.step(state, event, context)
                assert (outcome.machine, outcome.source, outcome.event, outcome.dest) == (
                    "client",
                    state,
                    event,
                    EXPECTED[(state, event)],
                )
            else:
                with pytest.raises(ActorNotPermitted):
                    CLIENT_ENGINE.step(state, event, context)
        return
    for actor in Actor:
        with pytest.raises(TransitionNotAllowed) as refused:
            CLIENT_ENGINE.step(state, event, StepContext(actor=actor, now=NOW))
        assert refused.value.allowed_events == expected_allowed(state, actor)


def test_the_backoff_timer_is_armed_only_while_reconnecting_with_the_delay_the_client_chose() -> None:
    """Entering reconnecting arms backoff (default 0.5 s, or the duration given); leaving disarms it."""
    timer = CLIENT.timer("backoff")
    assert (timer.event, timer.armed_in, timer.default, timer.policy) == (
        "retry",
        frozenset({"reconnecting"}),
        timedelta(seconds=0.5),
        TimerPolicy.ON_ENTRY,
    )
    dropped = CLIENT_ENGINE.step("connected", "drop", StepContext(actor=Actor.SERVER, now=NOW))
    assert dropped.timers == {"backoff": NOW + timedelta(seconds=0.5)}
    chosen = StepContext(actor=Actor.SERVER, now=NOW, durations={"backoff": timedelta(seconds=7)})
    assert CLIENT_ENGINE.step("connected", "throttle", chosen).timers == {"backoff": NOW + timedelta(seconds=7)}
    waiting = StepContext(actor=Actor.SERVER, now=NOW + timedelta(seconds=1), timers=dropped.timers)
    assert (
        CLIENT_ENGINE.step("reconnecting", "refreshed", waiting).timers == dropped.timers
    )  # the wait keeps its due time
    retried = StepContext(actor=Actor.TIMER, now=NOW + timedelta(seconds=1), timers=dropped.timers)
    assert CLIENT_ENGINE.step("reconnecting", "retry", retried).timers == {"backoff": None}


def test_reconnecting_never_gives_up_on_its_own() -> None:
    """No event leads from the reconnect loop to stopped except the server's end and the application's stop."""
    for state in ("connecting", "reconnecting", "refreshing"):
        assert {event for (source, event), dest in EXPECTED.items() if source == state and dest == "stopped"} == {
            "end",
            "stop",
        }
