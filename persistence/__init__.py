"""The store: sessions, connections and their history in SQL, changed only by the transition service.

This is the surface the API uses. The modules below it (``database``,
``service``, ``tx``, ...) are the implementation; ``connections``,
``credentials``, ``queries``, ``ratelimits``, ``services``, ``sessions``, ``users`` and
``migrate`` are imported as modules, because their functions read best with
their module's name in front (``credentials.issue_ticket(tx, ...)``).
"""

from __future__ import annotations

from sessionflow.persistence import (
    connections,
    credentials,
    migrate,
    queries,
    ratelimits,
    services,
    sessions,
    users,
)
from sessionflow.persistence.bindings import BINDINGS, CONNECTIONS, SESSIONS, Binding
from sessionflow.persistence.database import Database
from sessionflow.persistence.errors import (
    IdempotencyKeyReused,
    InstanceNotFound,
    InvalidInput,
    InvalidInstanceId,
    PersistenceError,
    ServiceExists,
    StoreUnavailable,
    UserExists,
    VersionConflict,
    WouldWait,
)
from sessionflow.persistence.records import Applied, HistoryEntry, Snapshot
from sessionflow.persistence.rowcache import RowCache
from sessionflow.persistence.service import Hooks, TransitionService
from sessionflow.persistence.tx import FireOptions, Tx
from sessionflow.persistence.users import UserRecord

__all__ = [
    "BINDINGS",
    "CONNECTIONS",
    "SESSIONS",
    "Applied",
    "Binding",
    "Database",
    "FireOptions",
    "HistoryEntry",
    "Hooks",
    "IdempotencyKeyReused",
    "InstanceNotFound",
    "InvalidInput",
    "InvalidInstanceId",
    "PersistenceError",
    "RowCache",
    "ServiceExists",
    "Snapshot",
    "StoreUnavailable",
    "TransitionService",
    "Tx",
    "UserExists",
    "UserRecord",
    "VersionConflict",
    "WouldWait",
    "connections",
    "credentials",
    "migrate",
    "queries",
    "ratelimits",
    "services",
    "sessions",
    "users",
]
