"""A session as a resource: GET, history, events (If-Match, Idempotency-Key, refusals) and WebSocket tickets."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from sessionflow.lifecycle import SESSION, Actor
from sessionflow.persistence import queries
from tests.integration.api.conftest import Api, assert_problem, bearer


@pytest.fixture
def alice(api: Api) -> dict[str, Any]:
    """A logged-in session of alice's (session_active, version 2)."""
    return api.session_for(api.alice)


def url(session: dict[str, Any], suffix: str = "") -> str:
    return f"/api/session/{session['session_id']}{suffix}"


# -- GET /api/session/{id} ---------------------------------------------------------------


def test_the_holder_sees_state_version_timers_and_its_allowed_events(api: Api, alice: dict[str, Any]) -> None:
    response = api.client.get(url(alice), headers=bearer(alice["access_token"]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert response.headers["etag"] == f'"{body["version"]}"'
    assert (body["session_id"], body["state"], body["version"], body["user_id"]) == (
        alice["session_id"],
        "session_active",
        2,
        str(api.alice.id),
    )
    assert body["allowed_events"] == ["refresh", "logout"]
    assert body["connections"] == []
    assert body["idle_due_at"] == "2030-01-01T00:30:00Z"
    assert body["lifetime_due_at"] == "2030-01-31T00:00:00Z"
    assert body["login_window_due_at"] is None


def test_an_admin_sees_any_session_with_the_events_an_admin_may_fire(api: Api, alice: dict[str, Any]) -> None:
    response = api.client.get(url(alice), headers=api.admin_headers())
    assert response.status_code == 200, response.text
    assert response.json()["allowed_events"] == ["revoke"]
    assert response.headers["etag"] == '"2"'


def test_another_session_of_the_same_user_is_404_like_one_that_does_not_exist(api: Api, alice: dict[str, Any]) -> None:
    """Foreign and unknown are indistinguishable: whether a session exists is not the caller's business."""
    other = api.session_for(api.alice)
    foreign = api.client.get(url(other), headers=bearer(alice["access_token"]))
    unknown = api.client.get(f"/api/session/{uuid.uuid4()}", headers=bearer(alice["access_token"]))
    assert assert_problem(foreign, 404, "session_not_found") == assert_problem(unknown, 404, "session_not_found")
    for suffix in ("/history", "/ws-ticket", "/events/logout"):
        method = api.client.get if suffix == "/history" else api.client.post
        assert_problem(method(url(other, suffix), headers=bearer(alice["access_token"])), 404, "session_not_found")


def test_an_admin_asking_for_a_session_that_does_not_exist_gets_404(api: Api) -> None:
    assert_problem(
        api.client.get(f"/api/session/{uuid.uuid4()}", headers=api.admin_headers()), 404, "session_not_found"
    )


def test_reading_a_session_counts_as_activity_recorded_with_the_workers_next_batch(
    api: Api, alice: dict[str, Any]
) -> None:
    """The idle timeout is pushed back by authenticated use (at most once a minute), written off the request
    path: the read answers from what it read, and the worker's next batch records the activity."""
    api.clock.advance(timedelta(minutes=10))
    touches = api.app.state.ctx.auth.touches
    assert touches is not None, "a running app defers touches"
    body = api.client.get(url(alice), headers=bearer(alice["access_token"])).json()
    assert body["idle_due_at"] == "2030-01-01T00:30:00Z", "the answer is the row as read, no write in the request"
    asyncio.run(touches.flush())
    body = api.client.get(url(alice), headers=bearer(alice["access_token"])).json()
    assert body["idle_due_at"] == "2030-01-01T00:40:00Z"


def test_use_close_to_the_idle_timeout_is_recorded_in_the_request_itself(make_api: Callable[..., Api]) -> None:
    """Closer to the timeout than a batch could safely wait, the request writes the touch at once."""
    api = make_api(access_token_ttl=timedelta(hours=1))
    alice = api.session_for(api.alice)
    api.clock.advance(timedelta(minutes=29, seconds=45))  # 15 s left, inside the safe margin
    touches = api.app.state.ctx.auth.touches
    assert touches is not None
    response = api.client.get(url(alice), headers=bearer(alice["access_token"]))
    assert response.status_code == 200, response.text
    assert touches.pending == 0, "nothing left for the batch"
    stored = api.app.state.ctx.service.get(SESSION.name, alice["session_id"], fire_due=False)
    assert stored.timers["idle"] == api.clock.now() + timedelta(minutes=30)


# -- GET /api/session/{id}/history -------------------------------------------------------


def test_history_is_oldest_first_and_paginated(api: Api, alice: dict[str, Any]) -> None:
    for _ in range(3):  # three refreshes: five transitions in all
        alice = api.client.post("/api/auth/refresh", json={"refresh_token": alice["refresh_token"]}).json()
    headers = bearer(alice["access_token"])
    full = api.client.get(url(alice, "/history"), headers=headers).json()
    assert full["next"] is None
    assert [i["event"] for i in full["items"]] == ["authenticate", "activate", "refresh", "refresh", "refresh"]
    assert [i["seq"] for i in full["items"]] == [1, 2, 3, 4, 5]
    assert set(full["items"][0]) == {"seq", "event", "from_state", "to_state", "actor", "at"}
    assert (full["items"][0]["from_state"], full["items"][0]["to_state"], full["items"][0]["actor"]) == (
        "anonymous",
        "authenticated",
        "server",
    )

    pages, after = [], 0
    while after is not None:
        page = api.client.get(url(alice, "/history"), params={"after": after, "limit": 2}, headers=headers)
        assert page.status_code == 200, page.text
        pages.append([i["seq"] for i in page.json()["items"]])
        after = page.json()["next"]
    assert pages == [[1, 2], [3, 4], [5]]
    assert api.client.get(url(alice, "/history"), params={"after": 5}, headers=headers).json() == {
        "items": [],
        "next": None,
    }


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 501}, {"limit": -1}, {"limit": "ten"}, {"after": -1}, {"after": "x"}, {"after": 2**40}],
    ids=["limit_0", "limit_501", "limit_negative", "limit_text", "after_negative", "after_text", "after_huge"],
)
def test_history_page_bounds_are_400(api: Api, alice: dict[str, Any], params: dict[str, str | int]) -> None:
    response = api.client.get(url(alice, "/history"), params=params, headers=bearer(alice["access_token"]))
    assert_problem(response, 400, "invalid_request")


