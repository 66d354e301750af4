"""The in-process hub wakes the event loop only for transitions someone here listens to."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sessionflow.api.fanout import Hub, TransitionEvent


class Loop:
    """Records what would have been scheduled on the event loop from another thread."""

    def __init__(self) -> None:
        self.scheduled: list[Any] = []

    def is_closed(self) -> bool:
        return False

    def call_soon_threadsafe(self, callback: Any, *args: Any) -> None:
        self.scheduled.append(args)


def event(session_id: uuid.UUID) -> TransitionEvent:
    return TransitionEvent(str(session_id), 3, "logout", "session_active", "closed", "client", "2030-01-01T00:00:00")


def test_a_transition_nobody_here_listens_to_wakes_nothing() -> None:
    hub, loop = Hub(), Loop()
    hub.bind(loop)  # type: ignore[arg-type]
    hub.deliver(event(uuid.uuid4()))
    assert loop.scheduled == []


def test_a_subscriber_of_the_session_or_any_watcher_gets_it() -> None:
    async def run() -> None:
        hub, loop = Hub(), Loop()
        hub.bind(loop)  # type: ignore[arg-type]
        mine, other = uuid.uuid4(), uuid.uuid4()
        hub.subscribe(mine)
        hub.deliver(event(mine))
        hub.deliver(event(other))
        assert [args[0].session_id for args in loop.scheduled] == [str(mine)]
        hub.watch()
        hub.deliver(event(other))
        assert [args[0].session_id for args in loop.scheduled] == [str(mine), str(other)]

    asyncio.run(run())  # queues are made inside a running loop
