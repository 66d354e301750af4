"""Registered services: the other services of the platform that may introspect tokens.

A service authenticates with its name and a secret of 256 random bits
(``sfs_...``), shown once when it is registered; only the secret's SHA-256
is stored, as for refresh tokens (a slow password hash buys nothing for a
random secret and would cost every introspection).
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from sessionflow.persistence.credentials import new_token, token_hash
from sessionflow.persistence.database import Database
from sessionflow.persistence.errors import InvalidInput, ServiceExists
from sessionflow.persistence.models import RegisteredService, table

SECRET_PREFIX = "sfs_"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_services = table(RegisteredService)


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    name: str
    created_at: datetime


def validate_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInput("name", "a service name is 1-64 lowercase letters, digits, '.', '_' or '-'")
    return name


def register(db: Database, name: str, *, now: datetime) -> str:
    """Register ``name``; its secret, which is not stored and cannot be shown again."""
    secret = new_token(SECRET_PREFIX)
    try:
        with db.engine.begin() as connection:
            connection.execute(
                insert(_services).values(name=validate_name(name), secret_hash=token_hash(secret), created_at=now)
            )
    except IntegrityError:
        raise ServiceExists(name) from None
    return secret


def remove(db: Database, name: str) -> bool:
    with db.engine.begin() as connection:
        return bool(connection.execute(delete(_services).where(_services.c.name == name)).rowcount)


def listing(db: Database) -> list[ServiceRecord]:
    with db.engine.connect() as connection:
        rows = connection.execute(select(_services.c.name, _services.c.created_at).order_by(_services.c.name))
        return [ServiceRecord(*row) for row in rows]


def secret_hash(db: Database, name: str) -> str | None:
    with db.engine.connect() as connection:
        found = connection.execute(select(_services.c.secret_hash).where(_services.c.name == name)).scalar()
    return found if isinstance(found, str) else None


def secret_matches(stored_hash: str, secret: str) -> bool:
    return hmac.compare_digest(stored_hash, token_hash(secret))
