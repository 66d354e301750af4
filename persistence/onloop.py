"""PostgreSQL work on the event loop: psycopg's waits are awaited there instead of blocking a worker thread.

psycopg runs each exchange with the server as a generator that says when it would block, and hands it
to a wait function: one that blocks a thread (``Connection``) or one that awaits on asyncio
(``AsyncConnection``). Work started by :func:`run` runs in a greenlet, through SQLAlchemy's bridge for
its own asyncio support (``greenlet_spawn`` and ``await_only``). A connection made by
:mod:`sessionflow.persistence.bounded` that is asked to wait inside it awaits psycopg's asyncio wait
instead (:func:`wait`), with the same bound, and other requests go on meanwhile. Everything else stays
what it is: the synchronous pool, statements, pipeline and transaction.

Why: a short transaction in a worker thread wins the GIL back from the busy event loop after each of
its waits, and that hand-over cost a logout about a sixth of its CPU on PostgreSQL (bench/README.md).

- A new pooled connection is made in a worker thread (:func:`in_thread`): connecting resolves names and
  may wait up to the connect timeout, which the loop must not.
- What reads or holds a connection per caller (``Database.read``, ``Database.one_connection``) is kept
  per request (a context variable), not per thread: several requests' work shares the loop's thread.
- :func:`run` is shielded: a request cancelled mid-transaction (its client left, the server stops)
  still ends its transaction and hands its connection back before the cancellation goes on.
- ``limit`` bounds how many run at once, to at most what the pool keeps: a greenlet that waited for a
  pooled connection would block the loop, not just itself.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar

import psycopg.waiting
from sqlalchemy.util import await_only, greenlet_spawn

T = TypeVar("T")

_ON_LOOP: ContextVar[bool] = ContextVar("sessionflow_on_loop", default=False)


def active() -> bool:
    """Whether this code runs inside :func:`run`, where a wait must be awaited, not blocked on."""
    return _ON_LOOP.get()


async def run(work: Callable[[], T], limit: asyncio.Semaphore) -> T:
    """``work()`` on the event loop, its database waits awaited; the result or its exception."""
    async with limit:
        return await finished_first(greenlet_spawn(_marked, work))


async def finished_first(work: Awaitable[T]) -> T:
    """Await ``work``; if the caller is cancelled meanwhile, ``work`` still runs to its end (its transaction
    ends, its connection goes back) before the cancellation goes on."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # its outcome no longer matters to anyone: not "never retrieved"
        raise


def _marked(work: Callable[[], T]) -> T:
    token = _ON_LOOP.set(True)
    try:
        return work()
    finally:
        _ON_LOOP.reset(token)


def wait(gen: Any, fileno: int, *, interval: float, timeout: float | None) -> Any:
    """psycopg's asyncio wait for ``gen``, awaited on the loop from inside :func:`run`.

    Most of a transaction's waits never wait (a statement queued in a pipeline, a result already read):
    ``gen`` is run until it first asks to wait, and only then does the greenlet hand over to the loop.
    """
    try:
        first = next(gen)
    except StopIteration as done:
        return done.value
    return await_only(psycopg.waiting.wait_async(_resumed(first, gen), fileno, interval=interval, timeout=timeout))


def _resumed(first: Any, gen: Any) -> Any:
    """``gen``, already started and asking for ``first``: what psycopg's wait functions drive."""
    ready = yield first
    while True:
        try:
            ready = yield gen.send(ready)
        except StopIteration as done:
            return done.value


def in_thread(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``func(*args, **kwargs)`` in a worker thread, awaited from inside :func:`run`; there it runs as
    any thread does, outside :func:`run`."""
    call = contextvars.Context().run  # an empty context: the thread's own waits block it, not the loop
    return await_only(asyncio.to_thread(call, func, *args, **kwargs))
