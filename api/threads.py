"""Work the event loop hands to a worker thread, waited for even when the task that waits is cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sessionflow.persistence.onloop import finished_first

P = ParamSpec("P")
T = TypeVar("T")


async def to_thread(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """:func:`asyncio.to_thread`, but a cancellation waits for the thread's work to end before it goes on.

    asyncio cannot stop a thread: a background task cancelled at shutdown would end at once while its thread
    still holds (or is about to take) a pooled connection. The app then disposes of the pool, which closes
    only the connections checked in; that one goes back later to the discarded pool and is garbage collected
    open. The background work is one short transaction, bounded by the database timeout.
    """
    return await finished_first(asyncio.to_thread(func, *args, **kwargs))
