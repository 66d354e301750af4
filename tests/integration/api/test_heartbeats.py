"""A worker's pongs reach the store in batches: every one recorded, sessions touched once, lost ones told."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest

from sessionflow.api import heartbeats as heartbeats_module
from sessionflow.api.heartbeats import Heartbeats
from sessionflow.lifecycle import CONNECTION, Actor, ConnectionState, ManualClock
from sessionflow.persistence import connections
from sessionflow.persistence.errors import StoreUnavailable
from sessionflow.persistence.service import TransitionService
from sessionflow.persistence.tx import Tx
from tests.integration.persistence.conftest import log_in

HOUR = 3600.0


def _open(service: TransitionService, session_id: uuid.UUID) -> uuid.UUID:
    with service.transaction() as tx:
        row = connections.open_connection(tx, session_id, worker_id="w1", remote_addr="127.0.0.1")
        tx.fire("connection", row.id, "accept", actor=Actor.SERVER)
    return row.id


class Ended:
    """An ``on_ended`` callback that remembers which connections it was called for."""

    def __init__(self) -> None:
        self.calls: list[uuid.UUID] = []

    def for_(self, connection_id: uuid.UUID) -> Callable[[], Awaitable[None]]:
        async def on_ended() -> None:
            self.calls.append(connection_id)

        return on_ended


def _heartbeat_at(service: TransitionService, connection_id: uuid.UUID) -> object:
    return service.get("connection", connection_id, fire_due=False).row["last_heartbeat_at"]


def _idle_due(service: TransitionService, session_id: uuid.UUID) -> object:
    return service.get("session", session_id, fire_due=False).timers["idle"]


@contextmanager
def _counting_transactions(service: TransitionService, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    opened: list[int] = []
    original = service.transaction

    @contextmanager
    def counted() -> Iterator[Tx]:
        opened.append(1)
        with original() as tx:
            yield tx

    monkeypatch.setattr(service, "transaction", counted)
    yield opened
    monkeypatch.setattr(service, "transaction", original)


def test_a_flush_records_every_pong_a_chunk_per_transaction(
    service: TransitionService, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing is written when a pong is noted; the flush writes all of them, CHUNK connections per transaction."""
    monkeypatch.setattr(heartbeats_module, "CHUNK", 2)
    session_id = log_in(service)
    ids = [_open(service, session_id) for _ in range(5)]
    before = {cid: _heartbeat_at(service, cid) for cid in ids}
    beats = Heartbeats(service, every=1.0, session_touch_every=HOUR)
    ended = Ended()
    clock.advance(timedelta(seconds=10))
    for cid in ids:
        beats.beat(cid, session_id, ended.for_(cid))
    assert beats.pending == 5
    assert {cid: _heartbeat_at(service, cid) for cid in ids} == before

    with _counting_transactions(service, monkeypatch) as opened:
        asyncio.run(beats.flush())
    assert len(opened) == 3  # 2 + 2 + 1
    assert all(_heartbeat_at(service, cid) == clock.now() for cid in ids)
    heartbeat_due = service.get("connection", ids[0], fire_due=False).timers["heartbeat"]
    assert heartbeat_due is not None
    assert heartbeat_due > clock.now()
    assert beats.pending == 0
    assert ended.calls == []


def test_a_session_is_touched_once_per_period_however_many_of_its_connections_pong(
    service: TransitionService, clock: ManualClock
) -> None:
    """Pongs are activity for the session's idle timer, recorded at most once per ``session_touch_every``."""
    session_id = log_in(service)
    first, second = _open(service, session_id), _open(service, session_id)
    beats = Heartbeats(service, every=1.0, session_touch_every=HOUR)
    ended = Ended()
    version = service.get("session", session_id).version

    clock.advance(timedelta(seconds=20))  # within the connections' heartbeat timers
    beats.beat(first, session_id, ended.for_(first))
    beats.beat(second, session_id, ended.for_(second))
    asyncio.run(beats.flush())
    touched_due = _idle_due(service, session_id)
    assert touched_due == clock.now() + timedelta(minutes=30)  # the default idle timeout, from this flush
    assert service.get("session", session_id).version == version, "a touch moves timers, not the state"

    clock.advance(timedelta(seconds=20))  # within the connections' heartbeat timers
    beats.beat(first, session_id, ended.for_(first))
    asyncio.run(beats.flush())
    assert _idle_due(service, session_id) == touched_due, "within the period the session is not touched again"
    assert _heartbeat_at(service, first) == clock.now(), "while the connection's heartbeat still is"


