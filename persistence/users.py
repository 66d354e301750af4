"""Users at rest. Passwords arrive already hashed (argon2id, in :mod:`sessionflow.api.passwords`).

Users from an external identity provider are keyed by ``(oidc_issuer,
oidc_subject)`` and have no password hash, so a password login never matches them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, insert, select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from sessionflow.persistence.database import Database
from sessionflow.persistence.errors import InvalidInput, PersistenceError, StoreUnavailable
from sessionflow.persistence.models import User, table
from sessionflow.persistence.tokens import UserRecord

MAX_USERNAME = 150


class UserExists(PersistenceError):
    code = "user_exists"

    def __init__(self, username: str) -> None:
        self.username = username
        super().__init__(f"a user named {username!r} already exists")


@dataclass(frozen=True, slots=True)
class NewUser:
    id: uuid.UUID
    username: str
    is_admin: bool


def validate_username(username: object) -> str:
    if not isinstance(username, str) or not 1 <= len(username) <= MAX_USERNAME:
        raise InvalidInput("username", f"must be 1 to {MAX_USERNAME} characters")
    if not username.isprintable() or any(ch.isspace() for ch in username):
        raise InvalidInput("username", "must not contain spaces or control characters")
    return username


def create_user(db: Database, username: str, password_hash: str | None, *, is_admin: bool, now: datetime) -> NewUser:
    """Insert a user; :class:`UserExists` if the name is taken."""
    name = validate_username(username)
    user_id = uuid.uuid4()
    try:
        _insert(db, id=user_id, username=name, password_hash=password_hash, is_admin=is_admin, created_at=now)
    except IntegrityError:
        raise UserExists(name) from None
    return NewUser(user_id, name, is_admin)


def _insert(db: Database, **values: object) -> None:
    """Insert one enabled user; IntegrityError when a unique column (name, OIDC identity) is taken."""
    with db.engine.begin() as connection:
        connection.execute(insert(User).values(enabled=True, **values))


def user_by_oidc_subject(db: Database, issuer: str, subject: str) -> UserRecord | None:
    """The user the identity provider ``issuer`` calls ``subject``, if one was created."""
    u = table(User).c
    query = select(u.id, u.username, u.password_hash, u.is_admin, u.enabled).where(
        and_(u.oidc_issuer == issuer, u.oidc_subject == subject)
    )
    try:
        with db.engine.connect() as connection:
            row = connection.execute(query).first()
    except (OperationalError, InterfaceError) as exc:
        raise StoreUnavailable(f"cannot read users: {type(exc).__name__}") from None
    return UserRecord(*row) if row is not None else None


def find_or_create_oidc_user(
    db: Database, issuer: str, subject: str, usernames: Iterable[str], *, now: datetime
) -> tuple[UserRecord, bool]:
    """The user for ``(issuer, subject)`` and whether it was created just now.

    A new user takes the first free name of ``usernames``, is no admin and has no
    password hash. Two first logins racing for the same subject both end with
    the one row the unique ``(oidc_issuer, oidc_subject)`` constraint lets in.
    :class:`UserExists` if every name offered is taken.
    """
    existing = user_by_oidc_subject(db, issuer, subject)
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
            existing = user_by_oidc_subject(db, issuer, subject)
            if existing is not None:  # a concurrent first login of the same subject won
                return existing, False
            continue  # the name is taken: try the next one
        except (OperationalError, InterfaceError) as exc:
            raise StoreUnavailable(f"cannot create a user: {type(exc).__name__}") from None
        return UserRecord(user_id, name, None, False, True), True
    raise UserExists(name)
