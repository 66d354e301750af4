"""Administration over HTTP: listing sessions, revoking one or all of a user's, disabling a user."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from sessionflow.persistence import queries, users
from sessionflow.persistence.users import create_user
from tests.integration.api.conftest import PASSWORD, Api, User, assert_problem, bearer

ADMIN_ROUTES = [
    ("GET", "/api/admin/sessions"),
    ("POST", "/api/admin/sessions/{session}/revoke"),
    ("POST", "/api/admin/users/{user}/revoke-sessions"),
    ("POST", "/api/admin/users/{user}/disable"),
]


def admin_url(template: str, api: Api, session: dict[str, Any]) -> str:
    return template.format(session=session["session_id"], user=api.alice.id)


@pytest.mark.parametrize(("method", "template"), ADMIN_ROUTES, ids=[p for _, p in ADMIN_ROUTES])
def test_a_non_admin_is_403_admin_required_and_nothing_happens(api: Api, method: str, template: str) -> None:
    alice = api.session_for(api.alice)
    anonymous = api.create_anonymous()
    for token in (alice["access_token"], anonymous["anonymous_token"]):
        response = api.client.request(method, admin_url(template, api, alice), headers=bearer(token))
        assert_problem(response, 403, "admin_required")
    assert (
        api.client.get(f"/api/session/{alice['session_id']}", headers=bearer(alice["access_token"])).json()["state"]
        == "session_active"
    )
    assert users.by_id(api.ctx.db, api.alice.id).enabled


@pytest.mark.parametrize(("method", "template"), ADMIN_ROUTES, ids=[p for _, p in ADMIN_ROUTES])
def test_admin_routes_need_credentials(api: Api, method: str, template: str) -> None:
    alice = api.session_for(api.alice)
    assert_problem(api.client.request(method, admin_url(template, api, alice)), 401, "credentials_missing")


def test_sessions_are_listed_by_state_and_user_and_paginated(api: Api) -> None:
    admin_session = api.admin_headers()
    created = [api.admin_session_id()]
    for _ in range(3):
        api.clock.advance(timedelta(seconds=1))
        created.append(api.session_for(api.alice)["session_id"])
    alice_sessions = set(created[1:])
    api.clock.advance(timedelta(seconds=1))
    anonymous = api.create_anonymous()["session_id"]
    created.append(anonymous)

    everything = api.client.get("/api/admin/sessions", headers=admin_session)
    assert everything.status_code == 200, everything.text
    all_ids = [item["session_id"] for item in everything.json()["items"]]
    assert all_ids == created[::-1], "newest first"
    assert everything.json()["next"] is None
    item = next(i for i in everything.json()["items"] if i["session_id"] in alice_sessions)
    assert item == {
        "session_id": item["session_id"],
        "state": "session_active",
        "version": 2,
        "user_id": str(api.alice.id),
        "username": "alice",
        "created_at": item["created_at"],
        "updated_at": item["created_at"],
    }

    by_state = api.client.get("/api/admin/sessions", params={"state": "anonymous"}, headers=admin_session).json()
    assert [i["session_id"] for i in by_state["items"]] == [anonymous]
    by_user = api.client.get("/api/admin/sessions", params={"user": "alice"}, headers=admin_session).json()
    assert {i["session_id"] for i in by_user["items"]} == alice_sessions
    both = api.client.get(
        "/api/admin/sessions", params={"user": "alice", "state": "closed"}, headers=admin_session
    ).json()
    assert both == {"items": [], "next": None}
    nobody = api.client.get("/api/admin/sessions", params={"user": "nobody"}, headers=admin_session).json()
    assert nobody == {"items": [], "next": None}

    pages, after = [], None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"after": after} if after else {})
        page = api.client.get("/api/admin/sessions", params=params, headers=admin_session).json()
        pages.append([i["session_id"] for i in page["items"]])
        after = page["next"]
        if after is None:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [sid for page in pages for sid in page] == all_ids


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"state": "sleeping"}, 422, "unknown_state"),
        ({"limit": 0}, 400, "invalid_request"),
        ({"limit": 501}, 400, "invalid_request"),
        ({"after": "not-a-uuid"}, 400, "invalid_request"),
    ],
    ids=["unknown_state", "limit_0", "limit_501", "after_not_uuid"],
)
def test_listing_refuses_bad_filters(api: Api, params: dict[str, str | int], status: int, code: str) -> None:
    assert_problem(api.client.get("/api/admin/sessions", params=params, headers=api.admin_headers()), status, code)


def test_listing_accepts_the_documented_maximum_page(api: Api) -> None:
    """Issue 11, defect 6: ``limit=500`` (the documented maximum) is a page, not a 422."""
    response = api.client.get("/api/admin/sessions", params={"limit": 500}, headers=api.admin_headers())
    assert response.status_code == 200, response.text
    assert response.json()["items"]


def test_revoking_one_session_ends_it_at_once_and_records_the_reason(api: Api) -> None:
    alice, other = api.session_for(api.alice), api.session_for(api.alice)
    response = api.client.post(
        f"/api/admin/sessions/{alice['session_id']}/revoke",
        headers=api.admin_headers(),
        json={"reason": "stolen phone"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"revoked": [alice["session_id"]]}
    assert_problem(
        api.client.get(f"/api/session/{alice['session_id']}", headers=bearer(alice["access_token"])),
        401,
        "session_revoked",
    )
    assert_problem(
        api.client.post("/api/auth/refresh", json={"refresh_token": alice["refresh_token"]}), 401, "session_revoked"
    )
    last = queries.history(api.ctx.db, "session", alice["session_id"])[-1]
    assert (last.event, last.actor, last.detail) == ("revoke", "admin", {"reason": "stolen phone"})
    # Her other session is untouched.
    assert (
        api.client.get(f"/api/session/{other['session_id']}", headers=bearer(other["access_token"])).status_code == 200
    )

    again = api.client.post(f"/api/admin/sessions/{alice['session_id']}/revoke", headers=api.admin_headers())
    body = assert_problem(again, 409, "transition_not_allowed")
    assert body["state"] == "revoked"


def test_revoking_without_a_body_uses_a_default_reason(api: Api) -> None:
    alice = api.session_for(api.alice)
    assert (
        api.client.post(f"/api/admin/sessions/{alice['session_id']}/revoke", headers=api.admin_headers()).status_code
        == 200
    )
    assert queries.history(api.ctx.db, "session", alice["session_id"])[-1].detail == {"reason": "admin"}


def test_revoking_an_unknown_session_is_404(api: Api) -> None:
    assert_problem(
        api.client.post(f"/api/admin/sessions/{uuid.uuid4()}/revoke", headers=api.admin_headers()),
        404,
        "session_not_found",
    )


def test_revoking_all_of_a_users_sessions(api: Api) -> None:
    """Every open session of alice is revoked; anonymous and other users' sessions are not; she may log in again."""
    sessions = [api.session_for(api.alice) for _ in range(2)]
    anonymous = api.create_anonymous()
    response = api.client.post(
        f"/api/admin/users/{api.alice.id}/revoke-sessions",
        headers=api.admin_headers(),
        json={"reason": "password reset"},
    )
    assert response.status_code == 200, response.text
    assert sorted(response.json()["revoked"]) == sorted(s["session_id"] for s in sessions)
    for session in sessions:
        stale = api.client.get(f"/api/session/{session['session_id']}", headers=bearer(session["access_token"]))
        assert_problem(stale, 401, "session_revoked")
    assert (
        api.client.get(
            f"/api/session/{anonymous['session_id']}", headers=bearer(anonymous["anonymous_token"])
        ).status_code
        == 200
    )
    assert (
        api.client.get("/api/admin/sessions", headers=api.admin_headers()).status_code == 200
    )  # the admin's own session lives
    assert api.login()["state"] == "session_active"
    # Nothing left to revoke: an empty list, not an error.
    again = api.client.post(f"/api/admin/users/{api.alice.id}/revoke-sessions", headers=api.admin_headers())
    assert len(again.json()["revoked"]) == 1  # only the session of the login just now


