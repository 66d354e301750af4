"""Fan-out: every committed session transition reaches the live connections of that session.

One :class:`Hub` per app delivers to this process's connections. Transitions
reach the hub by one of two transports:

- SQLite (one process): an after-commit hook of the transition service.
- PostgreSQL (any number of workers and hosts): ``pg_notify`` inside the
  transition's own transaction (so a notification exists exactly when the
  transition committed), and one ``LISTEN`` connection per worker, using
  psycopg's own notification support (no extra service). If the listener
  loses its connection it reconnects with backoff and tells every local
  connection to resynchronise from the history table, so nothing is missed.

Every worker's sweeper, API call and WebSocket go through the same path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from sqlalchemy import bindparam, func, make_url, select

from sessionflow.api.threads import to_thread
from sessionflow.lifecycle import SESSION
from sessionflow.persistence import Applied, Database, TransitionService, Tx
from sessionflow.persistence.models import TransitionRecord, table

log = logging.getLogger("sessionflow.fanout")

CHANNEL = "sessionflow_transitions"


@dataclass(frozen=True, slots=True)
class TransitionEvent:
    """A committed transition of a session, as connections receive it."""

    session_id: str
    seq: int
    event: str
    from_state: str
    to_state: str
    actor: str
    at: str

    @classmethod
    def from_applied(cls, applied: Applied) -> TransitionEvent:
        return cls(
            str(applied.instance_id),
            applied.version,
            applied.event,
            applied.from_state,
            applied.to_state,
            str(applied.actor),
            applied.at.isoformat(),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> TransitionEvent:
        return cls(**json.loads(text))


RESYNC = object()  # delivered to every subscriber when notifications may have been lost


class Hub:
    """Subscribers per session in this process; ``deliver`` may be called from any thread.

    The hub also remembers, per session, the newest ``seq`` this process has
    seen, so :func:`resync_periodically` can tell which sessions moved
    without telling it (a change made by another process, a lost
    notification).
    """

    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[Any]]] = {}
        self._watchers: set[asyncio.Queue[TransitionEvent]] = set()  # every session's events (the services feed)
        self._seen: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self, session_id: uuid.UUID) -> asyncio.Queue[Any]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._subscribers.setdefault(str(session_id), set()).add(queue)
        return queue

    def unsubscribe(self, session_id: uuid.UUID, queue: asyncio.Queue[Any]) -> None:
        queues = self._subscribers.get(str(session_id))
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._subscribers[str(session_id)]
                self._seen.pop(str(session_id), None)

    def watch(self) -> asyncio.Queue[TransitionEvent]:
        """A queue of every session's transitions delivered here (the revocation feed of registered services)."""
        queue: asyncio.Queue[TransitionEvent] = asyncio.Queue(maxsize=10_000)
        self._watchers.add(queue)
        return queue

    def unwatch(self, queue: asyncio.Queue[TransitionEvent]) -> None:
        self._watchers.discard(queue)

    def watching(self, queue: asyncio.Queue[TransitionEvent]) -> bool:
        return queue in self._watchers

    def saw(self, session_id: uuid.UUID, seq: int) -> None:
        """A subscriber of ``session_id`` is up to date with ``seq`` (its welcome)."""
        key = str(session_id)
        self._seen[key] = max(self._seen.get(key, 0), seq)

    def seen(self) -> dict[str, int]:
        """The newest ``seq`` seen per welcomed session with subscribers here."""
        return {key: seq for key, seq in self._seen.items() if key in self._subscribers}

    def resync(self, session_id: str) -> None:
        """Tell the subscribers of ``session_id`` to read what they missed from the history table."""
        for queue in list(self._subscribers.get(session_id, ())):
            queue.put_nowait(RESYNC)

    def deliver(self, event: TransitionEvent) -> None:
        """Hand ``event``, from any thread, to this worker's watchers and its session's subscribers, on the loop.

        With none of either, the loop is not woken at all: most transitions concern sessions with no
        WebSocket here. A subscriber that registers meanwhile misses nothing, since it subscribes before
        its welcome reads the committed history (api/ws.py).
        """
        if not self._watchers and event.session_id not in self._subscribers:
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._dispatch, event)

    def resync_all(self) -> None:
        for queues in list(self._subscribers.values()):
            for queue in list(queues):
                queue.put_nowait(RESYNC)

    def _dispatch(self, event: TransitionEvent) -> None:
        for watcher in list(self._watchers):
            if watcher.full():  # this far behind, it is dropped: it reconnects, and its mode's bound holds
                self._watchers.discard(watcher)
            else:
                watcher.put_nowait(event)
        queues = self._subscribers.get(event.session_id)
        if not queues:
            return
        self._seen[event.session_id] = max(self._seen.get(event.session_id, 0), event.seq)
        for queue in list(queues):
            queue.put_nowait(event)


