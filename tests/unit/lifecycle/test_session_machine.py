"""The session machine against docs/machines.md, written out here independently of the definition.

Every (state, event) pair is stepped: allowed pairs land where the design table
says, refused ones raise the right error carrying state, event and the events
the caller could fire instead.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from sessionflow.lifecycle import (
    SESSION,
    Actor,
    ActorNotPermitted,
    GuardFailed,
    SessionEvent,
    SessionState,
    StepContext,
    TransitionNotAllowed,
    UnknownEvent,
    UnknownState,
    engine,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)

# docs/machines.md, one entry per (state, event) the machine accepts. Nothing here is read from SESSION.
NON_TERMINAL = (
    "anonymous",
    "authenticated",
    "session_active",
    "ws_connected",
    "ws_disconnected",
    "session_expired",
)
EXPECTED: dict[tuple[str, str], str] = {
    ("anonymous", "authenticate"): "authenticated",
    ("authenticated", "activate"): "session_active",
    ("session_active", "connect"): "ws_connected",
    ("ws_disconnected", "connect"): "ws_connected",
    ("ws_connected", "disconnect"): "session_active",
    ("ws_connected", "drop"): "ws_disconnected",
    ("ws_disconnected", "grace_elapsed"): "session_active",
    ("session_active", "expire"): "session_expired",
    ("ws_connected", "expire"): "session_expired",
    ("ws_disconnected", "expire"): "session_expired",
    ("session_expired", "refresh"): "session_active",
    ("session_active", "refresh"): "session_active",
    ("ws_connected", "refresh"): "ws_connected",
    ("ws_disconnected", "refresh"): "ws_disconnected",
    **{(state, "logout"): "closed" for state in NON_TERMINAL},
    **{(state, "revoke"): "revoked" for state in NON_TERMINAL},
    **{(state, "end"): "closed" for state in NON_TERMINAL},
}
FIRED_BY: dict[str, frozenset[Actor]] = {
    "authenticate": frozenset({Actor.SERVER}),
    "activate": frozenset({Actor.SERVER}),
    "connect": frozenset({Actor.SERVER}),
    "disconnect": frozenset({Actor.SERVER}),
    "drop": frozenset({Actor.SERVER}),
    "grace_elapsed": frozenset({Actor.TIMER}),
    "expire": frozenset({Actor.TIMER}),
    "refresh": frozenset({Actor.CLIENT}),
    "logout": frozenset({Actor.CLIENT}),
    "revoke": frozenset({Actor.ADMIN, Actor.SERVER}),
    "end": frozenset({Actor.TIMER}),
}
GUARDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("anonymous", "authenticate"): ("credentials_verified",),
    ("authenticated", "activate"): ("user_enabled", "under_session_cap"),
    ("session_expired", "refresh"): ("refresh_token_current",),
    ("session_active", "refresh"): ("refresh_token_current",),
    ("ws_connected", "refresh"): ("refresh_token_current",),
    ("ws_disconnected", "refresh"): ("refresh_token_current",),
}
STATES = (*NON_TERMINAL, "closed", "revoked")
EVENTS = tuple(FIRED_BY)
TERMINAL = frozenset({"closed", "revoked"})
ALL_FACTS = {name: True for names in GUARDS.values() for name in names}


def expected_allowed(state: str, actor: Actor) -> tuple[str, ...]:
    """The events ``actor`` may fire from ``state`` according to the tables above, in design order."""
    return tuple(event for event in EVENTS if (state, event) in EXPECTED and actor in FIRED_BY[event])


def firer(event: str) -> Actor:
    """One actor that may fire ``event`` (the first in Actor declaration order)."""
    return next(actor for actor in Actor if actor in FIRED_BY[event])


def context(actor: Actor, **facts: bool) -> StepContext:
    return StepContext(actor=actor, now=NOW, facts=facts)


SESSION_ENGINE = engine(SESSION)
PAIRS = list(itertools.product(STATES, EVENTS))


def test_states_and_events_are_the_designed_names() -> None:
    """The machine declares exactly the states and events of docs/machines.md: anonymous first, two terminals."""
    assert tuple(SESSION.states) == STATES
    assert set(SESSION.events) == set(EVENTS)
    assert {str(state) for state in SessionState} == set(STATES)
    assert {str(event) for event in SessionEvent} == set(EVENTS)
    assert SESSION.initial == "anonymous"
    assert SESSION.terminal == TERMINAL


@pytest.mark.parametrize(("state", "event"), PAIRS, ids=[f"{state}-{event}" for state, event in PAIRS])
def test_every_state_event_pair_goes_where_the_design_says_or_is_refused(state: str, event: str) -> None:
    """An allowed pair lands on the design's destination; any other pair raises TransitionNotAllowed with its fields."""
    if (state, event) in EXPECTED:
        outcome = SESSION_ENGINE.step(state, event, context(firer(event), **ALL_FACTS))
        assert (outcome.machine, outcome.source, outcome.event, outcome.dest) == (
            "session",
            state,
            event,
            EXPECTED[(state, event)],
        )
        assert outcome.actor is firer(event)
        return
    for actor in Actor:
        with pytest.raises(TransitionNotAllowed) as refused:
            SESSION_ENGINE.step(state, event, context(actor, **ALL_FACTS))
        assert refused.value.machine == "session"
        assert refused.value.state == state
        assert refused.value.event == event
        assert refused.value.allowed_events == expected_allowed(state, actor)
        assert refused.value.code == "transition_not_allowed"
        assert refused.value.instance_id is None


