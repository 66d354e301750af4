"""Users at rest. Passwords arrive already hashed (argon2id, in :mod:`sessionflow.api.passwords`).

Users from an external identity provider are keyed by ``(oidc_issuer,
oidc_subject)`` and have no password hash, so a password login never matches
them. Reads outside a transaction use an ordinary connection (password checks
are slow and must not hold a write transaction); the few reads and writes that
must commit with an event take a :class:`~sessionflow.persistence.tx.Tx`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from sessionflow.persistence.database import Database
from sessionflow.persistence.errors import InvalidInput, StoreUnavailable, UserExists
from sessionflow.persistence.models import Session, User, table
from sessionflow.persistence.sessions import not_ended

if TYPE_CHECKING:
    from sessionflow.persistence.tx import Tx

MAX_USERNAME = 150

_users = table(User)
_COLUMNS = (_users.c.id, _users.c.username, _users.c.password_hash, _users.c.is_admin, _users.c.enabled)


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: uuid.UUID
    username: str
    password_hash: str | None
    is_admin: bool
    enabled: bool


@dataclass(frozen=True, slots=True)
class UserListing:
    """A user as ``sessionflow users list`` shows it: no password hash."""

    id: uuid.UUID
    username: str
    is_admin: bool
    enabled: bool
    identity_provider: str | None
    created_at: datetime
    open_sessions: int


def validate_username(username: object) -> str:
    if not isinstance(username, str) or not 1 <= len(username) <= MAX_USERNAME:
        raise InvalidInput("username", f"must be 1 to {MAX_USERNAME} characters")
    if not username.isprintable() or any(ch.isspace() for ch in username):
        raise InvalidInput("username", "must not contain spaces or control characters")
    return username


# -- reads outside a write transaction ------------------------------------------------------


def by_name(db: Database, username: str) -> UserRecord | None:
    """The user called ``username``."""
    return _first(db, select(*_COLUMNS).where(_users.c.username == username))


def by_id(db: Database, user_id: uuid.UUID) -> UserRecord | None:
    return _first(db, select(*_COLUMNS).where(_users.c.id == user_id))


def by_oidc_subject(db: Database, issuer: str, subject: str) -> UserRecord | None:
    """The user the identity provider ``issuer`` calls ``subject``, if one was created."""
    u = _users.c
    return _first(db, select(*_COLUMNS).where(and_(u.oidc_issuer == issuer, u.oidc_subject == subject)))


def _first(db: Database, query: Any) -> UserRecord | None:
    try:
        with db.engine.connect() as connection:
            row = connection.execute(query).first()
    except (OperationalError, InterfaceError) as exc:
        raise StoreUnavailable(f"cannot read users: {type(exc).__name__}") from None
    return UserRecord(*row) if row is not None else None


def listing(db: Database) -> list[UserListing]:
    """Every user, by name, with how many of their sessions have not ended."""
    u, s = _users.c, table(Session).c
    open_sessions = select(func.count()).where(and_(s.user_id == u.id, not_ended(s.state))).scalar_subquery()
    query = select(u.id, u.username, u.is_admin, u.enabled, u.oidc_issuer, u.created_at, open_sessions).order_by(
        u.username
    )
    with db.engine.connect() as connection:
        return [UserListing(*row) for row in connection.execute(query)]


# -- inside a write transaction -------------------------------------------------------------


def current(tx: Tx, user_id: uuid.UUID) -> UserRecord | None:
    """The user as this transaction sees it (an admin may have disabled them a moment ago)."""
    prepared = tx.db.prepare(
        "user_by_id", lambda: select(*_COLUMNS).where(_users.c.id == bindparam("v")), [c.type for c in _COLUMNS]
    )
    row = tx.cursor.one(prepared, {"v": user_id})
    return UserRecord(*row) if row is not None else None


def set_enabled(tx: Tx, user_id: uuid.UUID, enabled: bool) -> bool:
    """Enable or disable the user; False if there is no such user."""
    c = _users.c
    prepared = tx.db.prepare(
        "user_enable",
        lambda: update(_users).where(c.id == bindparam("uid")).values(enabled=bindparam("enabled")).returning(c.id),
    )
    return tx.cursor.one(prepared, {"uid": user_id, "enabled": enabled}) is not None


# -- creation -------------------------------------------------------------------------------


def create_user(db: Database, username: str, password_hash: str | None, *, is_admin: bool, now: datetime) -> UserRecord:
    """Insert a user; :class:`UserExists` if the name is taken."""
    name = validate_username(username)
    user_id = uuid.uuid4()
    try:
        _insert(db, id=user_id, username=name, password_hash=password_hash, is_admin=is_admin, created_at=now)
    except IntegrityError:
        raise UserExists(name) from None
    return UserRecord(user_id, name, password_hash, is_admin, True)


def _insert(db: Database, **values: object) -> None:
    """Insert one enabled user; IntegrityError when a unique column (name, OIDC identity) is taken."""
    with db.engine.begin() as connection:
        connection.execute(insert(User).values(enabled=True, **values))


def find_or_create_oidc_user(
    db: Database, issuer: str, subject: str, usernames: Iterable[str], *, now: datetime
) -> tuple[UserRecord, bool]:
    """The user for ``(issuer, subject)`` and whether it was created just now.

    A new user takes the first free name of ``usernames``, is no admin and has no
    password hash. Two first logins racing for the same subject both end with
    the one row the unique ``(oidc_issuer, oidc_subject)`` constraint lets in.
    :class:`UserExists` if every name offered is taken.
    """
    existing = by_oidc_subject(db, issuer, subject)
    if existing is not None:
        return existing, False
    name = ""
    for candidate in usernames:
        name = validate_username(candidate)
        user_id = uuid.uuid4()
        try:
            _insert(
                db,
                id=user_id,
                username=name,
                password_hash=None,
                is_admin=False,
                oidc_issuer=issuer,
                oidc_subject=subject,
                created_at=now,
            )
        except IntegrityError:
            existing = by_oidc_subject(db, issuer, subject)
            if existing is not None:  # a concurrent first login of the same subject won
                return existing, False
            continue  # the name is taken: try the next one
        except (OperationalError, InterfaceError) as exc:
            raise StoreUnavailable(f"cannot create a user: {type(exc).__name__}") from None
        return UserRecord(user_id, name, None, False, True), True
    raise UserExists(name)
