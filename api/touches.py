"""Idle-timer touches, written in batches per worker instead of in the request that earned them.

Authenticated use pushes a session's idle timeout back, at most once a
minute (``TOUCH_EVERY`` in ``authenticate``). Written inside the request, that
touch made a read cost a write transaction. Here a request only notes the
session; every ``every`` seconds the worker writes the sessions noted since,
a chunk per transaction, as ``heartbeats`` does for pongs.

Deferring is safe because a touch is only due once the timeout is at least a
minute old, and the authenticator writes at once instead when the timeout is
within ``safe_margin`` (several flush intervals) of passing, so a batch can
never land after the timer it was meant to push back. When the store is
unavailable the noted sessions wait for the next flush.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from datetime import timedelta

from sessionflow.api.threads import to_thread
from sessionflow.persistence import SESSIONS, StoreUnavailable, TransitionService

log = logging.getLogger("sessionflow.auth")

CHUNK = 200  # sessions per write transaction: keeps SQLite's write lock short for other writers


class Touches:
    """The sessions this worker's requests used since the last flush."""

    def __init__(self, service: TransitionService, *, every: float = 1.0) -> None:
        self.service = service
        self.every = every
        self.safe_margin = timedelta(seconds=max(30.0, 10 * every))  # closer than this, the request writes itself
        self._pending: set[uuid.UUID] = set()
        self._lock = threading.Lock()  # notes come from request threads, the flush from the event loop

    def note(self, session_id: uuid.UUID) -> None:
        with self._lock:
            self._pending.add(session_id)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def run(self) -> None:
        """Flush every ``every`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.every)
            await self.flush()

    async def flush(self) -> None:
        with self._lock:
            batch, self._pending = list(self._pending), set()
        for start in range(0, len(batch), CHUNK):
            chunk = batch[start : start + CHUNK]
            try:
                await to_thread(self._write, chunk)
            except StoreUnavailable:
                log.warning(
                    "could not record activity of %d sessions; retrying with the next flush", len(batch) - start
                )
                with self._lock:
                    self._pending.update(batch[start:])
                return
            except Exception:
                log.exception("recording activity of %d sessions failed; it is dropped", len(chunk))

    def _write(self, chunk: list[uuid.UUID]) -> None:
        with self.service.transaction() as tx:
            for session_id in chunk:
                tx.touch(SESSIONS, session_id)  # False if it moved meanwhile: nothing to push back then
