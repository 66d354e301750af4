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
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Unpack

from sessionflow.lifecycle import Clock, EventRefused, SystemClock
from sessionflow.persistence import validate
from sessionflow.persistence.bindings import BINDINGS, Binding, history_insert
from sessionflow.persistence.connections import cascade
from sessionflow.persistence.credentials import end_with_session
from sessionflow.persistence.database import Database
from sessionflow.persistence.errors import InstanceNotFound
from sessionflow.persistence.records import Applied, Snapshot
from sessionflow.persistence.tx import FireArgs, FireOptions, Tx

log = logging.getLogger("sessionflow.service")

Durations = Mapping[str, Mapping[str, timedelta]]  # machine name -> timer name -> duration


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
        # Connections drive their session (first open: connect; last gone: disconnect or drop),
        # and a session that ends takes its credentials with it, whatever ended it.
        self.hooks.in_transaction.extend((cascade, end_with_session))
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
        self, machine: str, instance_id: object, event: object, *, actor: object, **options: Unpack[FireOptions]
    ) -> Applied:
        """Apply ``event`` in a transaction of its own; see :meth:`Tx.fire`.

        The arguments are checked before the transaction begins, so bad input
        never takes the write lock.
        """
        args = FireArgs.parse(machine, instance_id, event, actor=actor, **options)
        with self.transaction() as tx:
            return tx.apply(args)

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

    def sweep(self, *, limit: int = 200, skip: Collection[str] = ()) -> list[Applied]:
        """Fire every timer that is due, in batches, except on the machines named in ``skip``; safe to run
        from many processes at once."""
        fired: list[Applied] = []
        for binding in BINDINGS.values():
            if binding.name in skip:
                continue
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

    __slots__ = (
        "cas",
        "cas_writes_history",
        "engine",
        "history",
        "load",
        "row",
        "terminal",
        "timer_columns",
        "timer_names",
    )

    def __init__(self, db: Database, binding: Binding) -> None:
        lock = db.is_postgresql  # SELECT ... FOR UPDATE: concurrent writers queue instead of conflicting
        types = [column.type for column in binding.state_columns()]
        self.engine = binding.engine
        self.load = db.prepare(("load", binding.name, lock), lambda: binding.select_state(lock=lock), types)
        self.row = db.prepare(
            ("row", binding.name, lock),
            lambda: binding.select_row(lock=lock),
            [column.type for column in binding.table.c],
        )
        # The compare-and-set (not ending, ending: into a terminal state it moves on Binding.advanced_on_end);
        # on PostgreSQL each writes the transition's history row too, one statement instead of two.
        self.cas_writes_history = db.is_postgresql
        cas = binding.compare_and_set_with_history if self.cas_writes_history else binding.compare_and_set
        self.cas = (
            db.prepare(("cas", binding.name, False), cas),
            db.prepare(("cas", binding.name, True), lambda: cas(ending=True)),
        )
        self.terminal = binding.definition.terminal
        self.history = db.prepare("history", history_insert)
        self.timer_names = binding.timer_names
        self.timer_columns = {name: f"{name}_due_at" for name in self.timer_names}


class Transaction:
    """:meth:`TransitionService.transaction`: a :class:`Tx` on a write transaction; after-commit hooks after it.

    A plain context manager, like :class:`~sessionflow.persistence.database.WriteTransaction`, for the same reason.
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


def _read(db: Database, binding: Binding, iid: uuid.UUID) -> Snapshot:
    types = [column.type for column in binding.table.c]
    # The key _Compiled.row uses unlocked (SQLite): one prepared statement for the same SELECT.
    prepared = db.prepare(("row", binding.name, False), lambda: binding.select_row(lock=False), types)
    with db.read() as cursor:
        found = cursor.one(prepared, {"id": iid})
    if found is None:
        raise InstanceNotFound(binding.name, iid)
    return binding.snapshot(iid, found)
