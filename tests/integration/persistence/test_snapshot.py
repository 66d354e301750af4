"""Tx.snapshot: a request's check of an instance and its event on it, in one transaction and one read."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from sessionflow.lifecycle import Actor, ManualClock
from sessionflow.persistence import SESSIONS
from sessionflow.persistence.database import Database
from sessionflow.persistence.errors import InstanceNotFound
from sessionflow.persistence.service import TransitionService
from tests.integration.persistence.conftest import history_of, log_in, sqlite_trace

IDLE = timedelta(minutes=30)
REFRESH_FACTS = {"refresh_token_current": True}


def test_a_snapshot_is_the_whole_row_as_stored(service: TransitionService) -> None:
    session_id = log_in(service)
    with service.transaction() as tx:
        snapshot = tx.snapshot(SESSIONS, session_id)
    stored = service.get("session", session_id)
    assert (snapshot.state, snapshot.version, dict(snapshot.timers)) == ("session_active", 2, dict(stored.timers))
    assert snapshot.row == stored.row


def test_a_snapshot_fires_due_timers_and_the_event_then_starts_from_it(
    service: TransitionService, clock: ManualClock, db: Database
) -> None:
    session_id = log_in(service)
    clock.advance(IDLE * 2)
    with service.transaction() as tx:
        snapshot = tx.snapshot(SESSIONS, session_id)
        assert (snapshot.state, snapshot.version) == ("session_expired", 3)
        assert snapshot.row["state"] == "session_expired"
        applied = tx.fire("session", session_id, "refresh", actor=Actor.CLIENT, facts=REFRESH_FACTS)
    assert (applied.from_state, applied.to_state, applied.version) == ("session_expired", "session_active", 4)
    assert applied.fired_first == ()  # the snapshot fired them
    assert [row[1] for row in history_of(db, session_id)] == ["authenticate", "activate", "expire", "refresh"]


def test_timers_a_snapshot_fired_roll_back_with_its_transaction(
    service: TransitionService, clock: ManualClock, db: Database
) -> None:
    """A request refused after its check writes nothing, the timers included; the next read fires them."""
    session_id = log_in(service)
    clock.advance(IDLE * 2)
    with pytest.raises(LookupError), service.transaction() as tx:
        assert tx.snapshot(SESSIONS, session_id).state == "session_expired"
        raise LookupError("refused")
    assert service.get("session", session_id, fire_due=False).state == "session_active"
    assert len(history_of(db, session_id)) == 2
    assert service.get("session", session_id).state == "session_expired"


def test_a_snapshot_of_no_instance_is_instance_not_found(service: TransitionService) -> None:
    with pytest.raises(InstanceNotFound), service.transaction() as tx:
        tx.snapshot(SESSIONS, uuid.uuid4())


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # PostgreSQL: test_write_path counts its waits
def test_an_event_after_a_snapshot_does_not_read_the_row_again(service: TransitionService) -> None:
    session_id = log_in(service)
    with service.transaction() as tx, sqlite_trace(tx) as statements:
        tx.snapshot(SESSIONS, session_id)
        tx.fire("session", session_id, "logout", actor=Actor.CLIENT)
    reads = [s for s in statements if s.startswith("SELECT") and "FROM sessions" in s]
    assert len(reads) == 1, reads
    assert any(s.startswith("UPDATE sessions SET state=") for s in statements), statements