ACTOR_CASES = [(event, actor) for event in EVENTS for actor in Actor]


@pytest.mark.parametrize(("event", "actor"), ACTOR_CASES, ids=[f"{event}-{actor}" for event, actor in ACTOR_CASES])
def test_each_event_is_fired_only_by_its_declared_actors(event: str, actor: Actor) -> None:
    """From every state that allows the event, a declared actor succeeds and any other gets ActorNotPermitted."""
    sources = [state for state in STATES if (state, event) in EXPECTED]
    assert sources, f"{event} has no source in the design table"
    for state in sources:
        if actor in FIRED_BY[event]:
            assert SESSION_ENGINE.step(state, event, context(actor, **ALL_FACTS)).dest == EXPECTED[(state, event)]
            continue
        with pytest.raises(ActorNotPermitted) as refused:
            SESSION_ENGINE.step(state, event, context(actor, **ALL_FACTS))
        assert (refused.value.state, refused.value.event) == (state, event)
        assert refused.value.allowed_events == expected_allowed(state, actor)
        assert str(actor) in refused.value.reason


GUARDED = sorted(GUARDS)


@pytest.mark.parametrize(("state", "event"), GUARDED, ids=[f"{state}-{event}" for state, event in GUARDED])
@pytest.mark.parametrize("fact", ["missing", "false", "true"])
def test_guards_pass_only_when_every_fact_is_true(state: str, event: str, fact: str) -> None:
    """A guarded transition needs each of its facts present and True; otherwise GuardFailed names the failing ones."""
    names = GUARDS[(state, event)]
    facts = {} if fact == "missing" else dict.fromkeys(names, fact == "true")
    ctx = StepContext(actor=firer(event), now=NOW, facts=facts)
    if fact == "true":
        assert SESSION_ENGINE.step(state, event, ctx).dest == EXPECTED[(state, event)]
        return
    with pytest.raises(GuardFailed) as refused:
        SESSION_ENGINE.step(state, event, ctx)
    assert refused.value.guards == names
    assert (refused.value.state, refused.value.event) == (state, event)
    assert refused.value.allowed_events == expected_allowed(state, firer(event))


def test_guard_failure_names_only_the_unsatisfied_guards() -> None:
    """With the user enabled but over the session cap, activate fails naming under_session_cap alone."""
    ctx = context(Actor.SERVER, user_enabled=True, under_session_cap=False)
    with pytest.raises(GuardFailed) as refused:
        SESSION_ENGINE.step("authenticated", "activate", ctx)
    assert refused.value.guards == ("under_session_cap",)
    assert "under_session_cap" in str(refused.value)


def test_a_truthy_fact_that_is_not_true_does_not_satisfy_a_guard() -> None:
    """Guards want the literal True: a caller passing 1 or "yes" by mistake is refused, not let through."""
    for value in (1, "yes"):
        ctx = StepContext(actor=Actor.SERVER, now=NOW, facts={"credentials_verified": value})
        with pytest.raises(GuardFailed):
            SESSION_ENGINE.step("anonymous", "authenticate", ctx)


def test_unguarded_transitions_ignore_facts() -> None:
    """Transitions without guards succeed with no facts at all, and a false unrelated fact changes nothing."""
    for (state, event), dest in EXPECTED.items():
        if (state, event) in GUARDS:
            continue
        assert SESSION_ENGINE.step(state, event, context(firer(event))).dest == dest
        assert SESSION_ENGINE.step(state, event, context(firer(event), credentials_verified=False)).dest == dest


def test_a_missing_transition_is_reported_before_a_wrong_actor() -> None:
    """A client trying authenticate from session_active learns there is no such transition, not that it lacks rights."""
    with pytest.raises(TransitionNotAllowed):
        SESSION_ENGINE.step("session_active", "authenticate", context(Actor.CLIENT))


