"""Persisted timers: which are armed where, when they are due, and how transitions move them.

ON_ENTRY timers (lifetime, grace, refresh_window, handshake) keep their due
time while the instance moves among their states; ON_ACTIVITY timers (idle,
login_window, heartbeat) restart on every transition and recorded activity.
Terminal states hold no timer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from sessionflow.lifecycle import CONNECTION, SESSION, Actor, Definition, Engine, StepContext, engine
from sessionflow.lifecycle.engine import Outcome

T0 = datetime(2030, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
ALL_FACTS = {
    "credentials_verified": True,
    "user_enabled": True,
    "under_session_cap": True,
    "refresh_token_current": True,
}
NON_TERMINAL = ("anonymous", "authenticated", "session_active", "ws_connected", "ws_disconnected", "session_expired")
LIVE = ("session_active", "ws_connected", "ws_disconnected")

# The session's timers as designed: name -> (event it fires, states where it is armed, default).
SESSION_TIMERS = {
    "login_window": ("end", {"anonymous", "authenticated"}, timedelta(minutes=30)),
    "idle": ("expire", set(LIVE), timedelta(minutes=30)),
    "grace": ("grace_elapsed", {"ws_disconnected"}, timedelta(seconds=60)),
    "refresh_window": ("end", {"session_expired"}, timedelta(days=7)),
    "lifetime": ("end", set(NON_TERMINAL), timedelta(days=30)),
}
CONNECTION_TIMERS = {
    "handshake": ("reject", {"connecting"}, timedelta(seconds=10)),
    "heartbeat": ("drop", {"open"}, timedelta(seconds=75)),
}

SESSION_ENGINE = engine(SESSION)
CONNECTION_ENGINE = engine(CONNECTION)


def fire(
    machine: Engine,
    state: str,
    event: str,
    at: datetime,
    timers: Mapping[str, datetime | None],
    *,
    durations: Mapping[str, timedelta] | None = None,
) -> Outcome:
    """Step ``event`` at ``at`` as the first actor allowed to fire it, with every guard satisfied."""
    actor = next(actor for actor in Actor if actor in machine.definition.events[event].fired_by)
    return machine.step(state, event, StepContext(actor, at, ALL_FACTS, timers, durations or {}))


def walk(machine: Engine, events: list[tuple[str, timedelta]]) -> list[Outcome]:
    """Run ``events`` (each at T0 + offset) from a new instance, threading state and timers through."""
    # str(): step() cannot take StrEnum states yet (the xfail in test_session_machine)
    state, timers = str(machine.definition.initial), machine.initial_timers(T0)
    outcomes = []
    for event, offset in events:
        outcome = fire(machine, state, event, T0 + offset, timers)
        outcomes.append(outcome)
        state, timers = outcome.dest, outcome.timers
    return outcomes


def test_declared_timers_match_the_design() -> None:
    """Each timer fires the designed event, is armed in the designed states and defaults to the designed duration."""
    for definition, expected in ((SESSION, SESSION_TIMERS), (CONNECTION, CONNECTION_TIMERS)):
        declared = {timer.name: (timer.event, set(timer.armed_in), timer.default) for timer in definition.timers}
        assert declared == expected


def test_a_new_session_arms_only_its_login_window_and_lifetime() -> None:
    """An anonymous session has 30 minutes to log in and 30 days to live; nothing else is armed."""
    assert SESSION_ENGINE.initial_timers(T0) == {
        "login_window": T0 + timedelta(minutes=30),
        "idle": None,
        "grace": None,
        "refresh_window": None,
        "lifetime": T0 + timedelta(days=30),
    }


def test_durations_override_defaults_for_a_new_instance() -> None:
    """A configured duration replaces the default of that timer only."""
    timers = SESSION_ENGINE.initial_timers(T0, {"lifetime": timedelta(hours=1)})
    assert timers["lifetime"] == T0 + timedelta(hours=1)
    assert timers["login_window"] == T0 + timedelta(minutes=30)


def test_a_new_connection_arms_only_the_handshake_timer() -> None:
    """A connecting WebSocket must authenticate within 10 seconds; the heartbeat starts once open."""
    assert CONNECTION_ENGINE.initial_timers(T0) == {"handshake": T0 + timedelta(seconds=10), "heartbeat": None}


def test_lifetime_never_moves_while_the_session_lives() -> None:
    """The ON_ENTRY lifetime keeps its first due time through login, connects, drops, expiry and refresh."""
    outcomes = walk(
        SESSION_ENGINE,
        [
            ("authenticate", 1 * MINUTE),
            ("activate", 2 * MINUTE),
            ("connect", 3 * MINUTE),
            ("drop", 4 * MINUTE),
            ("refresh", 5 * MINUTE),
            ("connect", 6 * MINUTE),
            ("expire", 40 * MINUTE),
            ("refresh", 50 * MINUTE),
        ],
    )
    assert [outcome.timers["lifetime"] for outcome in outcomes] == [T0 + timedelta(days=30)] * len(outcomes)


def test_login_window_restarts_on_authenticate_and_clears_once_active() -> None:
    """login_window is an ON_ACTIVITY timer of the two login states; activate leaves them and disarms it."""
    authenticated, active = walk(SESSION_ENGINE, [("authenticate", 10 * MINUTE), ("activate", 12 * MINUTE)])
    assert authenticated.timers["login_window"] == T0 + 10 * MINUTE + timedelta(minutes=30)
    assert active.timers["login_window"] is None


def test_idle_restarts_on_every_transition_between_live_states() -> None:
    """Each of activate, connect, drop and connect again pushes the idle timeout 30 minutes past its own instant."""
    outcomes = walk(
        SESSION_ENGINE,
        [
            ("authenticate", 0 * MINUTE),
            ("activate", 1 * MINUTE),
            ("connect", 5 * MINUTE),
            ("drop", 9 * MINUTE),
            ("connect", 10 * MINUTE),
            ("disconnect", 20 * MINUTE),
        ],
    )
    assert outcomes[0].timers["idle"] is None
    for outcome, offset in zip(outcomes[1:], (1, 5, 9, 10, 20), strict=True):
        assert outcome.timers["idle"] == T0 + offset * MINUTE + timedelta(minutes=30)


def test_grace_is_armed_on_entering_ws_disconnected_and_cleared_on_leaving() -> None:
    """A drop arms 60 s of grace; a reconnect disarms it; the next drop arms a fresh 60 s."""
    outcomes = walk(
        SESSION_ENGINE,
        [
            ("authenticate", 0 * MINUTE),
            ("activate", 0 * MINUTE),
            ("connect", 1 * MINUTE),
            ("drop", 2 * MINUTE),
            ("connect", 3 * MINUTE),
            ("drop", 7 * MINUTE),
        ],
    )
    first_drop, reconnect, second_drop = outcomes[3:]
    assert first_drop.timers["grace"] == T0 + 2 * MINUTE + timedelta(seconds=60)
    assert reconnect.timers["grace"] is None
    assert second_drop.timers["grace"] == T0 + 7 * MINUTE + timedelta(seconds=60)


def test_refresh_self_loop_restarts_idle_but_keeps_lifetime_and_grace() -> None:
    """Refreshing while disconnected stays in ws_disconnected: idle restarts, grace and lifetime do not move."""
    *_, dropped = walk(
        SESSION_ENGINE,
        [("authenticate", 0 * MINUTE), ("activate", 0 * MINUTE), ("connect", 1 * MINUTE), ("drop", 2 * MINUTE)],
    )
    refreshed = fire(
        SESSION_ENGINE, "ws_disconnected", "refresh", T0 + 2 * MINUTE + timedelta(seconds=30), dropped.timers
    )
    assert refreshed.source == refreshed.dest == "ws_disconnected"
    assert refreshed.timers["idle"] == T0 + 2 * MINUTE + timedelta(seconds=30) + timedelta(minutes=30)
    assert refreshed.timers["grace"] == dropped.timers["grace"]
    assert refreshed.timers["lifetime"] == dropped.timers["lifetime"] == T0 + timedelta(days=30)


@pytest.mark.parametrize("state", LIVE)
def test_refresh_in_a_live_state_only_restarts_idle(state: str) -> None:
    """For every live state the refresh self-loop changes exactly one timer: idle."""
    timers: dict[str, datetime | None] = {
        name: T0 + timedelta(hours=index + 1) if state in armed_in else None
        for index, (name, (_, armed_in, _)) in enumerate(SESSION_TIMERS.items())
    }
    outcome = fire(SESSION_ENGINE, state, "refresh", T0, timers)
    changed = {name for name in timers if outcome.timers[name] != timers[name]}
    assert changed == {"idle"}
    assert outcome.timers["idle"] == T0 + timedelta(minutes=30)


def test_expiry_swaps_idle_for_the_refresh_window_and_refresh_swaps_back() -> None:
    """Entering session_expired disarms idle and arms 7 days to refresh; refreshing reverses that."""
    *_, expired, refreshed = walk(
        SESSION_ENGINE,
        [("authenticate", 0 * MINUTE), ("activate", 0 * MINUTE), ("expire", 30 * MINUTE), ("refresh", 60 * MINUTE)],
    )
    assert expired.timers["idle"] is None
    assert expired.timers["refresh_window"] == T0 + 30 * MINUTE + timedelta(days=7)
    assert refreshed.timers["refresh_window"] is None
    assert refreshed.timers["idle"] == T0 + 60 * MINUTE + timedelta(minutes=30)


@pytest.mark.parametrize("event", ["logout", "revoke", "end"])
@pytest.mark.parametrize("state", NON_TERMINAL)
def test_terminal_states_clear_every_timer(state: str, event: str) -> None:
    """Whatever was armed, a closed or revoked session has no timer left to fire."""
    armed = {name: T0 + timedelta(hours=1) if state in SESSION_TIMERS[name][1] else None for name in SESSION_TIMERS}
    outcome = fire(SESSION_ENGINE, state, event, T0, armed)
    assert outcome.dest in SESSION.terminal
    assert outcome.timers == dict.fromkeys(SESSION_TIMERS)
    assert SESSION_ENGINE.next_due(outcome.dest, outcome.timers) is None


def test_every_outcome_lists_every_timer_armed_exactly_in_its_states() -> None:
    """After any accepted step a timer has a due time if and only if the destination arms it."""
    pairs = [(state, event) for state in NON_TERMINAL for event in SESSION_ENGINE.allowed_events(state)]
    for state, event in pairs:
        outcome = fire(SESSION_ENGINE, state, event, T0, SESSION_ENGINE.initial_timers(T0))
        assert set(outcome.timers) == set(SESSION_TIMERS)
        for name, due in outcome.timers.items():
            assert (due is not None) == (outcome.dest in SESSION_TIMERS[name][1]), (state, event, name)


def test_an_on_entry_timer_without_a_due_time_is_armed_as_if_entered() -> None:
    """A lifetime missing from the stored timers is armed from the transition's instant, not left empty."""
    outcome = fire(SESSION_ENGINE, "session_active", "connect", T0, {"idle": T0, "lifetime": None})
    assert outcome.timers["lifetime"] == T0 + timedelta(days=30)


