"""Users at rest. Passwords arrive already hashed (argon2id, in :mod:`api.passwords`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from persistence.database import Database
from persistence.errors import InvalidInput, PersistenceError
from persistence.models import User

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
        with db.engine.begin() as connection:
            connection.execute(
                insert(User.__table__).values(
                    id=user_id, username=name, password_hash=password_hash, is_admin=is_admin, enabled=True, created_at=now
                )
            )
    except IntegrityError:
        raise UserExists(name) from None
    return NewUser(user_id, name, is_admin)
