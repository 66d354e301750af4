"""WebSocket connections at rest, and how they drive their session.

Opening the first live connection of a session fires the session's
``connect``; closing the last one fires ``disconnect`` when it went cleanly
and ``drop`` when it was lost. :func:`cascade` applies that rule inside the
transaction of every connection event, whoever fires it: the WebSocket
handler, or the sweeper when a dead worker's connections miss their
heartbeats.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import and_, bindparam, func, select, update

from sessionflow.lifecycle import SESSION, Actor, ConnectionState, Definition, SessionEvent, engine
from sessionflow.lifecycle.connection import SESSION_EVENT
from sessionflow.persistence.bindings import CONNECTIONS, SESSIONS
from sessionflow.persistence.models import Connection, Session, table
from sessionflow.persistence.records import Applied, Snapshot

if TYPE_CHECKING:
    from sessionflow.persistence.tx import Tx

_connections = table(Connection)
_sessions = table(Session)
_C = ConnectionState


def open_connection(tx: Tx, session_id: uuid.UUID, *, worker_id: str, remote_addr: str | None) -> Snapshot:
    """A new connection row, ``connecting``, held by ``worker_id``."""
    return tx.create(
        CONNECTIONS, uuid.uuid4(), {"session_id": session_id, "worker_id": worker_id, "remote_addr": remote_addr}
    )


def record_close(tx: Tx, connection_id: uuid.UUID, code: int, reason: str) -> None:
    c = _connections.c
    prepared = tx.db.prepare(
        "connection_close_code",
        lambda: (
            update(_connections)
            .where(c.id == bindparam("cid"))
            .values(close_code=bindparam("code"), close_reason=bindparam("reason"))
        ),
    )
    tx.cursor.execute(
        prepared, {"cid": connection_id, "code": code, "reason": reason.encode()[:123].decode(errors="ignore")}
    )


def heartbeat(tx: Tx, connection_id: uuid.UUID, *, at: datetime | None = None, since: datetime | None = None) -> bool:
    """Pongs arrived from ``since`` until ``at`` (both default: now): note the last and restart the heartbeat
    timer from it.

    False if the connection is no longer open, or its heartbeat timer was due before ``since``, the first
    pong not yet recorded (the worker holding the connection closes it itself when pongs stop, so pongs
    from ``since`` to ``at`` were never further apart than the timer).
    """
    at = tx.now if at is None else min(at, tx.now)
    c = _connections.c
    prepared = tx.db.prepare(
        "connection_heartbeat",
        lambda: (
            update(_connections)
            .where(and_(c.id == bindparam("cid"), c.state == bindparam("open")))
            .values(last_heartbeat_at=bindparam("now"))
            .returning(c.id)
        ),
    )
    if tx.cursor.one(prepared, {"cid": connection_id, "now": at, "open": str(_C.OPEN)}) is None:
        return False
    return tx.touch(CONNECTIONS, connection_id, at=at, since=since)


def open_count_for_address(tx: Tx, address: str) -> int:
    """Open connections from client ``address`` on every worker and host.

    On PostgreSQL the transaction first takes an advisory lock on the address (released at commit), so
    handshakes from one address arriving at once on several workers count each other; SQLite's write
    transactions are serial already.
    """
    c = _connections.c
    if tx.db.is_postgresql:
        lock = tx.db.prepare(
            "connections_address_lock",
            lambda: select(func.pg_advisory_xact_lock(func.hashtext(bindparam("key")))),
        )
        tx.cursor.execute(lock, {"key": f"sessionflow:ws-address:{address}"})
    prepared = tx.db.prepare(
        "connections_open_count_address",
        lambda: select(func.count()).where(and_(c.remote_addr == bindparam("addr"), c.state == bindparam("open"))),
    )
    row = tx.cursor.one(prepared, {"addr": address[:64], "open": str(_C.OPEN)})
    return int(row[0]) if row else 0


def open_count(tx: Tx, session_id: uuid.UUID) -> int:
    c = _connections.c
    prepared = tx.db.prepare(
        "connections_open_count",
        lambda: select(func.count()).where(and_(c.session_id == bindparam("sid"), c.state == bindparam("open"))),
    )
    row = tx.cursor.one(prepared, {"sid": session_id, "open": str(_C.OPEN)})
    return int(row[0]) if row else 0


def session_of(tx: Tx, connection_id: uuid.UUID) -> uuid.UUID | None:
    c = _connections.c
    prepared = tx.db.prepare(
        "connection_session", lambda: select(c.session_id).where(c.id == bindparam("cid")), (c.session_id.type,)
    )
    row = tx.cursor.one(prepared, {"cid": connection_id})
    return row[0] if row else None


def session_state(tx: Tx, session_id: uuid.UUID) -> str | None:
    """The session's state, its row locked for the rest of the transaction on PostgreSQL.

    Deciding connect/disconnect/drop from an unlocked read would let two tabs
    opening at once both see ``session_active`` and both fire ``connect``.
    """
    s = _sessions.c
    lock = tx.db.is_postgresql
    prepared = tx.db.prepare(
        ("session_state_only", lock),
        lambda: (
            select(s.state).where(s.id == bindparam("sid")).with_for_update(key_share=True)
            if lock
            else select(s.state).where(s.id == bindparam("sid"))
        ),
    )
    row = tx.cursor.one(prepared, {"sid": session_id})
    return str(row[0]) if row else None


def cascade_event(
    connection_event: str, session_state: str, open_left: int, definition: Definition = SESSION
) -> str | None:
    """The session event a connection event drives now, if any.

    Which connection event drives which session event is the lifecycle's
    :data:`~sessionflow.lifecycle.connection.SESSION_EVENT`; whether the session
    takes it is its machine's decision for the server: ``connect`` for the first
    live connection, ``disconnect`` or ``drop`` once none is left open.
    """
    event = SESSION_EVENT.get(connection_event)
    if event is None or event not in engine(definition).allowed_events(session_state, Actor.SERVER):
        return None
    if event != SessionEvent.CONNECT and open_left > 0:
        return None
    return event


def cascade(tx: Tx, applied: Applied) -> None:
    """In-transaction hook: keep the session's connect/disconnect/drop in step with its connections."""
    if applied.machine != CONNECTIONS.name or applied.event not in SESSION_EVENT:
        return
    session_id = session_of(tx, applied.instance_id)
    state = session_state(tx, session_id) if session_id is not None else None
    if session_id is None or state is None:
        return
    open_left = open_count(tx, session_id) if SESSION_EVENT[applied.event] != SessionEvent.CONNECT else 0
    event = cascade_event(applied.event, state, open_left)
    if event is not None:
        tx.fire(SESSIONS.name, session_id, event, actor=Actor.SERVER)