def test_step_durations_override_defaults() -> None:
    """Configured durations set idle and grace for transitions too."""
    durations = {"idle": timedelta(minutes=5), "grace": timedelta(seconds=5)}
    connected = fire(SESSION_ENGINE, "session_active", "connect", T0, {}, durations=durations)
    assert connected.timers["idle"] == T0 + timedelta(minutes=5)
    dropped = fire(SESSION_ENGINE, "ws_connected", "drop", T0 + MINUTE, connected.timers, durations=durations)
    assert dropped.timers["grace"] == T0 + MINUTE + timedelta(seconds=5)


def test_recorded_activity_restarts_only_activity_timers_armed_in_the_state() -> None:
    """touched_timers restarts idle in a live state and leaves ON_ENTRY timers and unarmed ones as they were."""
    timers = {"login_window": None, "idle": T0, "grace": T0 + MINUTE, "refresh_window": None, "lifetime": T0 + MINUTE}
    now = T0 + 10 * MINUTE
    touched = SESSION_ENGINE.touched_timers("ws_disconnected", timers, now)
    assert touched == {**timers, "idle": now + timedelta(minutes=30)}
    assert SESSION_ENGINE.touched_timers("session_expired", timers, now) == timers
    assert SESSION_ENGINE.touched_timers("ws_connected", timers, now, {"idle": MINUTE})["idle"] == now + MINUTE


