"""What the inspector reads: counts by state, the store's transitions in global order, refusals.

The global order is ``transitions.id`` (and ``refusals.id``): a reader
resumes after the last id it saw, on any worker, across restarts. Reads
never write, except :func:`record_refusals`, which appends refusals after
their own transactions rolled back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, String, and_, bindparam, cast, func, literal, select, union_all

from sessionflow.lifecycle import CONNECTION, SESSION
from sessionflow.persistence import validate
from sessionflow.persistence.database import Database
from sessionflow.persistence.models import Connection, Refusal, Session, TransitionRecord, User, table

PAGE = 500  # rows per read of the feed


@dataclass(frozen=True, slots=True)
class Overview:
    """Counts of sessions and connections by state, and the newest ids, read in one statement (one snapshot)."""

    counts: dict[str, dict[str, int]]  # machine -> state -> count
    seq: int  # the newest transitions.id: the feed continues after it
    refusal_seq: int  # the newest refusals.id


@dataclass(frozen=True, slots=True)
class FeedTransition:
    seq: int  # transitions.id: the global order
    machine: str
    instance_id: uuid.UUID
    session_id: uuid.UUID | None  # the session itself, or a connection's session
    version: int  # the instance's own seq
    event: str
    from_state: str
    to_state: str
    actor: str
    request_id: str | None
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "machine": self.machine,
            "id": str(self.instance_id),
            "session_id": str(self.session_id) if self.session_id is not None else None,
            "version": self.version,
            "event": self.event,
            "from": self.from_state,
            "to": self.to_state,
            "actor": self.actor,
            "request_id": self.request_id,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class RefusalRow:
    seq: int  # refusals.id
    machine: str
    instance_id: uuid.UUID
    event: str
    state: str
    code: str
    reason: str
    request_id: str | None
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "machine": self.machine,
            "id": str(self.instance_id),
            "event": self.event,
            "state": self.state,
            "code": self.code,
            "reason": self.reason,
            "request_id": self.request_id,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ConnectionRow:
    id: uuid.UUID
    state: str
    worker_id: str
    created_at: datetime
    updated_at: datetime
    last_heartbeat_at: datetime | None
    close_code: int | None
    close_reason: str | None
    handshake_due_at: datetime | None
    heartbeat_due_at: datetime | None


def overview(db: Database) -> Overview:
    """Counts by state for both machines and the newest ids, consistent with each other."""
    s, c = table(Session).c, table(Connection).c
    h, r = table(TransitionRecord).c, table(Refusal).c
    statement = union_all(
        select(literal(SESSION.name), cast(s.state, String), func.count()).group_by(s.state),
        select(literal(CONNECTION.name), cast(c.state, String), func.count()).group_by(c.state),
        select(literal("seq"), literal(""), func.coalesce(func.max(h.id), 0)),
        select(literal("refusal_seq"), literal(""), func.coalesce(func.max(r.id), 0)),
    )
    counts: dict[str, dict[str, int]] = {
        SESSION.name: dict.fromkeys(map(str, SESSION.states), 0),
        CONNECTION.name: dict.fromkeys(map(str, CONNECTION.states), 0),
    }
    marks = {"seq": 0, "refusal_seq": 0}
    with db.engine.connect() as connection:
        for kind, state, number in connection.execute(statement):
            if kind in marks:
                marks[kind] = int(number)
            else:
                counts[kind][state] = int(number)
    return Overview(counts, marks["seq"], marks["refusal_seq"])


def newest(db: Database) -> tuple[int, int]:
    """The newest ``transitions.id`` and ``refusals.id`` (two primary-key lookups, however big the tables)."""
    h, r = table(TransitionRecord).c, table(Refusal).c
    statement = select(
        select(func.coalesce(func.max(h.id), 0)).scalar_subquery(),
        select(func.coalesce(func.max(r.id), 0)).scalar_subquery(),
    )
    with db.engine.connect() as connection:
        seq, refusal_seq = connection.execute(statement).one()
    return int(seq), int(refusal_seq)


def news(db: Database, after: int, refusals_after: int) -> tuple[list[FeedTransition], list[RefusalRow]]:
    """What the feed reads each round: transitions after ``after`` and refusals after ``refusals_after``.

    One connection for both (on PostgreSQL a checkout costs round trips of its own).
    """
    with db.engine.connect() as connection:
        transitions = [FeedTransition(*row) for row in connection.execute(_transitions_after(after, PAGE))]
        refusals = [RefusalRow(*row) for row in connection.execute(_refusals_after(refusals_after, PAGE))]
    return transitions, refusals


def _transitions_after(after: int, limit: int) -> Select[Any]:
    """Transitions with ``id > after``, in id order, each with the session it belongs to."""
    h, c = table(TransitionRecord).c, table(Connection).c
    session_of = func.coalesce(c.session_id, h.instance_id)
    return (
        select(
            h.id,
            h.machine,
            h.instance_id,
            session_of,
            h.seq,
            h.event,
            h.from_state,
            h.to_state,
            h.actor,
            h.request_id,
            h.at,
        )
        .select_from(
            table(TransitionRecord).outerjoin(
                table(Connection), and_(h.machine == CONNECTION.name, c.id == h.instance_id)
            )
        )
        .where(h.id > after)
        .order_by(h.id)
        .limit(limit)
    )


def _refusals_after(after: int, limit: int) -> Select[Any]:
    r = table(Refusal).c
    return (
        select(r.id, r.machine, r.instance_id, r.event, r.state, r.code, r.reason, r.request_id, r.at)
        .where(r.id > after)
        .order_by(r.id)
        .limit(limit)
    )


def refusals_of(db: Database, instance_ids: Iterable[uuid.UUID], *, limit: int = PAGE) -> list[RefusalRow]:
    """The refusals met by these instances (a session and its connections), oldest first."""
    r = table(Refusal).c
    ids = [validate.instance_id(i) for i in instance_ids]
    statement = (
        select(r.id, r.machine, r.instance_id, r.event, r.state, r.code, r.reason, r.request_id, r.at)
        .where(r.instance_id.in_(ids))
        .order_by(r.id)
        .limit(limit)
    )
    with db.engine.connect() as connection:
        return [RefusalRow(*row) for row in connection.execute(statement)]


def connections_of(db: Database, session_id: object, *, limit: int = PAGE) -> list[ConnectionRow]:
    """Every connection the session held, newest first, with its timers and how it closed."""
    sid = validate.instance_id(session_id)
    c = table(Connection).c
    statement = (
        select(
            c.id,
            c.state,
            c.worker_id,
            c.created_at,
            c.updated_at,
            c.last_heartbeat_at,
            c.close_code,
            c.close_reason,
            c.handshake_due_at,
            c.heartbeat_due_at,
        )
        .where(c.session_id == sid)
        .order_by(c.created_at.desc(), c.id)
        .limit(limit)
    )
    with db.engine.connect() as connection:
        return [ConnectionRow(**row._mapping) for row in connection.execute(statement)]


def username_of(db: Database, user_id: uuid.UUID | None) -> str | None:
    if user_id is None:
        return None
    u = table(User).c
    with db.engine.connect() as connection:
        name = connection.execute(select(u.username).where(u.id == user_id)).scalar_one_or_none()
    return str(name) if name is not None else None


def record_refusals(db: Database, rows: list[dict[str, Any]]) -> None:
    """Append refusals (dicts of :class:`~sessionflow.persistence.models.Refusal`'s columns but ``id``)."""
    if not rows:
        return
    columns = ("machine", "instance_id", "event", "state", "code", "reason", "request_id", "at")
    insert = db.prepare("refusal_insert", lambda: table(Refusal).insert().values({c: bindparam(c) for c in columns}))
    with db.write() as cursor:
        for row in rows:
            cursor.execute(insert, row)