RESYNC_CHUNK = 500  # session ids per query


def latest_seqs(db: Database, session_ids: list[str]) -> dict[str, int]:
    """The newest history ``seq`` of each session, read in chunks (one indexed query per chunk)."""
    h = table(TransitionRecord).c
    found: dict[str, int] = {}
    with db.engine.connect() as connection:
        for start in range(0, len(session_ids), RESYNC_CHUNK):
            chunk = [uuid.UUID(sid) for sid in session_ids[start : start + RESYNC_CHUNK]]
            query = (
                select(h.instance_id, func.max(h.seq))
                .where(h.machine == SESSION.name, h.instance_id.in_(chunk))
                .group_by(h.instance_id)
            )
            found.update((str(sid), int(seq)) for sid, seq in connection.execute(query))
    return found


async def resync_periodically(db: Database, hub: Hub, every: float) -> None:
    """Every ``every`` seconds, resynchronise the subscribers of sessions that moved without telling the hub.

    Notifications reach a worker only for changes made by a server process of
    the same deployment (and on SQLite only by this process): a session
    revoked with ``sessionflow users disable``, a timer fired by ``sessionflow
    sweep``, or a notification lost with the ``LISTEN`` connection would
    otherwise reach its sockets only when their credentials expire. This
    bounds that delay to ``every``. A store that is unavailable is tried again
    at the next round.
    """
    while True:
        await asyncio.sleep(every)
        seen = hub.seen()
        if not seen:
            continue
        try:
            latest = await to_thread(latest_seqs, db, list(seen))
        except Exception as exc:  # noqa: BLE001 - unavailable now; the next round retries
            log.warning("could not check live sessions for missed transitions (%s)", type(exc).__name__)
            continue
        for session_id, seq in latest.items():
            if seq > seen.get(session_id, seq):
                hub.resync(session_id)


def install_in_process(service: TransitionService, hub: Hub) -> None:
    """SQLite transport: deliver after commit, in this process only."""

    def publish(applied: list[Applied]) -> None:
        for a in applied:
            if a.machine == "session":
                hub.deliver(TransitionEvent.from_applied(a))

    service.hooks.after_commit.append(publish)


def install_postgres_notify(service: TransitionService) -> None:
    """PostgreSQL transport, sending side: NOTIFY inside the transition's transaction."""
    build: Callable[[], Any] = lambda: select(func.pg_notify(bindparam("channel"), bindparam("payload")))  # noqa: E731

    def notify(tx: Tx, applied: Applied) -> None:
        if applied.machine == "session":
            prepared = tx.db.prepare("pg_notify", build)
            payload = TransitionEvent.from_applied(applied).to_json()
            tx.cursor.execute(prepared, {"channel": CHANNEL, "payload": payload})  # no answer to wait for

    service.hooks.in_transaction.append(notify)


async def listen(db: Database, hub: Hub, *, stop: asyncio.Event) -> None:
    """PostgreSQL transport, receiving side: LISTEN until ``stop``, reconnecting with backoff."""
    url = make_url(db.engine.url).set(drivername="postgresql").render_as_string(hide_password=False)
    delay = 0.5
    first = True
    while not stop.is_set():
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
                await connection.execute(f"LISTEN {CHANNEL}")
                if not first:
                    hub.resync_all()  # notifications sent while we were away are gone
                first, delay = False, 0.5
                while not stop.is_set():
                    async for note in connection.notifies(timeout=1.0):
                        try:
                            hub.deliver(TransitionEvent.from_json(note.payload))
                        except (ValueError, TypeError):
                            log.warning("ignoring a malformed notification on %s", CHANNEL)
        except (psycopg.Error, OSError) as exc:
            log.warning("transition listener lost PostgreSQL (%s); reconnecting in %.1fs", type(exc).__name__, delay)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 30.0)
            first = False
