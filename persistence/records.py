"""Plain records the persistence layer returns; no SQLAlchemy objects escape it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sessionflow.lifecycle import Actor


@dataclass(frozen=True, slots=True)
class Applied:
    """An event that was applied (or, with ``repeated``, the first outcome of an idempotent repeat)."""

    machine: str
    instance_id: uuid.UUID
    event: str
    from_state: str
    to_state: str
    version: int  # also the history row's seq
    actor: Actor
    at: datetime
    repeated: bool = False
    fired_first: tuple[Applied, ...] = ()  # timers that came due and fired before this event

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "version": self.version,
            "actor": str(self.actor),
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_json(cls, machine: str, instance_id: uuid.UUID, data: Mapping[str, Any], *, repeated: bool) -> Applied:
        return cls(
            machine=machine,
            instance_id=instance_id,
            event=data["event"],
            from_state=data["from_state"],
            to_state=data["to_state"],
            version=int(data["version"]),
            actor=Actor(data["actor"]),
            at=datetime.fromisoformat(data["at"]),
            repeated=repeated,
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An instance as stored: its state, version, timers and the rest of its row."""

    machine: str
    id: uuid.UUID
    state: str
    version: int
    timers: Mapping[str, datetime | None]
    row: Mapping[str, Any] = field(default_factory=dict)

    @property
    def next_due(self) -> datetime | None:
        due = [value for value in self.timers.values() if value is not None]
        return min(due) if due else None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    machine: str
    instance_id: uuid.UUID
    seq: int
    event: str
    from_state: str
    to_state: str
    actor: str
    request_id: str | None
    at: datetime
    detail: Mapping[str, Any] | None
