"""Refused events, kept: a hook of the transition service queues them, a task writes them in batches.

A refusal rolls back the transaction it happened in, and on SQLite that
transaction still holds the write lock while the hook runs, so the hook only
queues (bounded: a flood of refusals costs memory up to :data:`MAX_QUEUED`,
then they are counted as dropped) and :meth:`RefusalLog.run` writes what
queued every :data:`FLUSH_EVERY` seconds, in one transaction.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

from sessionflow.api.observability import REQUEST_ID
from sessionflow.api.threads import to_thread
from sessionflow.lifecycle import Clock, EventRefused
from sessionflow.persistence import Database, inspection

log = logging.getLogger("sessionflow.inspector")

FLUSH_EVERY = 0.25  # seconds
MAX_QUEUED = 10_000


class RefusalLog:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self.queued: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_QUEUED)
        self.dropped = 0

    def __call__(self, refused: EventRefused) -> None:
        """The service's ``on_refused`` hook: queue, never write (any thread)."""
        if refused.instance_id is None:
            return
        if len(self.queued) == MAX_QUEUED:
            self.dropped += 1
        request_id = REQUEST_ID.get()
        self.queued.append(
            {
                "machine": refused.machine,
                "instance_id": refused.instance_id,
                "event": refused.event,
                "state": refused.state,
                "code": refused.code,
                "reason": refused.reason[:200],
                "request_id": None if request_id == "-" else request_id,
                "at": self.clock.now(),
            }
        )

    def flush(self) -> int:
        """Write everything queued; the number written."""
        rows: list[dict[str, Any]] = []
        while self.queued:
            try:
                rows.append(self.queued.popleft())
            except IndexError:  # emptied by another flush meanwhile
                break
        inspection.record_refusals(self.db, rows)
        return len(rows)

    async def run(self) -> None:
        """Flush periodically until cancelled, and once more then; a failed write is logged and retried later."""
        try:
            while True:
                await asyncio.sleep(FLUSH_EVERY)
                await self._flush_logged()
        finally:
            await self._flush_logged()

    async def _flush_logged(self) -> None:
        if not self.queued:
            return
        try:
            await to_thread(self.flush)
        except Exception as exc:  # noqa: BLE001 - the store may be down; these refusals are lost, said once
            log.warning("could not record refused events (%s)", type(exc).__name__)
        if self.dropped:
            log.warning("%d refused events were not recorded: more queued than %d", self.dropped, MAX_QUEUED)
            self.dropped = 0
