"""Which table holds which machine, and the statements the transition service runs on it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Table, Update, and_, bindparam, insert, select, update
from sqlalchemy.sql import ClauseElement, Select

from sessionflow.lifecycle import CONNECTION, SESSION, Definition, Engine, engine
from sessionflow.persistence.models import Connection, IdempotencyKey, Session, TransitionRecord, table
from sessionflow.persistence.records import Snapshot

HISTORY = table(TransitionRecord)
IDEMPOTENCY = table(IdempotencyKey)


@dataclass(frozen=True, eq=False)
class Binding:
    """A machine definition bound to the table that stores its instances."""

    definition: Definition
    table: Table
    # Counter columns that move on by one when an instance enters a terminal state, in the compare-and-set
    # that takes it there (a session's token generation: no credential issued before it ended works again).
    advanced_on_end: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def engine(self) -> Engine:
        return engine(self.definition)

    @property
    def timer_columns(self) -> tuple[Column[object], ...]:
        return tuple(self.table.c[f"{timer.name}_due_at"] for timer in self.definition.timers)

    @property
    def timer_names(self) -> tuple[str, ...]:
        return tuple(timer.name for timer in self.definition.timers)

    def state_columns(self) -> tuple[Column[object], ...]:
        """``state, version, <timers...>``: what a step reads."""
        return (self.table.c.state, self.table.c.version, *self.timer_columns)

    def select_state(self, *, lock: bool) -> ClauseElement:
        """``state_columns()`` of the instance ``:id``; with ``lock``, locked as :meth:`select_row` says."""
        return _locked(select(*self.state_columns()).where(self.table.c.id == bindparam("id")), lock)

    def select_row(self, *, lock: bool) -> ClauseElement:
        """Every column of the instance ``:id``, in table order; with ``lock``, locked for this transaction."""
        return _locked(select(*self.table.c).where(self.table.c.id == bindparam("id")), lock)

    def snapshot(self, iid: uuid.UUID, found: tuple[Any, ...]) -> Snapshot:
        """The instance whose :meth:`select_row` gave ``found``."""
        row = dict(zip((column.name for column in self.table.c), found, strict=True))
        timers = {name: row[f"{name}_due_at"] for name in self.timer_names}
        return Snapshot(self.name, iid, row["state"], row["version"], timers, row)

    def compare_and_set(self, *, ending: bool = False) -> Update:
        """UPDATE ... WHERE id = :id AND version = :expected RETURNING id; ``ending`` (the new state is
        terminal) also moves on :attr:`advanced_on_end`."""
        t = self.table
        values: dict[str, Any] = {
            "state": bindparam("state"),
            "version": bindparam("version"),
            "updated_at": bindparam("updated_at"),
            "next_due_at": bindparam("next_due_at"),
            **{column.name: bindparam(column.name) for column in self.timer_columns},
        }
        if ending:
            values |= {name: t.c[name] + 1 for name in self.advanced_on_end}
        return (
            update(t)
            .where(and_(t.c.id == bindparam("id"), t.c.version == bindparam("expected")))
            .values(values)
            .returning(t.c.id)
        )

    def compare_and_set_with_history(self, *, ending: bool = False) -> object:
        """PostgreSQL: :meth:`compare_and_set` and the history row of the transition, one statement (the update
        a data-modifying ``WITH``); the row is written, and its ``seq`` returned, only if the set happened."""
        cas = self.compare_and_set(ending=ending).cte("cas")
        h = HISTORY.c
        values = [
            cas.c.id if name == "instance_id" else bindparam(name, type_=h[name].type) for name in HISTORY_COLUMNS
        ]
        return (
            insert(HISTORY).from_select(HISTORY_COLUMNS, select(*values).select_from(cas)).add_cte(cas).returning(h.seq)
        )

    def touch(self) -> object:
        """Timers-only update for recorded activity; the version and state stay."""
        t = self.table
        values: dict[str, Any] = {
            "next_due_at": bindparam("next_due_at"),
            **{c.name: bindparam(c.name) for c in self.timer_columns},
        }
        return (
            update(t)
            .where(and_(t.c.id == bindparam("id"), t.c.version == bindparam("expected")))
            .values(values)
            .returning(t.c.id)
        )

    def due(self, *, limit: int, skip_locked: bool) -> Select[tuple[object]]:
        """Ids whose earliest timer is due, oldest first; on PostgreSQL rows other sweepers hold are skipped."""
        stmt = (
            select(self.table.c.id)
            .where(self.table.c.next_due_at <= bindparam("now"))
            .order_by(self.table.c.next_due_at)
            .limit(limit)
        )
        return stmt.with_for_update(skip_locked=True, key_share=True) if skip_locked else stmt


def _check(binding: Binding) -> Binding:
    missing = [t.name for t in binding.definition.timers if f"{t.name}_due_at" not in binding.table.c]
    missing += [name for name in binding.advanced_on_end if name not in binding.table.c]
    if missing:
        raise RuntimeError(f"table {binding.table.name} lacks columns {missing}")
    return binding


SESSIONS = _check(Binding(SESSION, table(Session), advanced_on_end=("token_generation",)))
CONNECTIONS = _check(Binding(CONNECTION, table(Connection)))
BINDINGS: dict[str, Binding] = {SESSIONS.name: SESSIONS, CONNECTIONS.name: CONNECTIONS}


HISTORY_COLUMNS = (
    "machine",
    "instance_id",
    "seq",
    "event",
    "from_state",
    "to_state",
    "actor",
    "request_id",
    "at",
    "detail",
)


def history_insert() -> object:
    return insert(HISTORY).values({name: bindparam(name) for name in HISTORY_COLUMNS})


def idempotency_select() -> object:
    t = IDEMPOTENCY
    return select(t.c.event, t.c.outcome).where(
        and_(
            t.c.machine == bindparam("machine"),
            t.c.instance_id == bindparam("instance_id"),
            t.c.key == bindparam("key"),
        )
    )


def idempotency_insert() -> object:
    return insert(IDEMPOTENCY).values(
        {name: bindparam(name) for name in ("machine", "instance_id", "key", "event", "outcome", "created_at")}
    )


def _locked(stmt: Select[Any], lock: bool) -> Select[Any]:
    # FOR NO KEY UPDATE: writers of one instance queue here, but rows that merely reference it
    # (a new connection's foreign key takes KEY SHARE) do not, so two first connections of a
    # session opening at once cannot deadlock.
    return stmt.with_for_update(key_share=True) if lock else stmt
