"""api/threads.to_thread: a cancelled wait still waits for its thread's work to end."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from sessionflow.api.threads import to_thread


def test_a_cancelled_wait_ends_only_once_the_threads_work_has_ended() -> None:
    started, ended = threading.Event(), threading.Event()

    def work() -> str:
        started.set()
        time.sleep(0.3)
        ended.set()
        return "done"

    async def run() -> None:
        task = asyncio.create_task(to_thread(work))
        assert await asyncio.to_thread(started.wait, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert ended.is_set(), "the cancellation went on while the thread still worked"

    asyncio.run(run())


def test_an_uncancelled_wait_answers_what_the_work_returned_or_raised() -> None:
    def fail() -> None:
        raise LookupError("from the thread")

    async def run() -> str:
        with pytest.raises(LookupError, match="from the thread"):
            await to_thread(fail)
        return await to_thread(str.upper, "answer")

    assert asyncio.run(run()) == "ANSWER"