def test_a_wrong_actor_is_reported_before_a_failing_guard() -> None:
    """A client trying activate without facts is told it may not fire it, before any guard is considered."""
    with pytest.raises(ActorNotPermitted):
        SESSION_ENGINE.step("authenticated", "activate", context(Actor.CLIENT))


@pytest.mark.parametrize("state", STATES)
def test_allowed_events_match_the_design_table(state: str) -> None:
    """allowed_events lists the design's events for a state, overall and per actor, in declaration order."""
    assert set(SESSION_ENGINE.allowed_events(state)) == {event for event in EVENTS if (state, event) in EXPECTED}
    for actor in Actor:
        assert SESSION_ENGINE.allowed_events(state, actor) == expected_allowed(state, actor)


@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_terminal_states_accept_no_event(state: str) -> None:
    """closed and revoked are terminal: nothing is allowed, for anyone."""
    assert SESSION_ENGINE.is_terminal(state)
    assert SESSION_ENGINE.allowed_events(state) == ()


def test_unknown_events_and_states_raise_their_own_errors() -> None:
    """A name the machine does not declare is an UnknownEvent/UnknownState listing the known names, not a refusal."""
    with pytest.raises(UnknownEvent) as unknown_event:
        SESSION_ENGINE.step("anonymous", "teleport", context(Actor.SERVER))
    assert unknown_event.value.event == "teleport"
    assert set(unknown_event.value.known) == set(EVENTS)
    with pytest.raises(UnknownState) as unknown_state:
        SESSION_ENGINE.step("limbo", "logout", context(Actor.CLIENT))
    assert unknown_state.value.state == "limbo"
    assert unknown_state.value.known == STATES
    with pytest.raises(UnknownState):
        SESSION_ENGINE.allowed_events("limbo")
    with pytest.raises(UnknownEvent):
        SESSION_ENGINE.step("anonymous", 42, context(Actor.SERVER))


def test_the_happy_path_and_recovery_run_end_to_end() -> None:
    """anonymous -> authenticated -> session_active -> ws_connected, then drop, reconnect, expire, refresh, logout."""
    steps = [
        ("authenticate", Actor.SERVER, "authenticated"),
        ("activate", Actor.SERVER, "session_active"),
        ("connect", Actor.SERVER, "ws_connected"),
        ("drop", Actor.SERVER, "ws_disconnected"),
        ("connect", Actor.SERVER, "ws_connected"),
        ("expire", Actor.TIMER, "session_expired"),
        ("refresh", Actor.CLIENT, "session_active"),
        ("logout", Actor.CLIENT, "closed"),
    ]
    state = "anonymous"
    for event, actor, dest in steps:
        state = SESSION_ENGINE.step(state, event, context(actor, **ALL_FACTS)).dest
        assert state == dest


def test_event_enum_members_step_like_their_string_values() -> None:
    """Callers may pass SessionEvent members; the outcome carries the plain string."""
    outcome = SESSION_ENGINE.step("anonymous", SessionEvent.AUTHENTICATE, context(Actor.SERVER, **ALL_FACTS))
    assert outcome.dest == "authenticated"
    assert type(outcome.event) is str


def test_state_enum_members_step_like_their_string_values() -> None:
    """Callers may pass SessionState members (allowed_events already accepts them); outcomes carry plain strings."""
    assert SESSION_ENGINE.allowed_events(SessionState.ANONYMOUS) == SESSION_ENGINE.allowed_events("anonymous")
    outcome = SESSION_ENGINE.step(SessionState.ANONYMOUS, "authenticate", context(Actor.SERVER, **ALL_FACTS))
    assert outcome.dest == "authenticated"
    assert type(outcome.source) is str


def test_one_shared_machine_without_auto_transitions_serves_every_step() -> None:
    """engine() compiles the definition once, and the machine has no to_<state> shortcuts that bypass the table."""
    assert engine(SESSION) is SESSION_ENGINE
    assert set(SESSION_ENGINE.machine.events) == set(EVENTS)
    assert not any(name.startswith("to_") for name in SESSION_ENGINE.machine.events)


def test_refusals_bound_to_an_instance_name_it() -> None:
    """for_instance keeps class and fields and puts the instance id into the message."""
    with pytest.raises(TransitionNotAllowed) as refused:
        SESSION_ENGINE.step("closed", "refresh", context(Actor.CLIENT))
    bound = refused.value.for_instance("s-123")
    assert bound is refused.value
    assert bound.instance_id == "s-123"
    assert "s-123" in str(bound)
    assert "allowed events: none" in str(bound)
