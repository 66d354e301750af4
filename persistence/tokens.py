"""Credentials at rest: refresh tokens, WebSocket tickets, anonymous tokens, token generations, rate limits.

Every opaque credential is 256 random bits, shown to its holder once and
stored only as its SHA-256; a database leak yields nothing usable. All
functions run inside a :class:`sessionflow.persistence.tx.Tx`, so issuing or
rotating credentials commits or rolls back together with the event that
caused it.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, and_, bindparam, case, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from sessionflow.persistence.models import RateLimit, RefreshToken, Session, User, WsTicket, table

if TYPE_CHECKING:
    from sessionflow.persistence.tx import Tx

REFRESH_PREFIX = "sfr_"
TICKET_PREFIX = "sft_"
ANONYMOUS_PREFIX = "sfa_"
_LIVE_STATES = ("authenticated", "session_active", "ws_connected", "ws_disconnected", "session_expired")


def _is_open(column: Any) -> Any:
    # One bound literal per state: precompiled statements cannot expand an IN list at run time.
    return column.in_([literal(state, String()) for state in _LIVE_STATES])


_sessions = table(Session)
_refresh = table(RefreshToken)
_tickets = table(WsTicket)
_limits = table(RateLimit)
_users = table(User)


def new_token(prefix: str) -> str:
    """A fresh opaque credential: a recognisable prefix and 256 random bits."""
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class RefreshStatus(enum.StrEnum):
    CURRENT = "current"
    REUSED = "reused"  # already rotated: whoever presents it holds a stolen copy, or is the victim
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Redeemed:
    """What spending a ticket found: its status, its session, and when the credential behind it expires."""

    status: TicketStatus
    session_id: uuid.UUID | None
    credential_expires_at: datetime | None = None  # None for tickets issued before migration 0002


@dataclass(frozen=True, slots=True)
class RefreshLookup:
    status: RefreshStatus
    session_id: uuid.UUID | None = None


def issue_refresh(tx: Tx, session_id: uuid.UUID, generation: int, ttl: timedelta) -> tuple[str, datetime]:
    token = new_token(REFRESH_PREFIX)
    expires_at = tx.now + ttl
    prepared = tx.db.prepare(
        "refresh_insert", lambda: insert(_refresh).values({c: bindparam(c) for c in _REFRESH_COLUMNS})
    )
    tx.cursor.execute(
        prepared,
        {
            "token_hash": token_hash(token),
            "session_id": session_id,
            "generation": generation,
            "issued_at": tx.now,
            "expires_at": expires_at,
            "rotated_at": None,
        },
    )
    return token, expires_at


_REFRESH_COLUMNS = ("token_hash", "session_id", "generation", "issued_at", "expires_at", "rotated_at")


def use_refresh(tx: Tx, token: str) -> RefreshLookup:
    """Look the refresh token up and, if it is current, mark it rotated (single use)."""
    c = _refresh.c
    prepared = tx.db.prepare(
        "refresh_lookup",
        lambda: (
            select(c.session_id, c.expires_at, c.rotated_at).where(c.token_hash == bindparam("h")).with_for_update()
        ),
        (c.session_id.type, c.expires_at.type, c.rotated_at.type),
    )
    row = tx.cursor.one(prepared, {"h": token_hash(token)})
    if row is None:
        return RefreshLookup(RefreshStatus.UNKNOWN)
    session_id, expires_at, rotated_at = row
    if rotated_at is not None:
        return RefreshLookup(RefreshStatus.REUSED, session_id)
    if expires_at <= tx.now:
        return RefreshLookup(RefreshStatus.EXPIRED, session_id)
    rotate = tx.db.prepare(
        "refresh_rotate",
        lambda: update(_refresh).where(c.token_hash == bindparam("h")).values(rotated_at=bindparam("now")),
    )
    tx.cursor.execute(rotate, {"h": token_hash(token), "now": tx.now})
    return RefreshLookup(RefreshStatus.CURRENT, session_id)


def retire_refresh_tokens(tx: Tx, session_id: uuid.UUID) -> None:
    """Mark every unrotated refresh token of the session used (logout, revoke, end)."""
    c = _refresh.c
    prepared = tx.db.prepare(
        "refresh_retire",
        lambda: (
            update(_refresh)
            .where(and_(c.session_id == bindparam("sid"), c.rotated_at.is_(None)))
            .values(rotated_at=bindparam("now"))
        ),
    )
    tx.cursor.execute(prepared, {"sid": session_id, "now": tx.now})


def next_generation(tx: Tx, session_id: uuid.UUID) -> int:
    """Advance the session's token generation; every access token of an older generation stops working."""
    c = _sessions.c
    prepared = tx.db.prepare(
        "generation_bump",
        lambda: (
            update(_sessions)
            .where(c.id == bindparam("sid"))
            .values(token_generation=c.token_generation + 1)
            .returning(c.token_generation)
        ),
    )
    row = tx.cursor.one(prepared, {"sid": session_id})
    if row is None:
        raise LookupError(f"no session {session_id}")
    return int(row[0])


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


