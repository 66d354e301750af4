"""Operations inside one write transaction: firing events and timers, touching, creating, reading due work.

:class:`Tx` is what :meth:`sessionflow.persistence.service.TransitionService.transaction`
yields; the service's one-call methods use it too. Firing an event here is
the sequence the service module describes: load (and on PostgreSQL lock) the
row, look up the idempotency key, fire timers already due, check If-Match,
step the machine, compare-and-set, append history, record the key. Nothing
here commits: the transaction around it does, or rolls everything back.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from sqlalchemy import bindparam

from sessionflow.lifecycle import Actor, EventRefused, Outcome, StepContext
from sessionflow.persistence import validate
from sessionflow.persistence.bindings import IDEMPOTENCY, Binding, idempotency_insert, idempotency_select
from sessionflow.persistence.database import Cursor
from sessionflow.persistence.errors import IdempotencyKeyReused, InstanceNotFound, VersionConflict
from sessionflow.persistence.records import Applied, Snapshot

if TYPE_CHECKING:
    from sessionflow.persistence.service import TransitionService

log = logging.getLogger("sessionflow.service")

_Loaded = tuple[str, int, dict[str, datetime | None]]  # state, version, timers
_MAX_TIMER_FIRES = 32  # far above any real chain (expire -> end); a bound against a broken definition


class FireOptions(TypedDict, total=False):
    """The optional arguments of ``fire``, as callers pass them (checked by :meth:`FireArgs.parse`).

    ``facts`` decide guards; ``expected_version`` is an If-Match (stale: :class:`VersionConflict`);
    a repeated ``idempotency_key`` returns the first outcome; ``request_id`` and ``detail`` go to history.
    """

    facts: object
    expected_version: object
    idempotency_key: object
    request_id: object
    detail: object


@dataclass(slots=True)
class FireArgs:
    """The arguments of ``fire``, validated (in this order) before anything is read or written."""

    binding: Binding
    iid: uuid.UUID
    event: str
    actor: Actor
    facts: Mapping[str, bool]
    expected: int | None
    key: str | None
    request_id: str | None
    detail: dict[str, Any] | None

    @classmethod
    def parse(
        cls, machine: object, instance_id: object, event: object, *, actor: object, **options: Unpack[FireOptions]
    ) -> FireArgs:
        binding = validate.binding(machine)
        iid = validate.instance_id(instance_id)
        return cls(
            binding,
            iid,
            binding.engine.require_event(event),
            validate.actor(actor),
            validate.facts(options.get("facts")),
            validate.version(options.get("expected_version")),
            validate.idempotency_key(options.get("idempotency_key")),
            validate.request_id(options.get("request_id")),
            validate.detail(options.get("detail")),
        )


class Tx:
    """Operations inside one write transaction. Obtain from :meth:`TransitionService.transaction`."""

    def __init__(self, service: TransitionService, cursor: Cursor, now: datetime) -> None:
        self.service = service
        self.cursor = cursor
        self.db = service.db
        self.now = now
        self.applied: list[Applied] = []  # every event this transaction applied, in order
        # What this transaction last read or wrote of each instance's state, version and timers. It holds
        # for the rest of the transaction: the row is locked (PostgreSQL) or the database is (SQLite), and
        # only this class writes those columns. So an event after an authentication does not read again.
        self._known: dict[tuple[str, uuid.UUID], _Loaded] = {}

    # -- creation ----------------------------------------------------------------------

    def create(self, binding: Binding, iid: uuid.UUID, values: Mapping[str, Any]) -> Snapshot:
        """Insert a new instance in the machine's initial state with its initial timers armed."""
        engine = binding.engine
        timers = engine.initial_timers(self.now, self.service.durations_for(binding))
        row: dict[str, Any] = {
            **values,
            "id": iid,
            "state": str(binding.definition.initial),
            "version": 0,
            "created_at": self.now,
            "updated_at": self.now,
            "next_due_at": _earliest(timers),
            **{f"{name}_due_at": due for name, due in timers.items()},
        }
        columns = tuple(sorted(row))
        table = binding.table
        prepared = self.db.prepare(
            ("insert", binding.name, columns), lambda: table.insert().values({c: bindparam(c) for c in columns})
        )
        self.cursor.execute(prepared, row)
        self._known[binding.name, iid] = (row["state"], 0, timers)
        return Snapshot(binding.name, iid, row["state"], 0, timers, row)

    # -- reading -----------------------------------------------------------------------

    def snapshot(self, binding: Binding, iid: uuid.UUID) -> Snapshot:
        """The instance's whole row, locked as an event's load locks it, its due timers fired first.

        What a request checks before it fires an event on the same instance (its credentials, say): the
        event then starts from this read instead of reading the row again.
        """
        compiled = self.service._compiled(binding)
        found = self.cursor.one(compiled.row, {"id": iid})
        if found is None:
            raise InstanceNotFound(binding.name, iid)
        snapshot = binding.snapshot(iid, found)
        timers = dict(snapshot.timers)
        if self._fire_due_loaded(binding, iid, snapshot.state, snapshot.version, timers, request_id=None):
            # Rare (a timer came due since the last write): the firing may have changed more of the row.
            found = self.cursor.one(compiled.row, {"id": iid})
            assert found is not None  # locked, and timers never delete it
            snapshot = binding.snapshot(iid, found)
            timers = dict(snapshot.timers)
        self._known[binding.name, iid] = (snapshot.state, snapshot.version, timers)
        return snapshot

    # -- events ------------------------------------------------------------------------

    def fire(
        self, machine: str, instance_id: object, event: object, *, actor: object, **options: Unpack[FireOptions]
    ) -> Applied:
        """Apply ``event`` to the instance inside this transaction.

        Due timers fire first. Raises :class:`~sessionflow.lifecycle.EventRefused` (with
        the instance id) when the machine refuses, :class:`VersionConflict`
        when ``expected_version`` is stale or a concurrent writer won, and
        returns the first outcome again for a repeated ``idempotency_key``.
        """
        return self.apply(FireArgs.parse(machine, instance_id, event, actor=actor, **options))

    def apply(self, args: FireArgs) -> Applied:
        """:meth:`fire` with arguments already checked."""
        binding, iid = args.binding, args.iid
        # Load (and on PostgreSQL lock) the row before looking up the key, so that
        # concurrent repeats queue on the row and the later ones find the key.
        state, version, timers = self._load(binding, iid)
        if args.key is not None:
            repeated = self._repeat(binding, iid, args.key, args.event)
            if repeated is not None:
                return repeated
        fired = self._fire_due_loaded(binding, iid, state, version, timers, request_id=args.request_id)
        if fired:
            state, version, timers = fired[-1].to_state, fired[-1].version, self._last_timers
        if args.expected is not None and args.expected != version:
            raise VersionConflict(binding.name, iid, args.expected, version, stale=True)
        context = StepContext(args.actor, self.now, args.facts, timers, self.service.durations_for(binding))
        try:
            outcome = self.service._compiled(binding).engine.step(state, args.event, context)
        except EventRefused as refused:
            refused.for_instance(iid)
            for hook in self.service.hooks.on_refused:
                try:
                    hook(refused)
                except Exception:
                    log.exception("refusal hook %r failed", hook)
            raise refused from None
        applied = self._apply(
            binding, iid, version, outcome, at=self.now, request_id=args.request_id, detail=args.detail
        )
        if args.key is not None:
            self.cursor.execute(
                self.db.prepare("idem_insert", idempotency_insert),
                {
                    "machine": binding.name,
                    "instance_id": iid,
                    "key": args.key,
                    "event": args.event,
                    "outcome": applied.to_json(),
                    "created_at": self.now,
                },
            )
        if fired:
            return Applied(**{**_fields(applied), "fired_first": tuple(fired)})
        return applied

    def fire_due(self, binding: Binding, iid: uuid.UUID) -> list[Applied]:
        """Fire every timer of the instance that is due now, earliest first."""
        state, version, timers = self._load(binding, iid)
        return self._fire_due_loaded(binding, iid, state, version, timers, request_id=None)

    def touch(
        self, binding: Binding, iid: uuid.UUID, *, at: datetime | None = None, since: datetime | None = None
    ) -> bool:
        """Activity on ``iid`` from ``since`` until ``at`` (both default: now) restarts its timers from ``at``;
        False if a timer due before ``since`` ended it first.

        Activity written late (heartbeats kept while the store was unavailable) counts from when it
        happened: a connection that answered all along is not dropped for the delay of the write.
        """
        at = self.now if at is None else min(at, self.now)
        since = at if since is None else min(since, at)
        state, version, timers = self._load(binding, iid)
        if self._fire_due_loaded(binding, iid, state, version, timers, request_id=None, until=since):
            return False
        touched = binding.engine.touched_timers(state, timers, at, self.service.durations_for(binding))
        self._known.pop((binding.name, iid), None)  # the timers below may or may not be written
        values: dict[str, Any] = {"id": iid, "expected": version, "next_due_at": _earliest(touched)}
        values.update({f"{name}_due_at": due for name, due in touched.items()})
        return self.cursor.one(self.db.prepare(("touch", binding.name), binding.touch), values) is not None

    def due_ids(self, binding: Binding, limit: int) -> list[uuid.UUID]:
        skip_locked = self.db.is_postgresql
        prepared = self.db.prepare(
            ("due", binding.name, limit, skip_locked),
            lambda: binding.due(limit=limit, skip_locked=skip_locked),
            (binding.table.c.id.type,),
        )
        return [row[0] for row in self.cursor.all(prepared, {"now": self.now})]

    # -- internals ---------------------------------------------------------------------

    _last_timers: dict[str, datetime | None]

    def _load(self, binding: Binding, iid: uuid.UUID, *, fresh: bool = False) -> _Loaded:
        """State, version and timers: as this transaction last saw them, else (or ``fresh``) read and locked."""
        known = None if fresh else self._known.get((binding.name, iid))
        if known is not None:
            return known[0], known[1], dict(known[2])
        compiled = self.service._compiled(binding)
        row = self.cursor.one(compiled.load, {"id": iid})
        if row is None:
            raise InstanceNotFound(binding.name, iid)
        loaded = row[0], row[1], dict(zip(compiled.timer_names, row[2:], strict=True))
        self._known[binding.name, iid] = loaded
        return loaded[0], loaded[1], dict(loaded[2])

    def _fire_due_loaded(
        self,
        binding: Binding,
        iid: uuid.UUID,
        state: str,
        version: int,
        timers: dict[str, datetime | None],
        *,
        request_id: str | None,
        until: datetime | None = None,
    ) -> list[Applied]:
        """Fire the timers due by ``until`` (default: now)."""
        compiled = self.service._compiled(binding)
        engine, durations = compiled.engine, self.service.durations_for(binding)
        until = self.now if until is None else until
        fired: list[Applied] = []
        while (due := engine.next_due(state, timers)) is not None and due[1] <= until:
            if len(fired) >= _MAX_TIMER_FIRES:
                raise RuntimeError(f"{binding.name} {iid}: timers keep firing; the definition is broken")
            timer, due_at = due
            context = StepContext(Actor.TIMER, due_at, timers=timers, durations=durations)
            outcome = engine.step(state, timer.event, context)
            detail = {"timer": timer.name, "fired_at": self.now.isoformat()}
            applied = self._apply(binding, iid, version, outcome, at=due_at, request_id=request_id, detail=detail)
            fired.append(applied)
            state, version, timers = outcome.dest, applied.version, outcome.timers
        self._last_timers = timers
        return fired

    def _apply(
        self,
        binding: Binding,
        iid: uuid.UUID,
        version: int,
        outcome: Outcome,
        *,
        at: datetime,
        request_id: str | None,
        detail: dict[str, Any] | None,
    ) -> Applied:
        compiled = self.service._compiled(binding)
        new_version = version + 1
        values: dict[str, Any] = {
            "id": iid,
            "expected": version,
            "state": outcome.dest,
            "version": new_version,
            "updated_at": self.now,
            "next_due_at": _earliest(outcome.timers),
        }
        columns = compiled.timer_columns
        for name, due in outcome.timers.items():
            values[columns[name]] = due
        history = {
            "machine": binding.name,
            "instance_id": iid,
            "seq": new_version,
            "event": outcome.event,
            "from_state": outcome.source,
            "to_state": outcome.dest,
            "actor": str(outcome.actor),
            "request_id": request_id,
            "at": at,
            "detail": detail,
        }
        cas = compiled.cas[outcome.dest in compiled.terminal]
        if compiled.cas_writes_history:  # PostgreSQL: the history row goes with the set, if it happens
            done = self.cursor.one(cas, values | history) is not None
        elif done := self.cursor.one(cas, values) is not None:
            self.cursor.execute(compiled.history, history)
        if not done:
            _, actual, _ = self._load(binding, iid, fresh=True)
            raise VersionConflict(binding.name, iid, version, actual, stale=False)
        self._known[binding.name, iid] = (outcome.dest, new_version, dict(outcome.timers))
        applied = Applied(
            binding.name, iid, outcome.event, outcome.source, outcome.dest, new_version, outcome.actor, at
        )
        self.applied.append(applied)
        for hook in self.service.hooks.in_transaction:
            hook(self, applied)
        return applied

    def _repeat(self, binding: Binding, iid: uuid.UUID, key: str, event: str) -> Applied | None:
        result_types = (IDEMPOTENCY.c.event.type, IDEMPOTENCY.c.outcome.type)
        prepared = self.db.prepare("idem_select", idempotency_select, result_types)
        row = self.cursor.one(prepared, {"machine": binding.name, "instance_id": iid, "key": key})
        if row is None:
            return None
        if row[0] != event:
            raise IdempotencyKeyReused(key, row[0], event)
        return Applied.from_json(binding.name, iid, row[1], repeated=True)


def _earliest(timers: Mapping[str, datetime | None]) -> datetime | None:
    return min((value for value in timers.values() if value is not None), default=None)


def _fields(applied: Applied) -> dict[str, Any]:
    return {name: getattr(applied, name) for name in Applied.__slots__}
