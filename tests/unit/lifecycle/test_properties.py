"""Properties of both machines under random event, actor and fact sequences.

From the initial state, any sequence of declared events, fired by any actor
with any guard facts, keeps the instance in a declared state, never leaves a
terminal state, refuses only with EventRefused subclasses, and agrees step by
step with an independent model built from the design tables in the machine tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import event as event_statistic
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionflow.lifecycle import (
    CONNECTION,
    SESSION,
    Actor,
    ActorNotPermitted,
    Definition,
    EventRefused,
    GuardFailed,
    StepContext,
    Timer,
    TimerPolicy,
    TransitionNotAllowed,
    engine,
)
from sessionflow.lifecycle.engine import Timers

from . import test_connection_machine as connection_design
from . import test_session_machine as session_design

T0 = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Model:
    """The design's transition table, independent of the definitions the engine compiles."""

    definition: Definition
    initial: str
    states: tuple[str, ...]
    terminal: frozenset[str]
    expected: dict[tuple[str, str], str]
    fired_by: dict[str, frozenset[Actor]]
    guards: dict[tuple[str, str], tuple[str, ...]]

    def step(self, state: str, event: str, actor: Actor, facts: dict[str, bool]) -> str | type[EventRefused]:
        """The destination, or the refusal the design calls for (transition, then actor, then guards)."""
        if (state, event) not in self.expected:
            return TransitionNotAllowed
        if actor not in self.fired_by[event]:
            return ActorNotPermitted
        if any(facts.get(name) is not True for name in self.guards.get((state, event), ())):
            return GuardFailed
        return self.expected[(state, event)]

    def allowed(self, state: str, actor: Actor) -> set[str]:
        return {event for (source, event) in self.expected if source == state and actor in self.fired_by[event]}


MODELS = {
    "session": Model(
        SESSION,
        "anonymous",
        session_design.STATES,
        session_design.TERMINAL,
        session_design.EXPECTED,
        session_design.FIRED_BY,
        session_design.GUARDS,
    ),
    "connection": Model(
        CONNECTION,
        "connecting",
        connection_design.STATES,
        connection_design.TERMINAL,
        connection_design.EXPECTED,
        connection_design.FIRED_BY,
        connection_design.GUARDS,
    ),
}
FACT_NAMES = sorted({name for model in MODELS.values() for names in model.guards.values() for name in names})


def expected_due(timer: Timer, source: str, dest: str, before: Timers, now: datetime) -> datetime | None:
    """The timer rules of the model: disarmed outside its states; ON_ENTRY kept while staying among them;
    otherwise (ON_ACTIVITY, or just entered) restarted from the transition's instant."""
    if dest not in timer.armed_in:
        return None
    kept = before.get(timer.name)
    if timer.policy is TimerPolicy.ON_ENTRY and source in timer.armed_in and kept is not None:
        return kept
    return now + timer.default


def next_step(data: st.DataObject, model: Model, state: str) -> tuple[str, Actor, dict[str, bool], timedelta]:
    """One (event, actor, facts, delay), biased towards events the design allows here that keep the run alive,
    so runs reach the deep states before a logout, revoke or end absorbs them."""
    events = st.sampled_from(sorted(model.fired_by))
    allowed = sorted(event for (source, event) in model.expected if source == state)
    onward = sorted(event for event in allowed if model.expected[(state, event)] not in model.terminal)
    if onward:
        events = st.sampled_from(onward) | st.sampled_from(onward) | st.sampled_from(allowed) | events
    event = data.draw(events)
    actor = data.draw(st.sampled_from(sorted(model.fired_by[event])) | st.sampled_from(list(Actor)))
    facts = data.draw(
        st.just(dict.fromkeys(FACT_NAMES, True)) | st.dictionaries(st.sampled_from(FACT_NAMES), st.booleans())
    )
    delay = data.draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2)))
    return event, actor, facts, delay


@pytest.mark.parametrize("name", sorted(MODELS))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_random_runs_agree_with_the_design_model(name: str, data: st.DataObject) -> None:
    """Every step's outcome or refusal class matches the model, states stay declared and terminals absorb."""
    model = MODELS[name]
    machine = engine(model.definition)
    state, now = model.initial, T0
    timers = machine.initial_timers(now)
    for _ in range(data.draw(st.integers(min_value=0, max_value=30))):
        event, actor, facts, delay = next_step(data, model, state)
        now += delay
        event_statistic(f"in {state}")
        expected = model.step(state, event, actor, facts)
        context = StepContext(actor=actor, now=now, facts=facts, timers=timers)
        if not isinstance(expected, str):
            with pytest.raises(EventRefused) as refused:  # anything but an EventRefused fails the test
                machine.step(state, event, context)
            assert type(refused.value) is expected, (state, event, actor, facts)
            assert (refused.value.state, refused.value.event) == (state, event)
            assert set(refused.value.allowed_events) == model.allowed(state, actor)
            continue
        outcome = machine.step(state, event, context)
        assert outcome.dest == expected, (state, event, actor, facts)
        assert outcome.source == state
        assert outcome.dest in model.states
        assert state not in model.terminal, f"left terminal state {state}"
        assert set(outcome.timers) == {timer.name for timer in model.definition.timers}
        for timer in model.definition.timers:
            assert outcome.timers[timer.name] == expected_due(timer, state, outcome.dest, timers, now)
        state, timers = outcome.dest, outcome.timers


@pytest.mark.parametrize("name", sorted(MODELS))
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_terminal_states_absorb_every_event_from_every_actor(name: str, data: st.DataObject) -> None:
    """In a terminal state each declared event, whoever fires it with whatever facts, is TransitionNotAllowed."""
    model = MODELS[name]
    state = data.draw(st.sampled_from(sorted(model.terminal)))
    event = data.draw(st.sampled_from(sorted(model.fired_by)))
    actor = data.draw(st.sampled_from(list(Actor)))
    facts = data.draw(st.dictionaries(st.sampled_from(FACT_NAMES), st.booleans()))
    with pytest.raises(TransitionNotAllowed) as refused:
        engine(model.definition).step(state, event, StepContext(actor=actor, now=T0, facts=facts))
    assert refused.value.allowed_events == ()


@pytest.mark.parametrize("name", sorted(MODELS))
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_timer_driven_runs_only_visit_declared_states(name: str, data: st.DataObject) -> None:
    """Letting the next due timer fire, interleaved with random accepted events, never leaves the declared states."""
    model = MODELS[name]
    machine = engine(model.definition)
    state, now = model.initial, T0
    timers = machine.initial_timers(now)
    for fire_timer in data.draw(st.lists(st.booleans(), max_size=30)):
        due = machine.next_due(state, timers)
        if fire_timer and due is not None:
            timer, now = due
            outcome = machine.step(state, timer.event, StepContext(actor=Actor.TIMER, now=now, timers=timers))
        else:
            choices = sorted(model.allowed(state, Actor.SERVER) | model.allowed(state, Actor.CLIENT))
            if not choices:
                break
            event = data.draw(st.sampled_from(choices))
            actor = Actor.SERVER if Actor.SERVER in model.fired_by[event] else Actor.CLIENT
            facts = dict.fromkeys(FACT_NAMES, True)
            outcome = machine.step(state, event, StepContext(actor=actor, now=now, facts=facts, timers=timers))
        assert outcome.dest == model.expected[(state, outcome.event)]
        state, timers = outcome.dest, outcome.timers
        assert state in model.states
    if state in model.terminal:
        assert machine.next_due(state, timers) is None