def anonymous_token_matches(tx: Tx, session_id: uuid.UUID, token: str) -> bool:
    c = _sessions.c
    prepared = tx.db.prepare(
        "anonymous_lookup",
        lambda: select(c.anonymous_token_hash).where(c.id == bindparam("sid")),
        (c.anonymous_token_hash.type,),
    )
    row = tx.cursor.one(prepared, {"sid": session_id})
    return row is not None and row[0] is not None and secrets.compare_digest(row[0], token_hash(token))


def live_sessions_of(tx: Tx, user_id: uuid.UUID) -> int:
    """How many sessions of the user are neither anonymous nor ended (for the per-user cap)."""
    c = _sessions.c
    prepared = tx.db.prepare(
        "live_sessions",
        lambda: select(func.count()).where(and_(c.user_id == bindparam("uid"), _is_open(c.state))),
    )
    row = tx.cursor.one(prepared, {"uid": user_id})
    return int(row[0]) if row else 0


def issue_ticket(tx: Tx, session_id: uuid.UUID, ttl: timedelta, *, credential_expires_at: datetime) -> str:
    """A single-use ticket for ``session_id``, standing for an access token expiring at ``credential_expires_at``."""
    ticket = new_token(TICKET_PREFIX)
    prepared = tx.db.prepare(
        "ticket_insert", lambda: insert(_tickets).values({c: bindparam(c) for c in _TICKET_COLUMNS})
    )
    tx.cursor.execute(
        prepared,
        {
            "ticket_hash": token_hash(ticket),
            "session_id": session_id,
            "issued_at": tx.now,
            "expires_at": tx.now + ttl,
            "used_at": None,
            "credential_expires_at": credential_expires_at,
        },
    )
    return ticket


_TICKET_COLUMNS = ("ticket_hash", "session_id", "issued_at", "expires_at", "used_at", "credential_expires_at")


class TicketStatus(enum.StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    USED = "used"
    UNKNOWN = "unknown"


def consume_ticket(tx: Tx, ticket: str) -> Redeemed:
    """Spend a ticket atomically: of two concurrent uses, exactly one sees VALID."""
    c = _tickets.c
    spend = tx.db.prepare(
        "ticket_spend",
        lambda: (
            update(_tickets)
            .where(and_(c.ticket_hash == bindparam("h"), c.used_at.is_(None)))
            .values(used_at=bindparam("now"))
            .returning(c.session_id, c.expires_at, c.credential_expires_at)
        ),
        (c.session_id.type, c.expires_at.type, c.credential_expires_at.type),
    )
    row = tx.cursor.one(spend, {"h": token_hash(ticket), "now": tx.now})
    if row is not None:
        session_id, expires_at, credential_expires_at = row
        status = TicketStatus.VALID if expires_at > tx.now else TicketStatus.EXPIRED
        return Redeemed(status, session_id, credential_expires_at)
    seen = tx.db.prepare(
        "ticket_seen", lambda: select(c.session_id).where(c.ticket_hash == bindparam("h")), (c.session_id.type,)
    )
    found = tx.cursor.one(seen, {"h": token_hash(ticket)})
    return Redeemed(TicketStatus.USED, found[0]) if found is not None else Redeemed(TicketStatus.UNKNOWN, None)


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


def clear_attempts(tx: Tx, key: str) -> None:
    c = _limits.c
    prepared = tx.db.prepare("rate_limit_clear", lambda: _limits.delete().where(c.key == bindparam("key")))
    tx.cursor.execute(prepared, {"key": key})


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: uuid.UUID
    username: str
    password_hash: str | None
    is_admin: bool
    enabled: bool


def user_by_id(tx: Tx, user_id: uuid.UUID) -> UserRecord | None:
    return _user(tx, "user_by_id", _users.c.id, user_id)


def _user(tx: Tx, key: str, column: Any, value: object) -> UserRecord | None:
    c = _users.c
    columns = (c.id, c.username, c.password_hash, c.is_admin, c.enabled)
    prepared = tx.db.prepare(
        key, lambda: select(*columns).where(column == bindparam("v")), [col.type for col in columns]
    )
    row = tx.cursor.one(prepared, {"v": value})
    return UserRecord(*row) if row is not None else None


def session_owner(tx: Tx, session_id: uuid.UUID) -> uuid.UUID | None:
    c = _sessions.c
    prepared = tx.db.prepare(
        "session_owner", lambda: select(c.user_id).where(c.id == bindparam("sid")), (c.user_id.type,)
    )
    row = tx.cursor.one(prepared, {"sid": session_id})
    return row[0] if row is not None else None


def set_user_enabled(tx: Tx, user_id: uuid.UUID, enabled: bool) -> bool:
    c = _users.c
    prepared = tx.db.prepare(
        "user_enable",
        lambda: update(_users).where(c.id == bindparam("uid")).values(enabled=bindparam("enabled")).returning(c.id),
    )
    return tx.cursor.one(prepared, {"uid": user_id, "enabled": enabled}) is not None


def open_sessions_of(tx: Tx, user_id: uuid.UUID) -> list[uuid.UUID]:
    """Sessions of the user that have not ended (anonymous ones never have a user)."""
    c = _sessions.c
    prepared = tx.db.prepare(
        "open_sessions",
        lambda: select(c.id).where(and_(c.user_id == bindparam("uid"), _is_open(c.state))).order_by(c.id),
        (c.id.type,),
    )
    return [row[0] for row in tx.cursor.all(prepared, {"uid": user_id})]
