"""Argument checks run before any I/O, so bad input is refused with nothing read or written."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sessionflow.lifecycle import Actor
from sessionflow.persistence.bindings import BINDINGS, Binding
from sessionflow.persistence.errors import InvalidInput, InvalidInstanceId

MAX_KEY = 128
MAX_REQUEST_ID = 64


def binding(machine: object) -> Binding:
    found = BINDINGS.get(machine) if isinstance(machine, str) else None
    if found is None:
        raise InvalidInput("machine", f"{machine!r} is not one of {', '.join(BINDINGS)}")
    return found


def instance_id(value: object) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str) and len(value) <= 64:
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise InvalidInstanceId(value)


def actor(value: object) -> Actor:
    if isinstance(value, Actor):
        return value
    if isinstance(value, str) and value in Actor.__members__.values():
        return Actor(value)
    raise InvalidInput("actor", f"{value!r} is not one of {', '.join(Actor)}")


def facts(value: object) -> Mapping[str, bool]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, bool) for k, v in value.items()):
        raise InvalidInput("facts", "must map guard names to booleans")
    return value


def version(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput("expected version", f"{value!r} is not a non-negative integer")
    return value


def idempotency_key(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_KEY or not all("!" <= ch <= "~" for ch in value):
        raise InvalidInput("idempotency key", f"must be 1 to {MAX_KEY} printable ASCII characters without spaces")
    return value


def request_id(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_REQUEST_ID or not value.isprintable():
        raise InvalidInput("request id", f"must be 1 to {MAX_REQUEST_ID} printable characters")
    return value


def detail(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise InvalidInput("detail", "must be a JSON object")
    return value
