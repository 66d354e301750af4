"""The transition service: the one writer of every state column.

Applying an event is one database transaction: read the instance (locked on
PostgreSQL), fire any timers that already came due, ask the machine, then
``UPDATE ... WHERE id = ? AND version = ?`` (compare-and-set), append the
history row whose ``seq`` is the new version, and record the idempotency key.
If anything fails, nothing is written. Two concurrent events on one instance:
exactly one wins; the other sees the new state or a :class:`VersionConflict`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select

from lifecycle import Actor, Clock, EventRefused, Outcome, StepContext, SystemClock
from persistence import validate
from persistence.bindings import (
    BINDINGS,
    IDEMPOTENCY,
    Binding,
    history_insert,
    idempotency_insert,
    idempotency_select,
)
from persistence.connections import cascade
from persistence.database import Cursor, Database
from persistence.errors import IdempotencyKeyReused, InstanceNotFound, VersionConflict
from persistence.records import Applied, Snapshot

log = logging.getLogger("sessionflow.service")

Durations = Mapping[str, Mapping[str, timedelta]]  # machine name -> timer name -> duration
_MAX_TIMER_FIRES = 32  # far above any real chain (expire -> end); a bound against a broken definition


@dataclass
class Hooks:
    """Observers of the service, registered by the layers above (metrics, WebSocket fan-out).

    ``in_transaction`` hooks run inside the transaction of each applied event
    (their writes commit or roll back with it: a PostgreSQL NOTIFY, say);
    ``after_commit`` hooks receive everything a transaction applied, once it
    committed; ``on_refused`` hooks see every refusal. An exception in an
    ``after_commit`` or ``on_refused`` hook is logged and never undoes or
    hides the outcome.
    """

    in_transaction: list[Callable[[Tx, Applied], None]] = field(default_factory=list)
    after_commit: list[Callable[[list[Applied]], None]] = field(default_factory=list)
    on_refused: list[Callable[[EventRefused], None]] = field(default_factory=list)


class TransitionService:
    """Applies events atomically and fires timers; built once per process."""

    def __init__(self, db: Database, *, clock: Clock | None = None, durations: Durations | None = None) -> None:
        self.db = db
        self.clock = clock or SystemClock()
        self.durations: Durations = durations or {}
        self.hooks = Hooks()
        # Connections drive their session (first open: connect; last gone: disconnect or drop).
        self.hooks.in_transaction.append(cascade)
        self._compiled_machines: dict[Binding, _Compiled] = {}

    def transaction(self) -> Transaction:
        """A unit of work: several events and side rows that commit or roll back together."""
        return Transaction(self)

    # -- one-call conveniences ---------------------------------------------------------

    def create(self, machine: str, *, values: Mapping[str, Any] | None = None, instance_id: object = None) -> Snapshot:
        binding = validate.binding(machine)
        iid = validate.instance_id(instance_id) if instance_id is not None else uuid.uuid4()
        with self.transaction() as tx:
            return tx.create(binding, iid, values or {})

    def fire(
        self,
        machine: str,
        instance_id: object,
        event: object,
        *,
        actor: object,
        facts: object = None,
        expected_version: object = None,
        idempotency_key: object = None,
        request_id: object = None,
        detail: object = None,
    ) -> Applied:
        """Apply ``event``; see :meth:`Tx.fire`. Validates everything before touching the database."""
        args = _FireArgs.parse(
            machine,
            instance_id,
            event,
            actor=actor,
            facts=facts,
            expected_version=expected_version,
            idempotency_key=idempotency_key,
            request_id=request_id,
            detail=detail,
        )
        with self.transaction() as tx:
            return tx._fire(args)

    def get(self, machine: str, instance_id: object, *, fire_due: bool = True) -> Snapshot:
        """The instance as stored; timers that came due fire first (lazily) unless ``fire_due`` is false."""
        binding = validate.binding(machine)
        iid = validate.instance_id(instance_id)
        snapshot = _read(self.db, binding, iid)
        due = snapshot.next_due
        if fire_due and due is not None and due <= self.clock.now():
            with self.transaction() as tx:
                tx.fire_due(binding, iid)
            snapshot = _read(self.db, binding, iid)
        return snapshot

    def touch(self, machine: str, instance_id: object) -> bool:
        """Record activity: restart activity timers (idle, heartbeat). False if the instance moved meanwhile."""
        binding = validate.binding(machine)
        iid = validate.instance_id(instance_id)
        with self.transaction() as tx:
            return tx.touch(binding, iid)

    def sweep(self, *, limit: int = 200) -> list[Applied]:
        """Fire every timer that is due, in batches; safe to run from many processes at once."""
        fired: list[Applied] = []
        for binding in BINDINGS.values():
            while True:
                with self.transaction() as tx:
                    ids = tx.due_ids(binding, limit)
                    for iid in ids:
                        fired.extend(tx.fire_due(binding, iid))
                if len(ids) < limit:
                    break
        return fired

    def durations_for(self, binding: Binding) -> Mapping[str, timedelta]:
        return self.durations.get(binding.name, {})

    def _compiled(self, binding: Binding) -> _Compiled:
        """What every event on ``binding`` needs, built on first use."""
        found = self._compiled_machines.get(binding)
        if found is None:
            found = self._compiled_machines[binding] = _Compiled(self.db, binding)
        return found


class _Compiled:
    """One machine's engine, compiled statements and column names, looked up once.

    Rebuilding these per event (``state_columns()``, ``timer_names``, the
    ``<timer>_due_at`` names, the statement cache keys) took about 5 us, as
    much as binding and converting the SELECT's values (see bench/engine.py
    for the transition as a whole).
    """

    __slots__ = ("compare_and_set", "engine", "history", "load", "timer_columns", "timer_names")

    def __init__(self, db: Database, binding: Binding) -> None:
        lock = db.is_postgresql  # SELECT ... FOR UPDATE: concurrent writers queue instead of conflicting
        types = [column.type for column in binding.state_columns()]
        self.engine = binding.engine
        self.load = db.prepare(("load", binding.name, lock), lambda: binding.select_state(lock=lock), types)
        self.compare_and_set = db.prepare(("cas", binding.name), binding.compare_and_set)
        self.history = db.prepare("history", history_insert)
        self.timer_names = binding.timer_names
        self.timer_columns = {name: f"{name}_due_at" for name in self.timer_names}


@dataclass(slots=True)
class _FireArgs:
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
        cls,
        machine: object,
        instance_id: object,
        event: object,
        *,
        actor: object,
        facts: object,
        expected_version: object,
        idempotency_key: object,
        request_id: object,
        detail: object,
    ) -> _FireArgs:
        binding = validate.binding(machine)
        iid = validate.instance_id(instance_id)
        return cls(
            binding,
            iid,
            binding.engine.require_event(event),
            validate.actor(actor),
            validate.facts(facts),
            validate.version(expected_version),
            validate.idempotency_key(idempotency_key),
            validate.request_id(request_id),
            validate.detail(detail),
        )


class Transaction:
    """:meth:`TransitionService.transaction`: a :class:`Tx` on a write transaction; after-commit hooks after it.

    A plain context manager, like :class:`~persistence.database.WriteTransaction`, for the same reason.
    """

    __slots__ = ("_service", "_tx", "_write")

    def __init__(self, service: TransitionService) -> None:
        self._service = service
        self._write = service.db.write()
        self._tx: Tx | None = None

    def __enter__(self) -> Tx:
        cursor = self._write.__enter__()
        try:
            self._tx = Tx(self._service, cursor, self._service.clock.now())
        except BaseException as exc:
            self._write.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self._tx

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self._write.__exit__(exc_type, exc, tb)
        applied = self._tx.applied if self._tx is not None and exc is None else None
        if applied:
            for hook in self._service.hooks.after_commit:
                try:
                    hook(applied)
                except Exception:
                    log.exception("after-commit hook %r failed", hook)


class Tx:
    """Operations inside one write transaction. Obtain from :meth:`TransitionService.transaction`."""

    def __init__(self, service: TransitionService, cursor: Cursor, now: datetime) -> None:
        self.service = service
        self.cursor = cursor
        self.db = service.db
        self.now = now
        self.applied: list[Applied] = []  # every event this transaction applied, in order

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
        return Snapshot(binding.name, iid, row["state"], 0, timers, row)

    # -- events ------------------------------------------------------------------------

    def fire(
        self,
        machine: str,
        instance_id: object,
        event: object,
        *,
        actor: object,
        facts: object = None,
        expected_version: object = None,
        idempotency_key: object = None,
        request_id: object = None,
        detail: object = None,
    ) -> Applied:
        """Apply ``event`` to the instance inside this transaction.

        Due timers fire first. Raises :class:`~lifecycle.EventRefused` (with
        the instance id) when the machine refuses, :class:`VersionConflict`
        when ``expected_version`` is stale or a concurrent writer won, and
        returns the first outcome again for a repeated ``idempotency_key``.
        """
        args = _FireArgs.parse(
            machine,
            instance_id,
            event,
            actor=actor,
            facts=facts,
            expected_version=expected_version,
            idempotency_key=idempotency_key,
            request_id=request_id,
            detail=detail,
        )
        return self._fire(args)

    def _fire(self, args: _FireArgs) -> Applied:
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

    def touch(self, binding: Binding, iid: uuid.UUID) -> bool:
        state, version, timers = self._load(binding, iid)
        if self._fire_due_loaded(binding, iid, state, version, timers, request_id=None):
            return False
        touched = binding.engine.touched_timers(state, timers, self.now, self.service.durations_for(binding))
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

    def _load(self, binding: Binding, iid: uuid.UUID) -> tuple[str, int, dict[str, datetime | None]]:
        compiled = self.service._compiled(binding)
        row = self.cursor.one(compiled.load, {"id": iid})
        if row is None:
            raise InstanceNotFound(binding.name, iid)
        return row[0], row[1], dict(zip(compiled.timer_names, row[2:], strict=True))

    def _fire_due_loaded(
        self,
        binding: Binding,
        iid: uuid.UUID,
        state: str,
        version: int,
        timers: dict[str, datetime | None],
        *,
        request_id: str | None,
    ) -> list[Applied]:
        compiled = self.service._compiled(binding)
        engine, durations = compiled.engine, self.service.durations_for(binding)
        fired: list[Applied] = []
        while (due := engine.next_due(state, timers)) is not None and due[1] <= self.now:
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
        if self.cursor.one(compiled.compare_and_set, values) is None:
            _, actual, _ = self._load(binding, iid)
            raise VersionConflict(binding.name, iid, version, actual, stale=False)
        self.cursor.execute(
            compiled.history,
            {
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
            },
        )
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


def _read(db: Database, binding: Binding, iid: uuid.UUID) -> Snapshot:
    columns = list(binding.table.c)
    prepared = db.prepare(
        ("read", binding.name),
        lambda: select(*columns).where(binding.table.c.id == bindparam("id")),
        [column.type for column in columns],
    )
    with db.read() as cursor:
        found = cursor.one(prepared, {"id": iid})
    if found is None:
        raise InstanceNotFound(binding.name, iid)
    row = dict(zip((column.name for column in columns), found, strict=True))
    timers = {name: row[f"{name}_due_at"] for name in binding.timer_names}
    return Snapshot(binding.name, iid, row["state"], row["version"], timers, row)
