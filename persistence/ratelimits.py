"""Fixed-window attempt counters in the database, so that every worker and host shares them (login limits)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, case, select
from sqlalchemy.dialects import postgresql, sqlite

from sessionflow.persistence.models import RateLimit, table

if TYPE_CHECKING:
    from sessionflow.persistence.tx import Tx

_limits = table(RateLimit)


def count_attempt(tx: Tx, key: str, window: timedelta) -> tuple[int, datetime]:
    """Count one attempt against ``key`` in a fixed window; return the count so far and the window's start.

    One upsert, so concurrent workers on PostgreSQL never lose a count.
    """
    prepared = tx.db.prepare(
        ("rate_limit", tx.db.dialect.name),
        lambda: _upsert_attempt(tx.db.dialect.name),
        (_limits.c.count.type, _limits.c.window_start.type),
    )
    row = tx.cursor.one(prepared, {"key": key, "now": tx.now, "cutoff": tx.now - window})
    assert row is not None
    return int(row[0]), row[1]


def _upsert_attempt(dialect: str) -> Any:
    c = _limits.c
    now = bindparam("now", type_=c.window_start.type)  # typed: inside CASE the column type is not inferred
    insert_ = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_limits)
    stmt = insert_.values(key=bindparam("key"), window_start=now, count=1)
    expired = c.window_start <= bindparam("cutoff", type_=c.window_start.type)
    return stmt.on_conflict_do_update(
        index_elements=[c.key],
        set_={
            "count": case((expired, 1), else_=c.count + 1),
            "window_start": case((expired, now), else_=c.window_start),
        },
    ).returning(c.count, c.window_start)


def attempts(tx: Tx, key: str, window: timedelta) -> tuple[int, datetime]:
    """The count of ``key``'s current window and the window's start, without counting (0 once it expired)."""
    c = _limits.c
    prepared = tx.db.prepare(
        "rate_limit_read",
        lambda: select(c.count, c.window_start).where(c.key == bindparam("key")),
        (c.count.type, c.window_start.type),
    )
    row = tx.cursor.one(prepared, {"key": key})
    if row is None or row[1] <= tx.now - window:
        return 0, tx.now
    return int(row[0]), row[1]


def clear_attempts(tx: Tx, key: str) -> None:
    c = _limits.c
    prepared = tx.db.prepare("rate_limit_clear", lambda: _limits.delete().where(c.key == bindparam("key")))
    tx.cursor.execute(prepared, {"key": key})