def test_history_accepts_the_documented_maximum_page(api: Api, alice: dict[str, Any]) -> None:
    """Issue 11, defect 6: ``limit=500`` (the documented maximum) is a page, not a 422."""
    response = api.client.get(url(alice, "/history"), params={"limit": 500}, headers=bearer(alice["access_token"]))
    assert response.status_code == 200, response.text
    assert response.json()["items"]


# -- POST /api/session/{id}/events/{event} -----------------------------------------------


def test_a_stale_if_match_is_412_with_the_current_version_and_a_current_one_applies(
    api: Api, alice: dict[str, Any]
) -> None:
    headers = bearer(alice["access_token"])
    stale = api.client.post(url(alice, "/events/logout"), headers={**headers, "If-Match": '"1"'})
    body = assert_problem(stale, 412, "version_mismatch")
    assert body["current_version"] == 2
    assert api.client.get(url(alice), headers=headers).json()["state"] == "session_active"  # nothing changed

    current = api.client.post(url(alice, "/events/logout"), headers={**headers, "If-Match": '"2"'})
    assert current.status_code == 200, current.text
    assert current.json() == {
        "session_id": alice["session_id"],
        "event": "logout",
        "from_state": "session_active",
        "to_state": "closed",
        "version": 3,
        "repeated": False,
    }
    assert current.headers["etag"] == '"3"'


