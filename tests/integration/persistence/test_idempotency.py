"""An Idempotency-Key makes a repeated event return its first outcome and change nothing."""

from __future__ import annotations

import threading
import uuid

import pytest

from sessionflow.lifecycle import Actor
from sessionflow.persistence.database import Database
from sessionflow.persistence.errors import IdempotencyKeyReused
from sessionflow.persistence.service import TransitionService
from tests.integration.persistence.conftest import history_of, log_in

REFRESH = {"refresh_token_current": True}


def test_repeat_returns_first_outcome_and_writes_nothing(
    service: TransitionService, active_session: uuid.UUID, db: Database
) -> None:
    """The second call with the same key is marked repeated, has the same version and adds no history."""
    first = service.fire("session", active_session, "refresh", actor=Actor.CLIENT, facts=REFRESH, idempotency_key="k-1")
    again = service.fire("session", active_session, "refresh", actor=Actor.CLIENT, facts=REFRESH, idempotency_key="k-1")
    assert not first.repeated
    assert again.repeated
    assert (again.event, again.from_state, again.to_state, again.version, again.at) == (
        first.event,
        first.from_state,
        first.to_state,
        first.version,
        first.at,
    )
    assert service.get("session", active_session).version == first.version
    assert len(history_of(db, active_session)) == 3


def test_repeat_after_the_state_moved_still_returns_first_outcome(
    service: TransitionService, active_session: uuid.UUID
) -> None:
    """A retried logout after the session closed answers with the logout it already did, not a refusal."""
    first = service.fire("session", active_session, "logout", actor=Actor.CLIENT, idempotency_key="logout-1")
    again = service.fire("session", active_session, "logout", actor=Actor.CLIENT, idempotency_key="logout-1")
    assert again.repeated
    assert again.to_state == first.to_state == "closed"


def test_key_reused_for_another_event_is_refused(
    service: TransitionService, active_session: uuid.UUID, unchanged: object
) -> None:
    """A key first used for refresh cannot be spent on logout; nothing is written."""
    service.fire("session", active_session, "refresh", actor=Actor.CLIENT, facts=REFRESH, idempotency_key="k-2")
    check = unchanged(active_session)
    with pytest.raises(IdempotencyKeyReused) as reused:
        service.fire("session", active_session, "logout", actor=Actor.CLIENT, idempotency_key="k-2")
    assert (reused.value.first_event, reused.value.event) == ("refresh", "logout")
    check()


def test_keys_are_scoped_to_their_session(service: TransitionService, active_session: uuid.UUID) -> None:
    """The same key on two sessions applies to each of them."""
    other = log_in(service)
    a = service.fire("session", active_session, "logout", actor=Actor.CLIENT, idempotency_key="same")
    b = service.fire("session", other, "logout", actor=Actor.CLIENT, idempotency_key="same")
    assert not a.repeated
    assert not b.repeated


def test_concurrent_repeats_apply_once(db_url: str, clock: object) -> None:
    """Ten threads sending one key at once: one applies, the other nine get its outcome."""
    database = Database.from_url(db_url, pool_size=10)
    service = TransitionService(database, clock=clock)
    try:
        session_id = log_in(service)
        barrier = threading.Barrier(10)
        results: list[object] = []

        def send() -> None:
            barrier.wait()
            try:
                results.append(
                    service.fire(
                        "session", session_id, "refresh", actor=Actor.CLIENT, facts=REFRESH, idempotency_key="dup"
                    )
                )
            except Exception as exc:  # noqa: BLE001 - collected and asserted on below
                results.append(exc)

        threads = [threading.Thread(target=send) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(not isinstance(r, Exception) for r in results), results
        assert sum(not r.repeated for r in results) == 1
        assert {r.version for r in results} == {3}
        assert len(history_of(database, session_id)) == 3
    finally:
        database.dispose()
