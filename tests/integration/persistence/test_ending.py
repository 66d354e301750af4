"""A session that ends moves its token generation on in the compare-and-set that ends it (Binding.advanced_on_end)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import bindparam, func, select

from sessionflow.lifecycle import SESSION, Actor, ManualClock
from sessionflow.persistence import SESSIONS
from sessionflow.persistence.bindings import HISTORY
from sessionflow.persistence.database import Database
from sessionflow.persistence.errors import VersionConflict
from sessionflow.persistence.service import TransitionService
from tests.integration.persistence.conftest import history_of, log_in, sqlite_trace

FIRED_BY_A_CALLER = {name for name, spec in SESSION.events.items() if set(spec.fired_by) - {Actor.TIMER}}
ENDING = sorted({str(t.event) for t in SESSION.transitions if t.dest in SESSION.terminal} & FIRED_BY_A_CALLER)
LOGIN_WINDOW = next(timer for timer in SESSION.timers if timer.name == "login_window")


def generation(db: Database, session_id: uuid.UUID) -> int:
    with db.engine.connect() as connection:
        found = connection.execute(select(SESSIONS.table.c.token_generation).where(SESSIONS.table.c.id == session_id))
        return int(found.scalar_one())


def an_actor_of(event: str) -> Actor:
    return next(actor for actor in Actor if actor is not Actor.TIMER and actor in SESSION.events[event].fired_by)


@pytest.mark.parametrize("event", ENDING)
def test_each_way_to_end_a_session_moves_its_generation_on_once(
    service: TransitionService, db: Database, event: str
) -> None:
    session_id = log_in(service)
    before = generation(db, session_id)
    service.fire("session", session_id, event, actor=an_actor_of(event))
    assert generation(db, session_id) == before + 1


def test_a_timer_that_ends_a_session_moves_its_generation_on(
    service: TransitionService, db: Database, clock: ManualClock
) -> None:
    session_id = service.create("session").id  # never logged in: its login window ends it
    before = generation(db, session_id)
    clock.advance(LOGIN_WINDOW.default + timedelta(seconds=1))
    assert service.get("session", session_id).state in SESSION.terminal
    assert generation(db, session_id) == before + 1


def test_a_transition_that_does_not_end_the_session_leaves_its_generation(
    service: TransitionService, db: Database
) -> None:
    session_id = log_in(service)
    before = generation(db, session_id)
    service.fire("session", session_id, "connect", actor=an_actor_of("connect"))
    assert generation(db, session_id) == before


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # PostgreSQL: test_write_path counts its waits
def test_ending_a_session_updates_its_row_once(service: TransitionService) -> None:
    session_id = log_in(service)
    with service.transaction() as tx, sqlite_trace(tx) as statements:
        tx.fire("session", session_id, "logout", actor=Actor.CLIENT)
    updates = [s for s in statements if s.startswith("UPDATE sessions")]
    assert len(updates) == 1, updates
    assert "token_generation=(sessions.token_generation + 1)" in updates[0], updates


def test_a_compare_and_set_that_misses_writes_no_history_row(service: TransitionService, db: Database) -> None:
    """The set and its history row go together: on PostgreSQL one statement, on SQLite two; a miss writes neither."""
    session_id = log_in(service)
    h = HISTORY.c
    count = db.prepare("test_history_count", lambda: select(func.count()).where(h.instance_id == bindparam("id")))
    with pytest.raises(VersionConflict) as conflict, service.transaction() as tx:
        snapshot = tx.snapshot(SESSIONS, session_id)
        # What the transaction believes it read, one version behind the row: the set must find no row.
        tx._known["session", session_id] = (snapshot.state, snapshot.version - 1, dict(snapshot.timers))
        try:
            tx.fire("session", session_id, "logout", actor=Actor.CLIENT)
        except VersionConflict:
            written_inside = tx.cursor.one(count, {"id": session_id})  # before the rollback
            raise
    assert written_inside == (2,)
    assert (conflict.value.expected, conflict.value.actual) == (1, 2)
    assert service.get("session", session_id).state == "session_active"
    assert len(history_of(db, session_id)) == 2