def test_connection_heartbeat_starts_on_accept_and_restarts_on_activity() -> None:
    """accept disarms the handshake and arms a 75 s heartbeat that each pong pushes back; a timer drop clears it."""
    opened = fire(
        CONNECTION_ENGINE, "connecting", "accept", T0 + timedelta(seconds=2), CONNECTION_ENGINE.initial_timers(T0)
    )
    assert opened.timers == {"handshake": None, "heartbeat": T0 + timedelta(seconds=77)}
    pong = T0 + timedelta(seconds=30)
    touched = CONNECTION_ENGINE.touched_timers("open", opened.timers, pong)
    assert touched == {"handshake": None, "heartbeat": pong + timedelta(seconds=75)}
    due = CONNECTION_ENGINE.next_due("open", touched)
    assert due is not None
    timer, at = due
    dropped = CONNECTION_ENGINE.step("open", timer.event, StepContext(Actor.TIMER, at, timers=touched))
    assert dropped.dest == "dropped"
    assert dropped.timers == {"handshake": None, "heartbeat": None}


def test_next_due_is_the_earliest_timer_armed_in_the_state() -> None:
    """A new session's first deadline is its login window, well before its lifetime."""
    due = SESSION_ENGINE.next_due("anonymous", SESSION_ENGINE.initial_timers(T0))
    assert due is not None
    assert (due[0].name, due[1]) == ("login_window", T0 + timedelta(minutes=30))


