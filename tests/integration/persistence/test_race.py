"""Fifty concurrent writers on one session: each round exactly one wins, history stays gapless."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator

import pytest

from sessionflow.lifecycle import Actor, EventRefused, ManualClock
from sessionflow.persistence.database import Database
from sessionflow.persistence.errors import VersionConflict
from sessionflow.persistence.records import Applied
from sessionflow.persistence.service import TransitionService
from tests.integration.persistence.conftest import history_of, log_in

WORKERS = 50
ROUNDS = 15


@pytest.fixture
def wide_service(db_url: str, clock: ManualClock) -> Iterator[TransitionService]:
    """A service whose pool lets all fifty workers hold a connection at once."""
    database = Database.from_url(db_url, pool_size=WORKERS // 2)
    yield TransitionService(database, clock=clock)
    database.dispose()


def _race(fire: Callable[[int], Applied]) -> tuple[list[Applied], list[Exception]]:
    """Start WORKERS threads on a barrier; each calls ``fire(i)``. Returns wins and errors."""
    barrier = threading.Barrier(WORKERS)
    wins: list[Applied] = []
    errors: list[Exception] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        barrier.wait()
        try:
            result = fire(i)
        except Exception as exc:  # noqa: BLE001 - every outcome is collected and asserted on
            with lock:
                errors.append(exc)
        else:
            with lock:
                wins.append(result)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    return wins, errors


@pytest.mark.slow
def test_pinned_version_races_have_exactly_one_winner_per_round(wide_service: TransitionService) -> None:
    """All workers refresh at the same If-Match version; one wins, the rest get a VersionConflict."""
    session_id = log_in(wide_service)
    for round_no in range(ROUNDS):
        version = 2 + round_no
        wins, errors = _race(
            lambda _i, v=version: wide_service.fire(
                "session",
                session_id,
                "refresh",
                actor=Actor.CLIENT,
                facts={"refresh_token_current": True},
                expected_version=v,
            )
        )
        assert len(wins) == 1, f"round {round_no}: {len(wins)} winners"
        assert wins[0].version == version + 1
        assert len(errors) == WORKERS - 1
        assert all(isinstance(e, VersionConflict) for e in errors), {type(e).__name__ for e in errors}
    history = history_of(wide_service.db, session_id)
    assert [row[0] for row in history] == list(range(1, 3 + ROUNDS))  # no gaps, no duplicates
    assert sum(row[1] == "refresh" for row in history) == ROUNDS


@pytest.mark.slow
def test_conflicting_terminal_events_have_exactly_one_winner(wide_service: TransitionService) -> None:
    """Logout, revoke and connect race on fresh sessions; one wins, the others are refused or conflict."""
    events = [("logout", Actor.CLIENT), ("revoke", Actor.ADMIN), ("connect", Actor.SERVER)]
    for round_no in range(ROUNDS):
        session_id = log_in(wide_service)
        wins, errors = _race(
            lambda i, sid=session_id: wide_service.fire("session", sid, events[i % 3][0], actor=events[i % 3][1])
        )
        terminal = [w for w in wins if w.to_state in {"closed", "revoked"}]
        assert len(terminal) == 1, f"round {round_no}: {[(w.event, w.to_state) for w in wins]}"
        assert all(isinstance(e, EventRefused | VersionConflict) for e in errors), {type(e).__name__ for e in errors}
        history = history_of(wide_service.db, session_id)
        assert [row[0] for row in history] == list(range(1, 3 + len(wins)))
        assert len(history) == 2 + len(wins)  # one row per win, nothing for the losers
        assert history[-1][3] in {"closed", "revoked"}


def test_a_lost_compare_and_set_names_both_versions(service: TransitionService) -> None:
    """A writer whose pinned version was taken meanwhile learns the version it lost to."""
    session_id = log_in(service)
    service.fire("session", session_id, "connect", actor=Actor.SERVER, expected_version=2)
    with pytest.raises(VersionConflict) as conflict:
        service.fire("session", session_id, "disconnect", actor=Actor.SERVER, expected_version=2)
    assert (conflict.value.expected, conflict.value.actual) == (2, 3)
    assert conflict.value.instance_id == session_id
    assert isinstance(session_id, uuid.UUID)
