"""Credentials at rest: refresh tokens, WebSocket tickets, anonymous tokens and token generations.

Every opaque credential is 256 random bits, shown to its holder once and
stored only as its SHA-256; a database leak yields nothing usable. All
functions run inside a :class:`sessionflow.persistence.tx.Tx`, so issuing or
rotating credentials commits or rolls back together with the event that
caused it. A session that reaches a terminal state takes its credentials
with it, whatever ended it (:func:`end_with_session`).
"""

from __future__ import annotations

import enum
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Update, and_, bindparam, insert, select, update

from sessionflow.lifecycle import SESSION
from sessionflow.persistence.models import RefreshToken, Session, WsTicket, table
from sessionflow.persistence.records import Applied

if TYPE_CHECKING:
    from sessionflow.persistence.tx import Tx

REFRESH_PREFIX = "sfr_"
TICKET_PREFIX = "sft_"

_sessions = table(Session)
_refresh = table(RefreshToken)
_tickets = table(WsTicket)


def new_token(prefix: str) -> str:
    """A fresh opaque credential: a recognisable prefix and 256 random bits."""
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class RefreshStatus(enum.StrEnum):
    CURRENT = "current"  # rotated now: this caller gets the next generation
    # Rotated moments ago and the current token's immediate predecessor: tabs racing, or a retry after a
    # lost response. The caller gets credentials of the current generation; nothing is revoked.
    GRACE = "grace"
    REUSED = "reused"  # rotated before: whoever presents it holds a stolen copy, or is the victim
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Redeemed:
    """What spending a ticket found: its status, its session, and when the credential behind it expires."""

    status: TicketStatus
    session_id: uuid.UUID | None
    credential_expires_at: datetime | None = None  # None for tickets issued before migration 0002
    token_generation: int | None = None  # None for tickets issued before migration 0003


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


def use_refresh(tx: Tx, token: str, *, reuse_window: timedelta) -> RefreshLookup:
    """Spend a refresh token: what it was, and for :attr:`RefreshStatus.CURRENT` retire it (single use).

    A current token retires every unspent token of its session with it (the
    siblings a grace answer may have issued), so the next generation starts
    with one lineage. A spent token is :attr:`RefreshStatus.GRACE` when it was
    rotated less than ``reuse_window`` ago and its generation is the one right
    before the session's: the immediate predecessor, never an older one.
    """
    lookup = peek_refresh(tx, token, reuse_window=reuse_window)
    if lookup.status is RefreshStatus.CURRENT and lookup.session_id is not None:
        retire_refresh_tokens(tx, lookup.session_id)
    return lookup


def peek_refresh(tx: Tx, token: str, *, reuse_window: timedelta) -> RefreshLookup:
    """What :func:`use_refresh` would find, spending nothing; the token's row stays locked (PostgreSQL)."""
    c = _refresh.c
    prepared = tx.db.prepare(
        "refresh_lookup",
        lambda: (
            select(c.session_id, c.expires_at, c.rotated_at, c.generation)
            .where(c.token_hash == bindparam("h"))
            .with_for_update()
        ),
        (c.session_id.type, c.expires_at.type, c.rotated_at.type, c.generation.type),
    )
    row = tx.cursor.one(prepared, {"h": token_hash(token)})
    if row is None:
        return RefreshLookup(RefreshStatus.UNKNOWN)
    session_id, expires_at, rotated_at, generation = row
    if rotated_at is not None:
        recent = tx.now - rotated_at < reuse_window
        if recent and generation == generation_of(tx, session_id) - 1:
            return RefreshLookup(RefreshStatus.GRACE, session_id)
        return RefreshLookup(RefreshStatus.REUSED, session_id)
    if expires_at <= tx.now:
        return RefreshLookup(RefreshStatus.EXPIRED, session_id)
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


def generation_of(tx: Tx, session_id: uuid.UUID) -> int:
    """The session's current token generation (what its valid access and refresh tokens carry)."""
    c = _sessions.c
    prepared = tx.db.prepare(
        "generation_read",
        lambda: select(c.token_generation).where(c.id == bindparam("sid")),
        (c.token_generation.type,),
    )
    row = tx.cursor.one(prepared, {"sid": session_id})
    if row is None:
        raise LookupError(f"no session {session_id}")
    return int(row[0])


def _generation_bump() -> Update:
    c = _sessions.c
    return update(_sessions).where(c.id == bindparam("sid")).values(token_generation=c.token_generation + 1)


def next_generation(tx: Tx, session_id: uuid.UUID) -> int:
    """Advance the session's token generation; every access token of an older generation stops working."""
    prepared = tx.db.prepare("generation_bump", lambda: _generation_bump().returning(_sessions.c.token_generation))
    row = tx.cursor.one(prepared, {"sid": session_id})
    if row is None:
        raise LookupError(f"no session {session_id}")
    return int(row[0])


def anonymous_token_matches(tx: Tx, session_id: uuid.UUID, token: str) -> bool:
    c = _sessions.c
    prepared = tx.db.prepare(
        "anonymous_lookup",
        lambda: select(c.anonymous_token_hash).where(c.id == bindparam("sid")),
        (c.anonymous_token_hash.type,),
    )
    row = tx.cursor.one(prepared, {"sid": session_id})
    return row is not None and row[0] is not None and secrets.compare_digest(row[0], token_hash(token))


def issue_ticket(
    tx: Tx, session_id: uuid.UUID, ttl: timedelta, *, credential_expires_at: datetime, token_generation: int
) -> str:
    """A single-use ticket for ``session_id``, standing for an access token of ``token_generation`` expiring at
    ``credential_expires_at``."""
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
            "token_generation": token_generation,
        },
    )
    return ticket


_TICKET_COLUMNS = (
    "ticket_hash",
    "session_id",
    "issued_at",
    "expires_at",
    "used_at",
    "credential_expires_at",
    "token_generation",
)


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
            .returning(c.session_id, c.expires_at, c.credential_expires_at, c.token_generation)
        ),
        (c.session_id.type, c.expires_at.type, c.credential_expires_at.type, c.token_generation.type),
    )
    row = tx.cursor.one(spend, {"h": token_hash(ticket), "now": tx.now})
    if row is not None:
        session_id, expires_at, credential_expires_at, generation = row
        status = TicketStatus.VALID if expires_at > tx.now else TicketStatus.EXPIRED
        return Redeemed(status, session_id, credential_expires_at, generation)
    seen = tx.db.prepare(
        "ticket_seen", lambda: select(c.session_id).where(c.ticket_hash == bindparam("h")), (c.session_id.type,)
    )
    found = tx.cursor.one(seen, {"h": token_hash(ticket)})
    return Redeemed(TicketStatus.USED, found[0]) if found is not None else Redeemed(TicketStatus.UNKNOWN, None)


def end_with_session(tx: Tx, applied: Applied) -> None:
    """In-transaction hook: a session entering a terminal state takes every credential with it.

    Whatever ended it (logout, revocation, reuse detection, a timer), its
    refresh tokens are spent here, and its token generation has moved on in
    the compare-and-set that ended it (``Binding.advanced_on_end``), so no
    access token, refresh token or ticket issued before works again.
    """
    if applied.machine == SESSION.name and applied.to_state in SESSION.terminal:
        retire_refresh_tokens(tx, applied.instance_id)
