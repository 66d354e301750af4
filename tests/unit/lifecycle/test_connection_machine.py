"""The connection machine against docs/machines.md, written out here independently of the definition.

``connecting -> open -> closed``, with ``rejected`` and ``dropped``; all three
ends are terminal. The server drives every event; timers can also reject a
handshake that takes too long and drop a connection that stops answering.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from sessionflow.lifecycle import (
    CONNECTION,
    Actor,
    ActorNotPermitted,
    ConnectionEvent,
    ConnectionState,
    StepContext,
    TransitionNotAllowed,
    engine,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)

STATES = ("connecting", "open", "closed", "rejected", "dropped")
TERMINAL = frozenset({"closed", "rejected", "dropped"})
EXPECTED: dict[tuple[str, str], str] = {
    ("connecting", "accept"): "open",
    ("connecting", "reject"): "rejected",
    ("open", "close"): "closed",
    ("open", "drop"): "dropped",
}
FIRED_BY: dict[str, frozenset[Actor]] = {
    "accept": frozenset({Actor.SERVER}),
    "reject": frozenset({Actor.SERVER, Actor.TIMER}),  # refused, or the handshake timer ran out
    "close": frozenset({Actor.SERVER}),
    "drop": frozenset({Actor.SERVER, Actor.TIMER}),  # abnormal close, or heartbeats missed
}
GUARDS: dict[tuple[str, str], tuple[str, ...]] = {}
EVENTS = tuple(FIRED_BY)

CONNECTION_ENGINE = engine(CONNECTION)
PAIRS = list(itertools.product(STATES, EVENTS))


def expected_allowed(state: str, actor: Actor) -> tuple[str, ...]:
    return tuple(event for event in EVENTS if (state, event) in EXPECTED and actor in FIRED_BY[event])


def test_states_and_events_are_the_designed_names() -> None:
    """connecting is initial; closed, rejected and dropped are the terminal states; the enums match."""
    assert tuple(CONNECTION.states) == STATES
    assert set(CONNECTION.events) == set(EVENTS)
    assert {str(state) for state in ConnectionState} == set(STATES)
    assert {str(event) for event in ConnectionEvent} == set(EVENTS)
    assert CONNECTION.initial == "connecting"
    assert CONNECTION.terminal == TERMINAL


@pytest.mark.parametrize(("state", "event"), PAIRS, ids=[f"{state}-{event}" for state, event in PAIRS])
def test_every_state_event_pair_goes_where_the_design_says_or_is_refused(state: str, event: str) -> None:
    """Allowed pairs land on the design's destination for every permitted actor; others raise TransitionNotAllowed."""
    if (state, event) in EXPECTED:
        for actor in sorted(FIRED_BY[event]):
            outcome = CONNECTION_ENGINE.step(state, event, StepContext(actor=actor, now=NOW))
            assert (outcome.machine, outcome.source, outcome.event, outcome.dest) == (
                "connection",
                state,
                event,
                EXPECTED[(state, event)],
            )
        return
    for actor in Actor:
        with pytest.raises(TransitionNotAllowed) as refused:
            CONNECTION_ENGINE.step(state, event, StepContext(actor=actor, now=NOW))
        assert (refused.value.machine, refused.value.state, refused.value.event) == ("connection", state, event)
        assert refused.value.allowed_events == expected_allowed(state, actor)


ACTOR_CASES = [(event, actor) for event in EVENTS for actor in Actor]


@pytest.mark.parametrize(("event", "actor"), ACTOR_CASES, ids=[f"{event}-{actor}" for event, actor in ACTOR_CASES])
def test_each_event_is_fired_only_by_its_declared_actors(event: str, actor: Actor) -> None:
    """Clients and admins never move a connection; timers only reject or drop it."""
    (state,) = [source for source, name in EXPECTED if name == event]
    ctx = StepContext(actor=actor, now=NOW)
    if actor in FIRED_BY[event]:
        assert CONNECTION_ENGINE.step(state, event, ctx).dest == EXPECTED[(state, event)]
        return
    with pytest.raises(ActorNotPermitted) as refused:
        CONNECTION_ENGINE.step(state, event, ctx)
    assert (refused.value.state, refused.value.event) == (state, event)
    assert refused.value.allowed_events == expected_allowed(state, actor)


def test_connection_transitions_have_no_guards() -> None:
    """The connection machine decides on state and actor alone: stepping with false facts changes nothing."""
    assert all(not row.guards for row in CONNECTION.transitions)
    assert not GUARDS
    for (state, event), dest in EXPECTED.items():
        ctx = StepContext(actor=Actor.SERVER, now=NOW, facts={"anything": False})
        assert CONNECTION_ENGINE.step(state, event, ctx).dest == dest


@pytest.mark.parametrize("state", STATES)
def test_allowed_events_match_the_design_table(state: str) -> None:
    """allowed_events lists the design's events for a state, overall and per actor."""
    assert set(CONNECTION_ENGINE.allowed_events(state)) == {event for event in EVENTS if (state, event) in EXPECTED}
    for actor in Actor:
        assert CONNECTION_ENGINE.allowed_events(state, actor) == expected_allowed(state, actor)


@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_terminal_states_accept_no_event(state: str) -> None:
    """A closed, rejected or dropped connection never moves again."""
    assert CONNECTION_ENGINE.is_terminal(state)
    assert CONNECTION_ENGINE.allowed_events(state) == ()


def test_a_connection_cannot_be_accepted_twice_or_reopened() -> None:
    """accept from open and accept from closed are refused: one handshake, one life."""
    for state in ("open", "closed"):
        with pytest.raises(TransitionNotAllowed):
            CONNECTION_ENGINE.step(state, "accept", StepContext(actor=Actor.SERVER, now=NOW))
