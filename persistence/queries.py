"""Read-side queries: listing sessions, reading history and live connections.

Reads never fire timers or write; callers that need timers applied first use
:meth:`sessionflow.persistence.service.TransitionService.get`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, bindparam, func, or_, select

from sessionflow.lifecycle import SESSION, ConnectionState
from sessionflow.persistence import validate
from sessionflow.persistence.database import Database
from sessionflow.persistence.errors import InvalidInput
from sessionflow.persistence.models import Connection, Session, TransitionRecord, User, table
from sessionflow.persistence.records import HistoryEntry

MAX_PAGE = 500  # the most rows a page of the API holds
MAX_READ = MAX_PAGE + 1  # a full page and the one row more that says another page follows


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: uuid.UUID
    state: str
    version: int
    user_id: uuid.UUID | None
    username: str | None
    created_at: datetime
    updated_at: datetime


def _limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_READ:
        raise InvalidInput("limit", f"must be an integer from 1 to {MAX_READ}")
    return limit


def list_sessions(
    db: Database,
    *,
    state: str | None = None,
    user_id: uuid.UUID | None = None,
    after: uuid.UUID | None = None,
    limit: int = 50,
) -> list[SessionRow]:
    """Sessions, newest first, optionally filtered by state and user.

    ``after`` pages: the sessions that come after that one in this order
    (keyset pagination on creation time, then id, so a page never repeats or
    skips a session while others are created).
    """
    if state is not None and state not in SESSION.states:
        raise InvalidInput("state", f"{state!r} is not one of {', '.join(SESSION.states)}")
    sessions, users = table(Session), table(User)
    s, u = sessions.c, users.c
    conditions = []
    if state is not None:
        conditions.append(s.state == state)
    if user_id is not None:
        conditions.append(s.user_id == user_id)
    if after is not None:
        mark = select(s.created_at).where(s.id == after).scalar_subquery()
        conditions.append(or_(s.created_at < mark, and_(s.created_at == mark, s.id < after)))
    stmt = (
        select(s.id, s.state, s.version, s.user_id, u.username, s.created_at, s.updated_at)
        .select_from(sessions.outerjoin(users, s.user_id == u.id))
        .where(and_(True, *conditions))
        .order_by(s.created_at.desc(), s.id.desc())
        .limit(_limit(limit))
    )
    with db.engine.connect() as connection:
        return [SessionRow(*row) for row in connection.execute(stmt)]


def count_sessions_by_state(db: Database) -> dict[str, int]:
    s = table(Session).c
    with db.engine.connect() as connection:
        rows = connection.execute(select(s.state, func.count()).group_by(s.state)).all()
    return dict.fromkeys(SESSION.states, 0) | {str(state): int(count) for state, count in rows}


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
    """Ids of the session's connections that are open (a prepared read: every session GET asks)."""
    sid = validate.instance_id(session_id)
    c = table(Connection).c
    prepared = db.prepare(
        "live_connections",
        lambda: (
            select(c.id)
            .where(and_(c.session_id == bindparam("sid"), c.state == str(ConnectionState.OPEN)))
            .order_by(c.id)
        ),
        (c.id.type,),
    )
    with db.read() as cursor:
        return [row[0] for row in cursor.all(prepared, {"sid": sid})]
