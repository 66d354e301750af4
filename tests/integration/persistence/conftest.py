"""Fixtures for the transition service tests: sessions driven to a given state."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from sessionflow.lifecycle import Actor
from sessionflow.persistence.database import Database
from sessionflow.persistence.models import Base, TransitionRecord
from sessionflow.persistence.records import Snapshot
from sessionflow.persistence.service import TransitionService

LOGIN_FACTS = {"credentials_verified": True, "user_enabled": True, "under_session_cap": True}


def log_in(service: TransitionService) -> uuid.UUID:
    """A new session taken through authenticate and activate, as login does."""
    session = service.create("session")
    service.fire("session", session.id, "authenticate", actor=Actor.SERVER, facts=LOGIN_FACTS)
    service.fire("session", session.id, "activate", actor=Actor.SERVER, facts=LOGIN_FACTS)
    return session.id


@pytest.fixture
def active_session(service: TransitionService) -> uuid.UUID:
    return log_in(service)


def history_of(db: Database, instance_id: uuid.UUID) -> list[tuple[int, str, str, str, str]]:
    h = TransitionRecord.__table__.c
    with db.engine.connect() as connection:
        rows = connection.execute(
            select(h.seq, h.event, h.from_state, h.to_state, h.actor)
            .where(h.instance_id == instance_id)
            .order_by(h.seq)
        )
        return [tuple(row) for row in rows]


def table_counts(db: Database) -> dict[str, int]:
    with db.engine.connect() as connection:
        return {
            t.name: connection.scalar(select(func.count()).select_from(t)) or 0 for t in Base.metadata.sorted_tables
        }


@pytest.fixture
def unchanged(db: Database, service: TransitionService) -> Callable[[uuid.UUID], Callable[[], None]]:
    """``check = unchanged(id)`` records the store; ``check()`` asserts nothing was written since."""

    def record(instance_id: uuid.UUID) -> Callable[[], None]:
        before_counts = table_counts(db)
        before: Snapshot = service.get("session", instance_id, fire_due=False)

        def check() -> None:
            after = service.get("session", instance_id, fire_due=False)
            assert table_counts(db) == before_counts
            assert (after.state, after.version, dict(after.timers)) == (
                before.state,
                before.version,
                dict(before.timers),
            )
            assert after.row == before.row

        return check

    return record
