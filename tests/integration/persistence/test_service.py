"""The transition service applies events atomically, records history and refuses precisely."""

from __future__ import annotations

import uuid

import pytest

from sessionflow.lifecycle import Actor, ActorNotPermitted, GuardFailed, SessionState, TransitionNotAllowed
from sessionflow.persistence.bindings import CONNECTIONS
from sessionflow.persistence.database import Database
from sessionflow.persistence.errors import InstanceNotFound, VersionConflict
from sessionflow.persistence.service import TransitionService
from tests.integration.persistence.conftest import LOGIN_FACTS, history_of


def test_new_session_starts_anonymous_with_its_timers_armed(service: TransitionService) -> None:
    """A created session is anonymous at version 0 with the login window and lifetime armed."""
    created = service.create("session")
    stored = service.get("session", created.id)
    assert (stored.state, stored.version) == (SessionState.ANONYMOUS, 0)
    armed = {name for name, due in stored.timers.items() if due is not None}
    assert armed == {"login_window", "lifetime"}
    assert stored.row["next_due_at"] == stored.timers["login_window"]


def test_happy_path_is_recorded_with_consecutive_seq(service: TransitionService, db: Database) -> None:
    """Login, connect and disconnect leave one history row each, seq 1..4, actor and states recorded."""
    session = service.create("session")
    for event in ("authenticate", "activate", "connect", "disconnect"):
        service.fire("session", session.id, event, actor=Actor.SERVER, facts=LOGIN_FACTS, request_id=f"req-{event}")
    assert history_of(db, session.id) == [
        (1, "authenticate", "anonymous", "authenticated", "server"),
        (2, "activate", "authenticated", "session_active", "server"),
        (3, "connect", "session_active", "ws_connected", "server"),
        (4, "disconnect", "ws_connected", "session_active", "server"),
    ]
    assert service.get("session", session.id).version == 4


def test_refused_event_names_instance_state_event_and_allowed_events(
    service: TransitionService, active_session: uuid.UUID, unchanged: object
) -> None:
    """An event the machine refuses raises with the session id, its state and what it would accept."""
    check = unchanged(active_session)
    with pytest.raises(TransitionNotAllowed) as refused:
        service.fire("session", active_session, "disconnect", actor=Actor.SERVER)
    assert refused.value.instance_id == active_session
    assert refused.value.state == "session_active"
    assert refused.value.event == "disconnect"
    assert set(refused.value.allowed_events) == {"connect", "revoke"}
    check()


def test_guard_failure_writes_nothing(service: TransitionService, active_session: uuid.UUID, unchanged: object) -> None:
    """A refresh without a current refresh token is refused by its guard and leaves the store as it was."""
    check = unchanged(active_session)
    with pytest.raises(GuardFailed) as refused:
        service.fire("session", active_session, "refresh", actor=Actor.CLIENT, facts={"refresh_token_current": False})
    assert refused.value.guards == ("refresh_token_current",)
    check()


def test_actor_may_only_fire_its_own_events(
    service: TransitionService, active_session: uuid.UUID, unchanged: object
) -> None:
    """A client cannot fire a timer's event, and nothing is written when it tries."""
    check = unchanged(active_session)
    with pytest.raises(ActorNotPermitted):
        service.fire("session", active_session, "expire", actor=Actor.CLIENT)
    check()


def test_stale_expected_version_is_a_conflict(
    service: TransitionService, active_session: uuid.UUID, unchanged: object
) -> None:
    """An If-Match version that is no longer current is refused as stale with both versions named."""
    check = unchanged(active_session)
    with pytest.raises(VersionConflict) as conflict:
        service.fire("session", active_session, "logout", actor=Actor.CLIENT, expected_version=1)
    assert (conflict.value.expected, conflict.value.actual, conflict.value.stale) == (1, 2, True)
    check()


def test_current_expected_version_applies(service: TransitionService, active_session: uuid.UUID) -> None:
    """An If-Match version that is current lets the event through."""
    applied = service.fire("session", active_session, "logout", actor=Actor.CLIENT, expected_version=2)
    assert (applied.to_state, applied.version) == ("closed", 3)


def test_unknown_session_is_not_found(service: TransitionService) -> None:
    """A well-formed id that names no session raises InstanceNotFound for fire and get."""
    missing = uuid.uuid4()
    with pytest.raises(InstanceNotFound):
        service.fire("session", missing, "logout", actor=Actor.CLIENT)
    with pytest.raises(InstanceNotFound):
        service.get("session", missing)


def test_unit_of_work_rolls_back_every_event_together(
    service: TransitionService, active_session: uuid.UUID, db: Database
) -> None:
    """Events fired in one transaction vanish together when the transaction fails."""
    with pytest.raises(RuntimeError, match="boom"), service.transaction() as tx:
        tx.fire("session", active_session, "connect", actor=Actor.SERVER)
        tx.fire("session", active_session, "disconnect", actor=Actor.SERVER)
        raise RuntimeError("boom")
    assert service.get("session", active_session).version == 2
    assert len(history_of(db, active_session)) == 2


def test_connection_rows_follow_their_own_machine(
    service: TransitionService, active_session: uuid.UUID, db: Database
) -> None:
    """A connection is created connecting, accepted to open, closed; its history is its own."""
    with service.transaction() as tx:
        connection = tx.create(CONNECTIONS, uuid.uuid4(), {"session_id": active_session, "worker_id": "worker-1"})
        tx.fire("connection", connection.id, "accept", actor=Actor.SERVER)
    assert service.get("connection", connection.id).state == "open"
    assert service.get("session", active_session).state == "ws_connected"
    service.fire("connection", connection.id, "close", actor=Actor.SERVER)
    assert history_of(db, connection.id) == [
        (1, "accept", "connecting", "open", "server"),
        (2, "close", "open", "closed", "server"),
    ]
    assert service.get("session", active_session).state == "session_active"  # its only connection closed cleanly