def test_disabling_a_user_revokes_their_sessions_and_blocks_login(api: Api) -> None:
    alice = api.session_for(api.alice)
    response = api.client.post(f"/api/admin/users/{api.alice.id}/disable", headers=api.admin_headers())
    assert response.status_code == 200, response.text
    assert response.json() == {"revoked": [alice["session_id"]]}
    assert_problem(
        api.client.get(f"/api/session/{alice['session_id']}", headers=bearer(alice["access_token"])),
        401,
        "session_revoked",
    )
    assert queries.history(api.ctx.db, "session", alice["session_id"])[-1].detail == {"reason": "user_disabled"}
    login = api.client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    assert_problem(login, 401, "login_failed")


@pytest.mark.parametrize("action", ["revoke-sessions", "disable"])
def test_acting_on_an_unknown_user_is_404(api: Api, action: str) -> None:
    assert_problem(
        api.client.post(f"/api/admin/users/{uuid.uuid4()}/{action}", headers=api.admin_headers()), 404, "user_not_found"
    )


def test_a_disabled_admin_loses_admin_access_at_once(api: Api) -> None:
    """Disabling revokes the admin's sessions, so the next admin request is refused."""
    deputy = create_user(api.ctx.db, "deputy", None, is_admin=True, now=api.clock.now())
    deputy_session = api.session_for(User(deputy.id, deputy.username))
    assert api.client.get("/api/admin/sessions", headers=bearer(deputy_session["access_token"])).status_code == 200
    api.client.post(f"/api/admin/users/{deputy.id}/disable", headers=api.admin_headers()).raise_for_status()
    assert_problem(
        api.client.get("/api/admin/sessions", headers=bearer(deputy_session["access_token"])), 401, "session_revoked"
    )