@pytest.mark.parametrize(
    "value", ["three", '"-1"', '"1" "2"', '"1", "2"', "2", ""], ids=["word", "negative", "two", "list", "bare", "empty"]
)
def test_an_unreadable_if_match_is_400_and_changes_nothing(api: Api, alice: dict[str, Any], value: str) -> None:
    """Only one quoted version (the ETag as sent), a weak tag or * is an If-Match value here."""
    response = api.client.post(
        url(alice, "/events/logout"), headers={**bearer(alice["access_token"]), "If-Match": value}
    )
    assert_problem(response, 400, "invalid_if_match")
    assert api.client.get(url(alice), headers=bearer(alice["access_token"])).json()["state"] == "session_active"


def test_a_weak_if_match_never_matches_so_it_is_412(api: Api, alice: dict[str, Any]) -> None:
    """RFC 9110 compares If-Match strongly: W/"2" does not match version 2."""
    response = api.client.post(
        url(alice, "/events/logout"), headers={**bearer(alice["access_token"]), "If-Match": 'W/"2"'}
    )
    assert_problem(response, 412, "version_mismatch")
    assert api.client.get(url(alice), headers=bearer(alice["access_token"])).json()["state"] == "session_active"


def test_if_match_star_asks_for_any_current_version(api: Api, alice: dict[str, Any]) -> None:
    response = api.client.post(url(alice, "/events/logout"), headers={**bearer(alice["access_token"]), "If-Match": "*"})
    assert response.status_code == 200, response.text
    assert response.json()["to_state"] == "closed"


def test_a_repeated_idempotency_key_returns_the_first_outcome_and_changes_nothing(
    api: Api, alice: dict[str, Any]
) -> None:
    """An admin revokes twice with one key: the same result, ``repeated: true``, no second history row."""
    headers = {**api.admin_headers(), "Idempotency-Key": "revoke-alice-1"}
    first = api.client.post(url(alice, "/events/revoke"), headers=headers, json={"reason": "lost laptop"})
    assert first.status_code == 200, first.text
    rows = queries.history(api.ctx.db, "session", alice["session_id"])
    assert (rows[-1].event, rows[-1].actor, rows[-1].detail) == ("revoke", "admin", {"reason": "lost laptop"})

    again = api.client.post(url(alice, "/events/revoke"), headers=headers, json={"reason": "lost laptop"})
    assert again.status_code == 200, again.text
    assert again.json() == {**first.json(), "repeated": True}
    assert first.json()["repeated"] is False
    assert len(queries.history(api.ctx.db, "session", alice["session_id"])) == len(rows)


def test_an_idempotency_key_reused_for_another_event_is_422(api: Api, alice: dict[str, Any]) -> None:
    logout = api.client.post(
        url(alice, "/events/logout"), headers={**bearer(alice["access_token"]), "Idempotency-Key": "k-1"}
    )
    assert logout.status_code == 200, logout.text
    revoke = api.client.post(url(alice, "/events/revoke"), headers={**api.admin_headers(), "Idempotency-Key": "k-1"})
    assert_problem(revoke, 422, "idempotency_key_reused")


@pytest.mark.parametrize(
    "key", ["", "has space", "k" * 500, "naïve".encode()], ids=["empty", "space", "long", "non_ascii"]
)
def test_an_unusable_idempotency_key_is_4xx(api: Api, alice: dict[str, Any], key: str | bytes) -> None:
    token = alice["access_token"].encode()
    headers = {
        b"Authorization": b"Bearer " + token,
        b"Idempotency-Key": key if isinstance(key, bytes) else key.encode(),
    }
    response = api.client.post(url(alice, "/events/logout"), headers=headers)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert api.client.get(url(alice), headers=bearer(alice["access_token"])).json()["state"] == "session_active"


SERVER_AND_TIMER_EVENTS = [name for name, spec in SESSION.events.items() if Actor.CLIENT not in spec.fired_by]


