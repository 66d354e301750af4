"""Read-side queries: listing sessions, reading history, connections, users.

Reads never fire timers or write; callers that need timers applied first use
:meth:`sessionflow.persistence.service.TransitionService.get`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import and_, func, select

from sessionflow.lifecycle import SESSION
from sessionflow.persistence import validate
from sessionflow.persistence.database import Database
from sessionflow.persistence.errors import InvalidInput
from sessionflow.persistence.models import Connection, Session, TransitionRecord, User, table
from sessionflow.persistence.records import HistoryEntry
from sessionflow.persistence.tokens import UserRecord

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: uuid.UUID
    state: str
    version: int
    user_id: uuid.UUID | None
    username: str | None


def _limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("limit", f"must be an integer from 1 to {MAX_PAGE}")
    return limit


def list_sessions(
    db: Database,
    *,
    state: str | None = None,
    user_id: uuid.UUID | None = None,
    after: uuid.UUID | None = None,
    limit: int = 50,
) -> list[SessionRow]:
    """Sessions ordered by id, optionally filtered by state and user; ``after`` pages (keyset)."""
    if state is not None and state not in SESSION.states:
        raise InvalidInput("state", f"{state!r} is not one of {', '.join(SESSION.states)}")
    s = table(Session).c
    u = table(User).c
    conditions = []
    if state is not None:
        conditions.append(s.state == state)
    if user_id is not None:
        conditions.append(s.user_id == user_id)
    if after is not None:
        conditions.append(s.id > after)
    stmt = (
        select(s.id, s.state, s.version, s.user_id, u.username)
        .select_from(table(Session).outerjoin(table(User), s.user_id == u.id))
        .where(and_(True, *conditions))
        .order_by(s.id)
        .limit(_limit(limit))
    )
    with db.engine.connect() as connection:
        return [SessionRow(*row) for row in connection.execute(stmt)]


def count_sessions_by_state(db: Database) -> dict[str, int]:
    s = table(Session).c
    with db.engine.connect() as connection:
        rows = connection.execute(select(s.state, func.count()).group_by(s.state)).all()
    return dict.fromkeys(SESSION.states, 0) | dict(rows)


def history(
    db: Database, machine: str, instance_id: object, *, after_seq: int = 0, limit: int = 100
) -> list[HistoryEntry]:
    """Transitions of one instance, oldest first, with ``seq > after_seq``."""
    validate.binding(machine)
    iid = validate.instance_id(instance_id)
    if isinstance(after_seq, bool) or not isinstance(after_seq, int) or after_seq < 0:
        raise InvalidInput("after_seq", "must be a non-negative integer")
    h = table(TransitionRecord).c
    stmt = (
        select(
            h.machine, h.instance_id, h.seq, h.event, h.from_state, h.to_state, h.actor, h.request_id, h.at, h.detail
        )
        .where(and_(h.machine == machine, h.instance_id == iid, h.seq > after_seq))
        .order_by(h.seq)
        .limit(_limit(limit))
    )
    with db.engine.connect() as connection:
        return [HistoryEntry(**row._mapping) for row in connection.execute(stmt)]


def live_connections(db: Database, session_id: object) -> list[uuid.UUID]:
    """Ids of the session's connections that are open."""
    sid = validate.instance_id(session_id)
    c = table(Connection).c
    with db.engine.connect() as connection:
        return list(connection.scalars(select(c.id).where(and_(c.session_id == sid, c.state == "open")).order_by(c.id)))


def user_by_name(db: Database, username: str) -> UserRecord | None:
    """The user called ``username``, read outside any write transaction (password checks are slow)."""
    u = table(User).c
    with db.engine.connect() as connection:
        row = connection.execute(
            select(u.id, u.username, u.password_hash, u.is_admin, u.enabled).where(u.username == username)
        ).first()
    return UserRecord(*row) if row is not None else None


def user_by_id(db: Database, user_id: uuid.UUID) -> UserRecord | None:
    u = table(User).c
    with db.engine.connect() as connection:
        row = connection.execute(
            select(u.id, u.username, u.password_hash, u.is_admin, u.enabled).where(u.id == user_id)
        ).first()
    return UserRecord(*row) if row is not None else None


def user_id_by_name(db: Database, username: str) -> uuid.UUID | None:
    u = table(User).c
    with db.engine.connect() as connection:
        return connection.scalar(select(u.id).where(u.username == username))
