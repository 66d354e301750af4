"""Pongs, written to the store in batches.

A pong proves its connection alive and counts as activity for its session's
idle timer. Written one transaction and one thread hop per pong, heartbeats
were most of a worker's load with many connections (``bench/ws.py``). Here a
connection only notes its pong; every half heartbeat interval the worker
writes all pongs noted since, a chunk of connections per transaction, and
touches each session at most once per ``session_touch_every``.

The delay stays well inside the store's heartbeat timer: a pong at ``t`` is
recorded by ``t + interval / 2``, the next by ``t + 1.5 * interval``, and the
timer runs three intervals from each record. A connection the store no longer
holds open (a sweeper dropped it) is told through its ``on_ended`` callback.
When the store is unavailable the pongs wait for the next flush, and each counts from when it
arrived: an outage longer than the heartbeat timer does not drop connections that kept answering.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime

from sessionflow.api.threads import to_thread
from sessionflow.persistence import SESSIONS, StoreUnavailable, TransitionService, connections

log = logging.getLogger("sessionflow.ws")

CHUNK = 200  # connections per write transaction: keeps SQLite's write lock short for other writers
SESSION_TOUCH_EVERY = 60.0  # pongs push the session's idle timeout back at most this often (or a quarter of it)


@dataclass(frozen=True, slots=True)
class Beat:
    session_id: uuid.UUID
    on_ended: Callable[[], Awaitable[None]]
    since: datetime  # when the first pong not yet written arrived
    at: datetime  # when the last one arrived: the write, however late, counts from then


class Heartbeats:
    """This worker's pongs since the last flush, keyed by connection id."""

    def __init__(self, service: TransitionService, *, every: float, session_touch_every: float) -> None:
        self.service = service
        self.every = every
        self.session_touch_every = session_touch_every
        self._pending: dict[uuid.UUID, Beat] = {}
        self._session_touched: dict[uuid.UUID, float] = {}  # session id -> monotonic time of the last touch

    def beat(self, connection_id: uuid.UUID, session_id: uuid.UUID, on_ended: Callable[[], Awaitable[None]]) -> None:
        """Note a pong; it reaches the store with the next flush."""
        now = self.service.clock.now()
        waiting = self._pending.get(connection_id)
        self._pending[connection_id] = Beat(session_id, on_ended, waiting.since if waiting else now, now)

    def forget(self, connection_id: uuid.UUID) -> None:
        """The connection ended: a pong still waiting is no longer news."""
        self._pending.pop(connection_id, None)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def run(self) -> None:
        """Flush every ``every`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.every)
            await self.flush()

    async def flush(self) -> None:
        """Write every pong noted so far; call back the connections the store says have ended."""
        batch, self._pending = self._pending, {}
        items = list(batch.items())
        for start in range(0, len(items), CHUNK):
            chunk = items[start : start + CHUNK]
            try:
                ended = await to_thread(self._write, chunk)
            except StoreUnavailable:
                log.warning("could not record %d heartbeats; retrying with the next flush", len(items) - start)
                for connection_id, beat in items[start:]:
                    newer = self._pending.get(connection_id)  # a pong that arrived during this flush
                    self._pending[connection_id] = replace(newer, since=beat.since) if newer else beat
                return
            except Exception:
                log.exception("recording %d heartbeats failed; they are dropped", len(chunk))
                continue
            for beat in ended:
                await beat.on_ended()
        self._prune()

    def _write(self, chunk: list[tuple[uuid.UUID, Beat]]) -> list[Beat]:
        """One transaction: each connection's heartbeat, and a touch for each session that is due one."""
        now = time.monotonic()
        ended: list[Beat] = []
        touched: set[uuid.UUID] = set()
        with self.service.transaction() as tx:
            for connection_id, beat in chunk:
                if not connections.heartbeat(tx, connection_id, at=beat.at, since=beat.since):
                    ended.append(beat)
                    continue
                last = self._session_touched.get(beat.session_id)
                if (last is None or now - last >= self.session_touch_every) and beat.session_id not in touched:
                    tx.touch(SESSIONS, beat.session_id, at=beat.at, since=beat.since)
                    touched.add(beat.session_id)
        self._session_touched.update(dict.fromkeys(touched, now))  # only once the transaction committed
        return ended

    def _prune(self) -> None:
        """Forget touch times too old to matter, so the map does not grow with every session ever seen."""
        cutoff = time.monotonic() - self.session_touch_every
        for session_id in [sid for sid, at in self._session_touched.items() if at < cutoff]:
            del self._session_touched[session_id]
