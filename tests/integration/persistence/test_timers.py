"""Persisted timers fire lazily on read, from the sweeper, after restarts, and only once."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest

from sessionflow.lifecycle import Actor, ManualClock
from sessionflow.persistence.database import Database
from sessionflow.persistence.service import TransitionService
from tests.integration.persistence.conftest import history_of, log_in

IDLE = timedelta(minutes=30)


def test_idle_timeout_fires_lazily_on_read(service: TransitionService, clock: ManualClock, db: Database) -> None:
    """Reading a session past its idle timeout expires it first, at the instant it came due."""
    session_id = log_in(service)
    activated_at = clock.now()
    clock.advance(IDLE + timedelta(seconds=1))
    snapshot = service.get("session", session_id)
    assert snapshot.state == "session_expired"
    assert history_of(db, session_id)[-1] == (3, "expire", "session_active", "session_expired", "timer")
    assert snapshot.timers["refresh_window"] == activated_at + IDLE + timedelta(days=7)


def test_not_yet_due_timer_does_not_fire(service: TransitionService, clock: ManualClock) -> None:
    """One second before the idle timeout the session is still active."""
    session_id = log_in(service)
    clock.advance(IDLE - timedelta(seconds=1))
    assert service.get("session", session_id).state == "session_active"


def test_due_timers_fire_before_a_client_event(service: TransitionService, clock: ManualClock, db: Database) -> None:
    """A refresh arriving after the idle timeout applies to the expired session and revives it."""
    session_id = log_in(service)
    clock.advance(IDLE * 2)
    applied = service.fire("session", session_id, "refresh", actor=Actor.CLIENT, facts={"refresh_token_current": True})
    assert [a.event for a in applied.fired_first] == ["expire"]
    assert (applied.from_state, applied.to_state, applied.version) == ("session_expired", "session_active", 4)
    assert [row[1] for row in history_of(db, session_id)] == ["authenticate", "activate", "expire", "refresh"]


def test_a_long_outage_fires_the_whole_chain_in_order(
    service: TransitionService, clock: ManualClock, db: Database
) -> None:
    """After eight days away, idle expiry and then the end of the refresh window both fire, in order."""
    session_id = log_in(service)
    clock.advance(timedelta(days=8))
    assert service.get("session", session_id).state == "closed"
    assert [row[1:4] for row in history_of(db, session_id)[2:]] == [
        ("expire", "session_active", "session_expired"),
        ("end", "session_expired", "closed"),
    ]


def test_timers_fire_after_a_restart(db_url: str, clock: ManualClock) -> None:
    """Timers armed by one process fire from the sweeper of a new process on the same database."""
    before = TransitionService(Database.from_url(db_url), clock=clock)
    session_id = log_in(before)
    before.fire("session", session_id, "connect", actor=Actor.SERVER)
    before.fire("session", session_id, "drop", actor=Actor.SERVER)
    before.db.dispose()  # the process dies; only the database remains

    clock.advance(timedelta(seconds=61))
    after = TransitionService(Database.from_url(db_url), clock=clock)
    try:
        fired = after.sweep()
        assert [(a.instance_id, a.event) for a in fired] == [(session_id, "grace_elapsed")]
        assert after.get("session", session_id).state == "session_active"
    finally:
        after.db.dispose()


def test_configured_durations_replace_the_defaults(db: Database, clock: ManualClock) -> None:
    """With a five-minute idle timeout, six minutes of silence expire the session."""
    service = TransitionService(db, clock=clock, durations={"session": {"idle": timedelta(minutes=5)}})
    session_id = log_in(service)
    clock.advance(timedelta(minutes=6))
    assert service.get("session", session_id).state == "session_expired"


def test_touch_restarts_the_idle_timer_without_a_new_version(service: TransitionService, clock: ManualClock) -> None:
    """Recorded activity pushes the idle timeout back and leaves state and version alone."""
    session_id = log_in(service)
    clock.advance(timedelta(minutes=20))
    assert service.touch("session", session_id)
    clock.advance(timedelta(minutes=20))
    snapshot = service.get("session", session_id)
    assert (snapshot.state, snapshot.version) == ("session_active", 2)
    assert snapshot.timers["idle"] == clock.now() - timedelta(minutes=20) + IDLE


def test_touch_on_an_expired_session_fires_its_timers_instead(service: TransitionService, clock: ManualClock) -> None:
    """Activity that arrives after the idle timeout cannot revive the session."""
    session_id = log_in(service)
    clock.advance(IDLE * 2)
    assert not service.touch("session", session_id)
    assert service.get("session", session_id, fire_due=False).state == "session_expired"


@pytest.mark.slow
def test_two_concurrent_sweepers_fire_each_timer_once(db_url: str, clock: ManualClock) -> None:
    """Two sweepers racing over 60 due sessions fire 60 expiries between them, one per session."""
    setup = TransitionService(Database.from_url(db_url, pool_size=4), clock=clock)
    sessions = [log_in(setup) for _ in range(60)]
    setup.db.dispose()
    clock.advance(IDLE + timedelta(seconds=1))

    sweepers = [TransitionService(Database.from_url(db_url, pool_size=2), clock=clock) for _ in range(2)]
    barrier = threading.Barrier(2)
    fired: list[list[uuid.UUID]] = [[], []]

    def run(i: int) -> None:
        barrier.wait()
        fired[i] = [a.instance_id for a in sweepers[i].sweep(limit=7)]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        together = fired[0] + fired[1]
        assert sorted(together) == sorted(sessions)  # every session once, none twice
        for session_id in sessions:
            assert [row[1] for row in history_of(sweepers[0].db, session_id)].count("expire") == 1
    finally:
        for sweeper in sweepers:
            sweeper.db.dispose()


def test_sweep_with_nothing_due_fires_nothing(service: TransitionService) -> None:
    """Fresh sessions have nothing due."""
    log_in(service)
    assert service.sweep() == []
