"""Redis fan-out: committed transitions published to Redis after commit, one subscriber per worker.

PostgreSQL's NOTIFY in the transition's transaction takes a lock at commit
that serialises every such commit in the database (docs/operations.md has
the figures), which caps a deployment's transition rate however many hosts
serve it. Here nothing is added to the transaction:

- after commit, the transition is delivered to this worker's own
  connections at once, and handed to an asyncio publisher that sends what
  has gathered in one pipelined round trip;
- every worker subscribes to the channel and delivers what other workers
  published (its own messages, already delivered, are skipped).

Publishing after commit means a worker that dies between the two loses the
notification; so does a Redis that is down. Neither loses a transition: every
worker re-reads the live sessions it holds from the history table at
``SESSIONFLOW_WS_RESYNC_INTERVAL`` (:func:`~sessionflow.api.fanout.resync_periodically`),
and a subscriber that reconnects resynchronises all of them. Every Redis call
is bounded by a timeout; the Redis URL, which may hold a password, is never
logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sessionflow.api.fanout import Hub, TransitionEvent
from sessionflow.persistence import Applied, TransitionService

log = logging.getLogger("sessionflow.fanout")

TIMEOUT = 3.0  # seconds for connecting and for each command
BACKLOG = 10_000  # messages waiting to be published; beyond, they are dropped and left to the resync
BATCH = 500  # messages per pipelined round trip


def _client(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT, health_check_interval=10, decode_responses=True
    )


class RedisFanout:
    """Both halves for one worker: ``install`` the after-commit hook, then run :meth:`publish` and :meth:`subscribe`."""

    def __init__(self, url: str, channel: str, hub: Hub, origin: str) -> None:
        self.url = url
        self.channel = channel
        self.hub = hub
        self.origin = origin  # this worker's id: its own messages come back through the channel, and are skipped
        self._queue: asyncio.Queue[str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dropped = 0

    def install(self, service: TransitionService) -> None:
        service.hooks.after_commit.append(self._committed)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue = asyncio.Queue(BACKLOG)

    def _committed(self, applied: list[Applied]) -> None:
        """After commit, in the committing thread: deliver here now, and queue for the other workers."""
        for a in applied:
            if a.machine != "session":
                continue
            event = TransitionEvent.from_applied(a)
            self.hub.deliver(event)
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._enqueue, f"{self.origin} {event.to_json()}")

    def _enqueue(self, message: str) -> None:
        assert self._queue is not None
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                log.warning(
                    "fan-out backlog full: %d notifications dropped; sockets catch up at the resync", self._dropped
                )

    async def publish(self, stop: asyncio.Event) -> None:
        """Send queued notifications until ``stop``, a pipeline per batch; reconnect with backoff on errors."""
        assert self._queue is not None
        queue, delay = self._queue, 0.5
        while not stop.is_set():
            client = _client(self.url)
            try:
                while not stop.is_set():
                    batch = [await queue.get()]
                    while len(batch) < BATCH and not queue.empty():
                        batch.append(queue.get_nowait())
                    async with client.pipeline(transaction=False) as pipe:
                        for message in batch:
                            pipe.publish(self.channel, message)
                        await asyncio.wait_for(pipe.execute(), TIMEOUT)
                    delay = 0.5
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("could not publish transitions to Redis (%s); retrying in %.1fs", type(exc).__name__, delay)
                await _pause(stop, delay)
                delay = min(delay * 2, 30.0)
            finally:
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    await asyncio.wait_for(client.aclose(), TIMEOUT)

    async def subscribe(self, stop: asyncio.Event) -> None:
        """Deliver what other workers publish until ``stop``; after a reconnect, resynchronise every socket here."""
        delay, first = 0.5, True
        while not stop.is_set():
            client = _client(self.url)
            pubsub: Any = client.pubsub(ignore_subscribe_messages=True)
            try:
                await asyncio.wait_for(pubsub.subscribe(self.channel), TIMEOUT)
                if not first:
                    self.hub.resync_all()  # what was published while we were away is gone
                first, delay = False, 0.5
                while not stop.is_set():
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._received(message.get("data"))
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("transition subscriber lost Redis (%s); reconnecting in %.1fs", type(exc).__name__, delay)
                await _pause(stop, delay)
                delay, first = min(delay * 2, 30.0), False
            finally:
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    await asyncio.wait_for(pubsub.aclose(), TIMEOUT)
                    await asyncio.wait_for(client.aclose(), TIMEOUT)

    def _received(self, data: object) -> None:
        origin, _, payload = str(data).partition(" ")
        if origin == self.origin:
            return
        try:
            self.hub.deliver(TransitionEvent.from_json(payload))
        except (ValueError, TypeError):
            log.warning("ignoring a malformed notification on the Redis channel")


async def _pause(stop: asyncio.Event, delay: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=delay * random.uniform(0.5, 1.0))
