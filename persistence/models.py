"""The schema: SQLAlchemy 2 typed models for the whole contract.

State columns are VARCHARs with a named CHECK constraint whose values come
from the machine definitions, so a state the machine does not know cannot be
stored. Timer columns are named ``<timer>_due_at`` after the definitions'
timers; ``next_due_at`` is the earliest of them, indexed for the sweeper.
Only :mod:`sessionflow.persistence.service` writes ``state``, ``version`` and the timers.
No Python-side column defaults: every insert names its values (the service
runs precompiled statements), and the server defaults cover the rest.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    Uuid,
    false,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sessionflow.lifecycle import CONNECTION, SESSION, Actor, Definition
from sessionflow.persistence.types import UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

HASH = String(64)  # hex SHA-256 of a token; the token itself is never stored
NAME = String(32)  # state, event and machine names


def table(model: type[Base]) -> Table:
    """The model's table, typed as one (SQLAlchemy types ``__table__`` as a plain FromClause)."""
    found = model.__table__
    assert isinstance(found, Table)
    return found


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), uuid.UUID: Uuid(), dict[str, Any]: JSON(none_as_null=True)}


def state_type(definition: Definition) -> Enum:
    """A VARCHAR whose CHECK constraint admits exactly the definition's states."""
    return Enum(
        *(str(state) for state in definition.states),
        name="state",
        native_enum=False,
        create_constraint=True,
        length=32,
    )


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, server_default=false())
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=true())
    oidc_issuer: Mapped[str | None] = mapped_column(String(255))
    oidc_subject: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_subject"),)


class RegisteredService(Base):
    """Another service allowed to introspect tokens and receive revocations; only its secret's hash is kept."""

    __tablename__ = "services"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)  # the client id of HTTP Basic
    secret_hash: Mapped[str] = mapped_column(HASH)
    created_at: Mapped[datetime]


class Session(Base):
    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(state_type(SESSION))
    version: Mapped[int] = mapped_column(Integer)
    token_generation: Mapped[int] = mapped_column(Integer, server_default="0")
    anonymous_token_hash: Mapped[str | None] = mapped_column(HASH)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    login_window_due_at: Mapped[datetime | None]
    idle_due_at: Mapped[datetime | None]
    grace_due_at: Mapped[datetime | None]
    refresh_window_due_at: Mapped[datetime | None]
    lifetime_due_at: Mapped[datetime | None]
    next_due_at: Mapped[datetime | None] = mapped_column(index=True)

    __table_args__ = (
        Index("ix_sessions_user_id_state", "user_id", "state"),
        Index("ix_sessions_state", "state"),
    )


class Connection(Base):
    __tablename__ = "connections"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(state_type(CONNECTION))
    version: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str] = mapped_column(String(64))
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    last_heartbeat_at: Mapped[datetime | None]
    close_code: Mapped[int | None] = mapped_column(Integer)
    close_reason: Mapped[str | None] = mapped_column(String(123))  # a close frame's reason fits 123 bytes
    handshake_due_at: Mapped[datetime | None]
    heartbeat_due_at: Mapped[datetime | None]
    next_due_at: Mapped[datetime | None] = mapped_column(index=True)

    __table_args__ = (
        Index("ix_connections_worker_id_state", "worker_id", "state"),
        Index("ix_connections_remote_addr_state", "remote_addr", "state"),  # the per-address cap
    )


class TransitionRecord(Base):
    """Append-only history; per instance, ``seq`` is the version the transition produced."""

    __tablename__ = "transitions"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    machine: Mapped[str] = mapped_column(NAME)
    instance_id: Mapped[uuid.UUID]
    seq: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(NAME)
    from_state: Mapped[str] = mapped_column(NAME)
    to_state: Mapped[str] = mapped_column(NAME)
    actor: Mapped[str] = mapped_column(
        Enum(*(str(actor) for actor in Actor), name="actor", native_enum=False, create_constraint=True, length=16)
    )
    request_id: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime]
    detail: Mapped[dict[str, Any] | None]

    __table_args__ = (UniqueConstraint("machine", "instance_id", "seq"),)


class Refusal(Base):
    """Events a machine refused, kept for the inspector: what was asked, in which state, and why (``code``).

    Written after the refused transaction rolled back (nothing else of it is
    stored), in batches; ``id`` orders them across every instance, as
    ``transitions.id`` orders the history.
    """

    __tablename__ = "refusals"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    machine: Mapped[str] = mapped_column(NAME)
    instance_id: Mapped[uuid.UUID] = mapped_column(index=True)
    event: Mapped[str] = mapped_column(NAME)
    state: Mapped[str] = mapped_column(NAME)
    code: Mapped[str] = mapped_column(NAME)
    reason: Mapped[str] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime]


class RefreshToken(Base):
    """Refresh tokens at rest: only the hash. ``rotated_at`` set means it was used and replaced."""

    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(HASH, primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    generation: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    rotated_at: Mapped[datetime | None]


class WsTicket(Base):
    """Single-use WebSocket tickets, stored hashed; ``used_at`` set means consumed."""

    __tablename__ = "ws_tickets"

    ticket_hash: Mapped[str] = mapped_column(HASH, primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None]
    # When the access token the ticket was obtained with expires: the connection's credential ends then.
    credential_expires_at: Mapped[datetime | None]
    # The session's token generation when the ticket was issued: a refresh since supersedes the ticket too.
    token_generation: Mapped[int | None]


class IdempotencyKey(Base):
    """The first outcome of an event sent with an ``Idempotency-Key``, replayed on repeats."""

    __tablename__ = "idempotency_keys"

    machine: Mapped[str] = mapped_column(NAME, primary_key=True)
    instance_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    event: Mapped[str] = mapped_column(NAME)
    outcome: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(index=True)


class RateLimit(Base):
    """Fixed-window counters shared by every worker (login attempts per user and address)."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime]
    count: Mapped[int] = mapped_column(Integer)