def test_a_connection_the_store_already_ended_is_called_back(service: TransitionService) -> None:
    """A sweeper dropped it (its worker looked dead): the live handler learns it at the next flush."""
    session_id = log_in(service)
    alive, dropped = _open(service, session_id), _open(service, session_id)
    service.fire("connection", dropped, "drop", actor=Actor.TIMER)
    beats = Heartbeats(service, every=1.0, session_touch_every=HOUR)
    ended = Ended()
    beats.beat(alive, session_id, ended.for_(alive))
    beats.beat(dropped, session_id, ended.for_(dropped))
    asyncio.run(beats.flush())
    assert ended.calls == [dropped]
    assert service.get("connection", dropped).state == "dropped"


def test_pongs_wait_for_the_next_flush_while_the_store_is_unavailable(
    service: TransitionService, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy store costs no connection: the pongs stay pending, and a newer pong keeps its place."""
    session_id = log_in(service)
    cid = _open(service, session_id)
    before = _heartbeat_at(service, cid)
    beats = Heartbeats(service, every=1.0, session_touch_every=HOUR)
    ended = Ended()
    original = service.transaction

    @contextmanager
    def unavailable() -> Iterator[Tx]:
        raise StoreUnavailable("locked")
        yield  # unreachable: a generator, so that contextmanager accepts it

    monkeypatch.setattr(service, "transaction", unavailable)
    beats.beat(cid, session_id, ended.for_(cid))
    arrived = clock.now()
    asyncio.run(beats.flush())
    assert beats.pending == 1
    assert _heartbeat_at(service, cid) == before

    monkeypatch.setattr(service, "transaction", original)
    clock.advance(timedelta(seconds=5))
    asyncio.run(beats.flush())
    assert beats.pending == 0
    assert _heartbeat_at(service, cid) == arrived  # when the pong arrived, not when it could be written
    assert ended.calls == []


def test_pongs_kept_through_an_outage_longer_than_the_heartbeat_timer_keep_the_connection_open(
    service: TransitionService, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11, defect 3: a connection that answered every ping while the store was away is not dropped
    when the store returns, though its recorded heartbeat is older than the timer."""
    session_id = log_in(service)
    cid = _open(service, session_id)
    timer = CONNECTION.timer("heartbeat").default
    beats = Heartbeats(service, every=1.0, session_touch_every=HOUR)
    ended = Ended()
    original = service.transaction

    @contextmanager
    def unavailable() -> Iterator[Tx]:
        raise StoreUnavailable("partitioned")
        yield  # unreachable: a generator, so that contextmanager accepts it

    monkeypatch.setattr(service, "transaction", unavailable)
    for _ in range(10):  # pongs a third of the timer apart, over more than three timers
        clock.advance(timer / 3)
        beats.beat(cid, session_id, ended.for_(cid))
        asyncio.run(beats.flush())
    monkeypatch.setattr(service, "transaction", original)
    asyncio.run(beats.flush())
    assert ended.calls == []
    assert service.get("connection", cid).state == ConnectionState.OPEN
    assert _heartbeat_at(service, cid) == clock.now()


def test_a_connection_silent_before_the_outage_still_ends(
    service: TransitionService, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pongs only count from the first one not yet written: a timer due before it still fires."""
    session_id = log_in(service)
    cid = _open(service, session_id)
    timer = CONNECTION.timer("heartbeat").default
    beats = Heartbeats(service, every=1.0, session_touch_every=HOUR)
    ended = Ended()
    clock.advance(timer + timedelta(seconds=1))
    beats.beat(cid, session_id, ended.for_(cid))
    asyncio.run(beats.flush())
    assert ended.calls == [cid]


def test_a_forgotten_connection_is_not_written(service: TransitionService) -> None:
    """A connection that closed before the flush: its last pong is no longer news."""
    session_id = log_in(service)
    cid = _open(service, session_id)
    before = _heartbeat_at(service, cid)
    beats = Heartbeats(service, every=1.0, session_touch_every=HOUR)
    ended = Ended()
    beats.beat(cid, session_id, ended.for_(cid))
    beats.forget(cid)
    asyncio.run(beats.flush())
    assert _heartbeat_at(service, cid) == before
    assert ended.calls == []
