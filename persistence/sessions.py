"""Session rows beyond their state: who owns a session, and a user's sessions that have not ended.

The state, version and timers of a session are the transition service's;
these functions read and write the rest of the row inside a
:class:`~sessionflow.persistence.tx.Tx`. "Not ended" means not in a terminal
state of the session machine, whatever states it declares.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, and_, bindparam, func, literal, select, update

from sessionflow.lifecycle import SESSION, Actor, Definition, SessionEvent
from sessionflow.persistence.models import Session, table
from sessionflow.persistence.records import Applied

if TYPE_CHECKING:
    from sessionflow.persistence.tx import Tx

_sessions = table(Session)


def not_ended(column: Any, definition: Definition = SESSION) -> Any:
    """``column`` holds a state that is not terminal: one literal per state, as precompiled statements need."""
    return column.notin_([literal(str(state), String()) for state in sorted(definition.terminal)])


def bind_user(tx: Tx, session_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Attach the session to its user and forget its anonymous token (it must not outlive the upgrade)."""
    c = _sessions.c
    prepared = tx.db.prepare(
        "session_bind_user",
        lambda: (
            update(_sessions)
            .where(c.id == bindparam("sid"))
            .values(user_id=bindparam("uid"), anonymous_token_hash=None)
        ),
    )
    tx.cursor.execute(prepared, {"sid": session_id, "uid": user_id})


def owner(tx: Tx, session_id: uuid.UUID) -> uuid.UUID | None:
    c = _sessions.c
    prepared = tx.db.prepare(
        "session_owner", lambda: select(c.user_id).where(c.id == bindparam("sid")), (c.user_id.type,)
    )
    row = tx.cursor.one(prepared, {"sid": session_id})
    return row[0] if row is not None else None


def open_sessions_of(tx: Tx, user_id: uuid.UUID) -> list[uuid.UUID]:
    """Sessions of the user that have not ended (anonymous ones have no user)."""
    c = _sessions.c
    prepared = tx.db.prepare(
        "open_sessions",
        lambda: select(c.id).where(and_(c.user_id == bindparam("uid"), not_ended(c.state))).order_by(c.id),
        (c.id.type,),
    )
    return [row[0] for row in tx.cursor.all(prepared, {"uid": user_id})]


def count_open_sessions_of(tx: Tx, user_id: uuid.UUID) -> int:
    """How many sessions of the user have not ended (for the per-user cap)."""
    c = _sessions.c
    prepared = tx.db.prepare(
        "open_session_count",
        lambda: select(func.count()).where(and_(c.user_id == bindparam("uid"), not_ended(c.state))),
    )
    row = tx.cursor.one(prepared, {"uid": user_id})
    return int(row[0]) if row else 0


def revoke_all_of(
    tx: Tx, user_id: uuid.UUID, *, actor: Actor, reason: str, request_id: str | None = None
) -> list[Applied]:
    """Revoke every session of the user that has not ended, in this transaction; what was revoked."""
    return [
        tx.fire(SESSION.name, sid, SessionEvent.REVOKE, actor=actor, detail={"reason": reason}, request_id=request_id)
        for sid in open_sessions_of(tx, user_id)
    ]
