"""Connections drive their session: the first open connects it, the last to go disconnects or drops it."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sessionflow.lifecycle import Actor, ManualClock
from sessionflow.persistence import connections
from sessionflow.persistence.database import Database
from sessionflow.persistence.service import TransitionService
from tests.integration.persistence.conftest import history_of, log_in


def _open(service: TransitionService, session_id: uuid.UUID, worker: str = "w1") -> uuid.UUID:
    with service.transaction() as tx:
        row = connections.open_connection(tx, session_id, worker_id=worker, remote_addr="127.0.0.1")
        tx.fire("connection", row.id, "accept", actor=Actor.SERVER)
    return row.id


def _end(service: TransitionService, connection_id: uuid.UUID, event: str, code: int) -> None:
    with service.transaction() as tx:
        tx.fire("connection", connection_id, event, actor=Actor.SERVER)
        connections.record_close(tx, connection_id, code, "test")


def _session_events(db: Database, session_id: uuid.UUID) -> list[str]:
    return [row[1] for row in history_of(db, session_id)[2:]]


def test_two_tabs_connect_once_and_disconnect_when_the_last_closes(service: TransitionService, db: Database) -> None:
    """Only the first open fires connect; only the last clean close fires disconnect."""
    session_id = log_in(service)
    first, second = _open(service, session_id), _open(service, session_id)
    assert service.get("session", session_id).state == "ws_connected"
    _end(service, first, "close", 1000)
    assert service.get("session", session_id).state == "ws_connected"
    _end(service, second, "close", 1000)
    assert service.get("session", session_id).state == "session_active"
    assert _session_events(db, session_id) == ["connect", "disconnect"]
    assert service.get("connection", second).row["close_code"] == 1000


def test_losing_the_last_connection_drops_the_session_until_grace_elapses(
    service: TransitionService, clock: ManualClock, db: Database
) -> None:
    """An abnormal end of the last connection drops the session; 60 s without a reconnect return it to active."""
    session_id = log_in(service)
    connection_id = _open(service, session_id)
    _end(service, connection_id, "drop", 1006)
    assert service.get("session", session_id).state == "ws_disconnected"
    clock.advance(timedelta(seconds=61))
    service.sweep()
    assert service.get("session", session_id).state == "session_active"
    assert _session_events(db, session_id) == ["connect", "drop", "grace_elapsed"]


def test_reconnecting_within_grace_connects_again(service: TransitionService, db: Database) -> None:
    session_id = log_in(service)
    _end(service, _open(service, session_id), "drop", 1006)
    _open(service, session_id)
    assert service.get("session", session_id).state == "ws_connected"
    assert _session_events(db, session_id) == ["connect", "drop", "connect"]


def test_a_dead_workers_connections_are_dropped_by_the_sweeper(
    service: TransitionService, clock: ManualClock, db: Database
) -> None:
    """No heartbeat for three intervals: the sweeper drops the connection and the session with it."""
    session_id = log_in(service)
    connection_id = _open(service, session_id, worker="dead-worker")
    clock.advance(timedelta(seconds=76))  # three 25 s heartbeat intervals, and a second
    fired = service.sweep()
    assert ("connection", "drop") in [(a.machine, a.event) for a in fired]
    assert service.get("connection", connection_id).state == "dropped"
    assert service.get("session", session_id).state == "ws_disconnected"


def test_heartbeats_keep_a_connection_alive(service: TransitionService, clock: ManualClock) -> None:
    session_id = log_in(service)
    connection_id = _open(service, session_id)
    for _ in range(5):
        clock.advance(timedelta(seconds=25))
        with service.transaction() as tx:
            assert connections.heartbeat(tx, connection_id)
    service.sweep()
    assert service.get("connection", connection_id).state == "open"
    assert service.get("connection", connection_id).row["last_heartbeat_at"] == clock.now()


def test_first_connections_opening_at_once_all_succeed(db_url: str, clock: ManualClock) -> None:
    """Eight tabs of one session opening at the same instant: no deadlock, one connect, eight open rows."""
    import threading

    service = TransitionService(Database.from_url(db_url, pool_size=8), clock=clock)
    try:
        session_id = log_in(service)
        barrier = threading.Barrier(8)
        errors: list[BaseException] = []

        def open_one() -> None:
            barrier.wait()
            try:
                _open(service, session_id)
            except BaseException as exc:  # noqa: BLE001 - collected and asserted on below
                errors.append(exc)

        threads = [threading.Thread(target=open_one) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        assert service.get("session", session_id).state == "ws_connected"
        assert _session_events(service.db, session_id) == ["connect"]
        with service.transaction() as tx:
            assert connections.open_count(tx, session_id) == 8
    finally:
        service.db.dispose()
