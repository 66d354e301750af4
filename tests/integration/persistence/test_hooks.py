"""Service hooks see exactly what committed, and in-transaction hooks commit or roll back with it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sessionflow.lifecycle import Actor, EventRefused, ManualClock
from sessionflow.persistence.records import Applied
from sessionflow.persistence.service import TransitionService
from sessionflow.persistence.tx import Tx
from tests.integration.persistence.conftest import history_of, log_in


def test_after_commit_sees_every_applied_event_including_lazy_timers(
    service: TransitionService, clock: ManualClock
) -> None:
    """A refresh after the idle timeout reports the timer's expire and the refresh, in order."""
    session_id = log_in(service)
    seen: list[list[tuple[str, int]]] = []
    service.hooks.after_commit.append(lambda applied: seen.append([(a.event, a.version) for a in applied]))
    clock.advance(timedelta(hours=1))
    service.fire("session", session_id, "refresh", actor=Actor.CLIENT, facts={"refresh_token_current": True})
    assert seen == [[("expire", 3), ("refresh", 4)]]


def test_after_commit_is_silent_when_the_transaction_rolls_back(service: TransitionService) -> None:
    """Events undone by a failing unit of work are never reported."""
    session_id = log_in(service)
    seen: list[list[Applied]] = []
    service.hooks.after_commit.append(seen.append)
    with pytest.raises(RuntimeError), service.transaction() as tx:
        tx.fire("session", session_id, "connect", actor=Actor.SERVER)
        raise RuntimeError("undo")
    assert seen == []


def test_a_failing_after_commit_hook_does_not_undo_the_event(service: TransitionService) -> None:
    """The outcome stands and is returned even when an observer breaks."""

    def broken(_applied: list[Applied]) -> None:
        raise ValueError("observer bug")

    session_id = log_in(service)
    service.hooks.after_commit.append(broken)
    applied = service.fire("session", session_id, "logout", actor=Actor.CLIENT)
    assert applied.to_state == "closed"
    assert service.get("session", session_id).state == "closed"


def test_in_transaction_hook_failure_rolls_the_event_back(service: TransitionService) -> None:
    """A hook that must commit with the event (a NOTIFY, say) takes the event down with it."""

    def failing(_tx: Tx, _applied: Applied) -> None:
        raise RuntimeError("cannot notify")

    session_id = log_in(service)
    service.hooks.in_transaction.append(failing)
    with pytest.raises(RuntimeError, match="cannot notify"):
        service.fire("session", session_id, "logout", actor=Actor.CLIENT)
    service.hooks.in_transaction.clear()
    assert service.get("session", session_id).state == "session_active"
    assert len(history_of(service.db, session_id)) == 2


def test_refusal_hooks_see_the_refusal_with_its_instance(service: TransitionService) -> None:
    session_id = log_in(service)
    refusals: list[EventRefused] = []
    service.hooks.on_refused.append(refusals.append)
    with pytest.raises(EventRefused):
        service.fire("session", session_id, "disconnect", actor=Actor.SERVER)
    assert [(r.instance_id, r.event, r.state) for r in refusals] == [(session_id, "disconnect", "session_active")]