@pytest.mark.parametrize("event", SERVER_AND_TIMER_EVENTS)
def test_server_and_timer_events_are_refused_to_the_holder_and_change_nothing(
    api: Api, alice: dict[str, Any], event: str
) -> None:
    """The machine answers: 403 where the state has the transition but not for a client, 409 where it has none.

    Either way the problem names the state and the events the holder may fire, and nothing moves.
    """
    response = api.client.post(url(alice, f"/events/{event}"), headers=bearer(alice["access_token"]))
    if any(event == row.event and "session_active" in row.sources for row in SESSION.transitions):
        body = assert_problem(response, 403, "event_not_permitted")
        assert "client may not fire it" in body["detail"]
    else:
        body = assert_problem(response, 409, "transition_not_allowed")
    assert (body["state"], body["event"], body["allowed_events"]) == ("session_active", event, ["refresh", "logout"])
    assert api.client.get(url(alice), headers=bearer(alice["access_token"])).json()["version"] == 2


def test_an_admin_may_not_fire_the_holders_events(api: Api, alice: dict[str, Any]) -> None:
    body = assert_problem(
        api.client.post(url(alice, "/events/logout"), headers=api.admin_headers()), 403, "event_not_permitted"
    )
    assert body["allowed_events"] == ["revoke"]


def test_a_client_may_not_revoke(api: Api, alice: dict[str, Any]) -> None:
    assert_problem(
        api.client.post(url(alice, "/events/revoke"), headers=bearer(alice["access_token"])), 403, "event_not_permitted"
    )


def test_an_unknown_event_is_404_with_the_known_events(api: Api, alice: dict[str, Any]) -> None:
    body = assert_problem(
        api.client.post(url(alice, "/events/explode"), headers=bearer(alice["access_token"])), 404, "unknown_event"
    )
    assert body["known_events"] == [
        "authenticate",
        "activate",
        "connect",
        "disconnect",
        "drop",
        "grace_elapsed",
        "expire",
        "refresh",
        "logout",
        "revoke",
        "end",
    ]


def test_a_refused_transition_is_409_with_state_event_and_allowed_events(api: Api, alice: dict[str, Any]) -> None:
    """An admin revoking a session that already ended: the machine refuses, and says why."""
    api.client.post("/api/auth/logout", headers=bearer(alice["access_token"])).raise_for_status()
    body = assert_problem(
        api.client.post(url(alice, "/events/revoke"), headers=api.admin_headers()), 409, "transition_not_allowed"
    )
    assert (body["state"], body["event"], body["allowed_events"]) == ("closed", "revoke", [])


def test_refresh_here_fails_its_guard_because_only_the_refresh_route_presents_the_token(
    api: Api, alice: dict[str, Any]
) -> None:
    body = assert_problem(
        api.client.post(url(alice, "/events/refresh"), headers=bearer(alice["access_token"])), 409, "guard_failed"
    )
    assert body["guards"] == ["refresh_token_current"]
    assert "the refresh token presented is the current one" in body["detail"]
    assert api.client.get(url(alice), headers=bearer(alice["access_token"])).json()["version"] == 2


# -- POST /api/session/{id}/ws-ticket ----------------------------------------------------


def test_a_ticket_is_issued_for_the_own_session(api: Api, alice: dict[str, Any]) -> None:
    response = api.client.post(url(alice, "/ws-ticket"), headers=bearer(alice["access_token"]))
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"ticket", "expires_in"}
    assert body["expires_in"] == 30
    assert body["ticket"].startswith("sft_")
    second = api.client.post(url(alice, "/ws-ticket"), headers=bearer(alice["access_token"])).json()
    assert second["ticket"] != body["ticket"]


def test_an_admin_gets_no_ticket_for_someone_elses_session(api: Api, alice: dict[str, Any]) -> None:
    """A ticket binds to the holder's own session: viewing rights are not connecting rights."""
    assert_problem(api.client.post(url(alice, "/ws-ticket"), headers=api.admin_headers()), 404, "session_not_found")


def test_no_ticket_without_credentials(api: Api, alice: dict[str, Any]) -> None:
    assert_problem(api.client.post(url(alice, "/ws-ticket")), 401, "credentials_missing")