def test_next_due_ignores_timers_not_armed_in_the_state() -> None:
    """A stale login_window due time left on an active session does not fire there; idle does."""
    timers = {"login_window": T0, "idle": T0 + MINUTE, "lifetime": T0 + timedelta(days=30)}
    due = SESSION_ENGINE.next_due("session_active", timers)
    assert due is not None
    assert due[0].name == "idle"


def test_next_due_breaks_ties_by_declaration_order() -> None:
    """When refresh_window and lifetime fall due together, refresh_window (declared first) is reported."""
    timers = {"refresh_window": T0, "lifetime": T0}
    due = SESSION_ENGINE.next_due("session_expired", timers)
    assert due is not None
    assert due[0].name == "refresh_window"


def test_next_due_is_none_when_nothing_is_armed() -> None:
    """No due times, or a terminal state, means there is nothing to wait for."""
    assert SESSION_ENGINE.next_due("session_active", {}) is None
    assert SESSION_ENGINE.next_due("closed", {"lifetime": T0}) is None


@pytest.mark.parametrize("definition", [SESSION, CONNECTION], ids=lambda definition: definition.name)
def test_every_armed_timer_can_fire_where_it_is_armed(definition: Definition) -> None:
    """A due timer never meets a refusal: its event is allowed for the timer actor in every state that arms it."""
    machine = engine(definition)
    for timer in definition.timers:
        for state in timer.armed_in:
            assert timer.event in machine.allowed_events(state, Actor.TIMER)
            outcome = machine.step(str(state), timer.event, StepContext(Actor.TIMER, T0))
            assert outcome.source == state
