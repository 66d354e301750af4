"""Errors raised by the persistence layer.

::

    PersistenceError                root of this package
    ├── InvalidInput                a malformed argument (id, key, type); nothing was read or written
    │   └── InvalidInstanceId       an id that is not a UUID
    ├── InstanceNotFound            no such session or connection
    ├── VersionConflict             compare-and-set lost: a stale If-Match or a concurrent writer
    ├── IdempotencyKeyReused        the key was first used for a different event
    ├── UserExists                  the username (or identity) is taken
    ├── ServiceExists               a registered service of that name exists
    ├── StoreUnavailable            the database cannot be reached or stayed locked
    └── WouldWait                   a write told not to wait found the write lock taken; nothing written

Refusals by the machine itself are :class:`sessionflow.lifecycle.EventRefused` errors,
re-raised with the instance id filled in.
"""

from __future__ import annotations


class PersistenceError(Exception):
    """Root of every error the persistence layer raises."""

    code = "persistence_error"


class InvalidInput(PersistenceError, ValueError):
    """An argument is malformed or of the wrong type; nothing was read or written."""

    code = "invalid_input"

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"invalid {field}: {reason}")


class InvalidInstanceId(InvalidInput):
    """The id is not a UUID."""

    code = "invalid_instance_id"

    def __init__(self, value: object) -> None:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        super().__init__("instance id", f"{shown} is not a UUID")


class InstanceNotFound(PersistenceError, LookupError):
    """No instance of this machine has this id."""

    code = "not_found"

    def __init__(self, machine: str, instance_id: object) -> None:
        self.machine = machine
        self.instance_id = instance_id
        super().__init__(f"no {machine} {instance_id}")


class VersionConflict(PersistenceError):
    """The instance is not at the version the writer expected.

    ``stale`` is true when the caller named a version (``If-Match``) that is no
    longer current; false when a concurrent writer won the compare-and-set.
    """

    code = "version_conflict"

    def __init__(self, machine: str, instance_id: object, expected: int, actual: int | None, *, stale: bool) -> None:
        self.machine = machine
        self.instance_id = instance_id
        self.expected = expected
        self.actual = actual
        self.stale = stale
        what = "is at version" if stale else "was changed concurrently; now at version"
        super().__init__(f"{machine} {instance_id} {what} {actual}, not {expected}")


class IdempotencyKeyReused(PersistenceError):
    """An idempotency key already recorded the outcome of a different event."""

    code = "idempotency_key_reused"

    def __init__(self, key: str, first_event: str, event: str) -> None:
        self.first_event = first_event
        self.event = event
        super().__init__(f"idempotency key was first used for {first_event!r}, not {event!r}")


class UserExists(PersistenceError):
    """A user of that name exists already."""

    code = "user_exists"

    def __init__(self, username: str) -> None:
        self.username = username
        super().__init__(f"a user named {username!r} already exists")


class ServiceExists(PersistenceError):
    """A registered service of that name exists already."""

    code = "service_exists"

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"a service named {name!r} is already registered")


class StoreUnavailable(PersistenceError):
    """The database could not be reached, or stayed locked past the busy timeout."""

    code = "store_unavailable"


class WouldWait(PersistenceError):
    """A write transaction begun inside :meth:`Database.without_waiting` found SQLite's write lock, or this
    process's write turn, taken: it wrote nothing, and the caller runs the work again where it may wait."""

    code = "would_wait"
