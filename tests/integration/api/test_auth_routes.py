"""Session creation, login, refresh and logout over HTTP: success and every failure clients meet."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import timedelta

import pytest

from sessionflow.api.errors import InvalidCredentials, RateLimited
from sessionflow.persistence import queries
from sessionflow.persistence.users import create_user
from tests.integration.api.conftest import PASSWORD, Api, assert_problem, bearer


def history(api: Api, session_id: str) -> list[tuple[str, str, str]]:
    """(event, actor, to_state) of the session, read from the store."""
    return [(e.event, e.actor, e.to_state) for e in queries.history(api.ctx.db, "session", session_id)]


# -- POST /api/session/create ---------------------------------------------------------


def test_create_returns_an_anonymous_session_and_its_token(api: Api) -> None:
    response = api.client.post("/api/session/create")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"session_id", "state", "anonymous_token"}
    assert body["state"] == "anonymous"
    shown = api.client.get(f"/api/session/{body['session_id']}", headers=bearer(body["anonymous_token"]))
    assert shown.status_code == 200, shown.text
    assert (shown.json()["state"], shown.json()["user_id"]) == ("anonymous", None)


def test_an_anonymous_token_cannot_get_a_websocket_ticket(api: Api) -> None:
    """An anonymous session is not connectable: 409 with a code that says to finish login."""
    anonymous = api.create_anonymous()
    response = api.client.post(
        f"/api/session/{anonymous['session_id']}/ws-ticket", headers=bearer(anonymous["anonymous_token"])
    )
    assert_problem(response, 409, "session_not_connectable")


# -- POST /api/auth/login --------------------------------------------------------------


def test_password_login_creates_an_active_session_through_authenticate_and_activate(api: Api) -> None:
    response = api.client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "session_id",
        "state",
        "access_token",
        "refresh_token",
        "token_type",
        "expires_in",
        "refresh_expires_in",
    }
    assert (body["state"], body["token_type"], body["expires_in"], body["refresh_expires_in"]) == (
        "session_active",
        "Bearer",
        15 * 60,
        7 * 24 * 3600,
    )
    assert history(api, body["session_id"]) == [
        ("authenticate", "server", "authenticated"),
        ("activate", "server", "session_active"),
    ]
    shown = api.client.get(f"/api/session/{body['session_id']}", headers=bearer(body["access_token"]))
    assert shown.json()["user_id"] == str(api.alice.id)


def test_login_upgrades_the_given_anonymous_session(api: Api) -> None:
    """Same session id; the anonymous token stops working (no fixation) and cannot upgrade twice."""
    anonymous = api.create_anonymous()
    upgrade = {"session_id": anonymous["session_id"], "anonymous_token": anonymous["anonymous_token"]}
    body = api.login(**upgrade)
    assert body["session_id"] == anonymous["session_id"]
    assert body["state"] == "session_active"
    assert history(api, body["session_id"]) == [
        ("authenticate", "server", "authenticated"),
        ("activate", "server", "session_active"),
    ]

    stale = api.client.get(f"/api/session/{anonymous['session_id']}", headers=bearer(anonymous["anonymous_token"]))
    assert_problem(stale, 401, "token_superseded")
    assert api.client.get(f"/api/session/{body['session_id']}", headers=bearer(body["access_token"])).status_code == 200

    again = api.client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD, **upgrade})
    assert_problem(again, 401, "token_superseded")


@pytest.mark.parametrize(
    "upgrade",
    [
        pytest.param(lambda anon, other: {"session_id": anon["session_id"]}, id="session_id_without_token"),
        pytest.param(lambda anon, other: {"anonymous_token": anon["anonymous_token"]}, id="token_without_session_id"),
        pytest.param(
            lambda anon, other: {"session_id": other["session_id"], "anonymous_token": anon["anonymous_token"]},
            id="token_of_another_session",
        ),
        pytest.param(
            lambda anon, other: {"session_id": anon["session_id"], "anonymous_token": "x.y.z"}, id="forged_token"
        ),
    ],
)
def test_an_upgrade_needs_the_sessions_own_anonymous_token(api: Api, upgrade: Callable[..., dict[str, str]]) -> None:
    """Checked before the password, so no argon2 cost: 401 token_invalid; the anonymous session is untouched."""
    anonymous, other = api.create_anonymous(), api.create_anonymous()
    response = api.client.post(
        "/api/auth/login", json={"username": "alice", "password": PASSWORD, **upgrade(anonymous, other)}
    )
    assert response.status_code == 401
    assert response.json()["code"] in {"token_invalid", "token_malformed"}
    shown = api.client.get(f"/api/session/{anonymous['session_id']}", headers=bearer(anonymous["anonymous_token"]))
    assert shown.json()["state"] == "anonymous"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"username": "alice"}, "invalid_request"),
        ({"password": PASSWORD}, "invalid_request"),
        ({"username": "", "password": ""}, "invalid_request"),
        ({"username": "alice", "password": PASSWORD, "id_token": "x.y.z"}, "invalid_request"),
        ({"id_token": "x.y.z"}, "oidc_not_configured"),
    ],
)
def test_incomplete_login_requests_are_400(api: Api, payload: dict[str, str], code: str) -> None:
    assert_problem(api.client.post("/api/auth/login", json=payload), 400, code)


def test_login_failures_are_uniform_and_cost_the_same(make_api: Callable[..., Api], password_hash: str) -> None:
    """Unknown user, wrong password, disabled user: the same 401 body and headers, and about the same time.

    Each verifies one argon2 hash (a dummy one for the unknown user), so timing does not enumerate users.
    """
    api = make_api(login_limit_per_user=100, login_limit_per_address=100)
    carol = create_user(api.ctx.db, "carol", password_hash, is_admin=False, now=api.clock.now())
    api.client.post(f"/api/admin/users/{carol.id}/disable", headers=api.admin_headers()).raise_for_status()
    attempts = {
        "unknown_user": {"username": "mallory", "password": PASSWORD},
        "wrong_password": {"username": "alice", "password": PASSWORD + "!"},
        "disabled_user": {"username": "carol", "password": PASSWORD},
    }
    api.client.post("/api/auth/login", json=attempts["wrong_password"])  # warm up: first-use costs are not the point
    bodies: dict[str, tuple[int, dict[str, object], str]] = {}
    samples: dict[str, list[float]] = {name: [] for name in attempts}
    for _ in range(3):  # interleaved, so a burst of load elsewhere on the machine hits every kind alike
        for name, payload in attempts.items():
            started = time.perf_counter()
            response = api.client.post("/api/auth/login", json=payload)
            samples[name].append(time.perf_counter() - started)
            bodies[name] = (response.status_code, response.json(), response.headers["www-authenticate"])
    times = {name: statistics.median(values) for name, values in samples.items()}
    assert bodies["unknown_user"] == bodies["wrong_password"] == bodies["disabled_user"]
    status, body, _ = bodies["unknown_user"]
    assert (status, body["code"]) == (401, "login_failed")
    slowest, fastest = max(times.items(), key=lambda kv: kv[1]), min(times.items(), key=lambda kv: kv[1])
    assert slowest[1] < 3 * fastest[1], f"{slowest} vs {fastest} (median seconds): timing tells them apart"


def test_a_password_too_long_to_be_real_fails_like_any_other(api: Api) -> None:
    response = api.client.post("/api/auth/login", json={"username": "alice", "password": "x" * 5000})
    assert_problem(response, 401, "login_failed")


def test_login_is_rate_limited_per_username_across_workers(make_api: Callable[..., Api]) -> None:
    """Counts live in the database: a second app on it (another worker) sees them."""
    limits = {"login_limit_per_user": 2, "login_limit_per_address": 100}
    first, second = make_api(**limits), make_api(**limits)
    wrong = {"username": "alice", "password": "wrong password"}
    assert_problem(first.client.post("/api/auth/login", json=wrong), 401, "login_failed")
    assert_problem(second.client.post("/api/auth/login", json=wrong), 401, "login_failed")
    for app in (first, second):
        # Even the right password: the limit is checked before the password.
        response = app.client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
        body = assert_problem(response, 429, "rate_limited")
        assert 1 <= body["retry_after"] <= 61
        assert response.headers["retry-after"] == str(body["retry_after"])
    # Another username from the same address is not affected.
    assert second.login("root")["state"] == "session_active"
    first.clock.advance(timedelta(seconds=61))
    assert first.login()["state"] == "session_active"


def test_login_is_rate_limited_per_address_across_workers(make_api: Callable[..., Api]) -> None:
    """Different usernames from one address share the address's budget, on every worker."""
    limits = {"login_limit_per_user": 100, "login_limit_per_address": 2}
    first, second = make_api(**limits), make_api(**limits)
    assert_problem(
        first.client.post("/api/auth/login", json={"username": "nobody1", "password": PASSWORD}), 401, "login_failed"
    )
    assert_problem(
        second.client.post("/api/auth/login", json={"username": "nobody2", "password": PASSWORD}), 401, "login_failed"
    )
    response = first.client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    body = assert_problem(response, 429, "rate_limited")
    assert response.headers["retry-after"] == str(body["retry_after"])
    assert_problem(
        second.client.post("/api/auth/login", json={"username": "root", "password": PASSWORD}), 429, "rate_limited"
    )


def test_failed_guesses_from_one_address_do_not_lock_the_user_out_elsewhere(make_api: Callable[..., Api]) -> None:
    """Issue 11, defect 9: wrong guesses block their own address for that username, never the real user's."""
    api = make_api(login_limit_per_user=2, login_limit_per_address=100)
    flows = api.ctx.flows
    for _ in range(2):
        with pytest.raises(InvalidCredentials):
            flows.login_password("alice", "wrong password", client_address="203.0.113.66")
    with pytest.raises(RateLimited):
        flows.login_password("alice", PASSWORD, client_address="203.0.113.66")
    issued = flows.login_password("alice", PASSWORD, client_address="198.51.100.7")
    assert issued.state == "session_active"


def test_successful_logins_do_not_count_toward_the_address_limit(make_api: Callable[..., Api]) -> None:
    """Issue 11, defect 9: an office behind one NAT address logs in as often as it needs; failures still count."""
    api = make_api(login_limit_per_user=100, login_limit_per_address=3)
    for _ in range(5):
        assert api.login()["state"] == "session_active"
    for name in ("nobody1", "nobody2", "nobody3"):
        assert_problem(api.client.post("/api/auth/login", json={"username": name, "password": "x"}), 401)
    response = api.client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    assert_problem(response, 429, "rate_limited")


def test_failures_from_many_addresses_meet_the_account_ceiling(make_api: Callable[..., Api]) -> None:
    """A guessing attack spread over addresses is capped per account (ASVS: at most 100 failures an hour)."""
    api = make_api(login_limit_per_user=100, login_limit_per_address=100, login_limit_per_account=3)
    flows = api.ctx.flows
    for i in range(3):
        with pytest.raises(InvalidCredentials):
            flows.login_password("alice", "wrong password", client_address=f"203.0.113.{i}")
    with pytest.raises(RateLimited):
        flows.login_password("alice", PASSWORD, client_address="198.51.100.7")
    api.clock.advance(timedelta(hours=1, seconds=1))
    assert flows.login_password("alice", PASSWORD, client_address="198.51.100.7").state == "session_active"


# -- POST /api/auth/refresh ------------------------------------------------------------


def test_refresh_rotates_every_credential(api: Api) -> None:
    login = api.session_for(api.alice)
    response = api.client.post("/api/auth/refresh", json={"refresh_token": login["refresh_token"]})
    assert response.status_code == 200, response.text
    fresh = response.json()
    assert fresh["session_id"] == login["session_id"]
    assert fresh["state"] == "session_active"
    assert fresh["token_type"] == "Bearer"
    assert fresh["access_token"] != login["access_token"]
    assert fresh["refresh_token"] != login["refresh_token"]
    old = api.client.get(f"/api/session/{login['session_id']}", headers=bearer(login["access_token"]))
    assert_problem(old, 401, "token_superseded")
    assert (
        api.client.get(f"/api/session/{login['session_id']}", headers=bearer(fresh["access_token"])).status_code == 200
    )
    assert [event for event, _, _ in history(api, login["session_id"])] == ["authenticate", "activate", "refresh"]


def test_reusing_a_rotated_refresh_token_revokes_the_session(api: Api) -> None:
    """Theft detection: once the reuse window is over, 401 refresh_token_reused, history shows revoke (server,
    refresh_token_reuse), and the thief's and the victim's newest credentials stop working at once."""
    login = api.session_for(api.alice)
    fresh = api.client.post("/api/auth/refresh", json={"refresh_token": login["refresh_token"]}).json()
    api.clock.advance(api.ctx.settings.refresh_reuse_window)

    reused = api.client.post("/api/auth/refresh", json={"refresh_token": login["refresh_token"]})
    assert_problem(reused, 401, "refresh_token_reused")

    last = queries.history(api.ctx.db, "session", login["session_id"])[-1]
    assert (last.event, last.actor, last.to_state, last.detail) == (
        "revoke",
        "server",
        "revoked",
        {"reason": "refresh_token_reuse"},
    )
    newest = api.client.get(f"/api/session/{login['session_id']}", headers=bearer(fresh["access_token"]))
    assert_problem(newest, 401, "session_revoked")
    assert api.client.post("/api/auth/refresh", json={"refresh_token": fresh["refresh_token"]}).status_code == 401


def test_refresh_recovers_a_session_expired_from_inactivity(api: Api) -> None:
    login = api.session_for(api.alice)
    api.clock.advance(timedelta(minutes=31))
    stale = api.client.get(f"/api/session/{login['session_id']}", headers=bearer(login["access_token"]))
    assert_problem(stale, 401, "token_expired")
    response = api.client.post("/api/auth/refresh", json={"refresh_token": login["refresh_token"]})
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "session_active"
    assert [event for event, _, _ in history(api, login["session_id"])] == [
        "authenticate",
        "activate",
        "expire",
        "refresh",
    ]


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "sfr_" + "A" * 43, "sfr_" + "A" * 200, "eyJhbGciOiJIUzI1NiJ9.e30.x"],
    ids=["empty", "garbage", "unknown", "oversize", "a_jwt"],
)
def test_refresh_refuses_what_is_not_a_current_refresh_token(api: Api, token: str) -> None:
    assert_problem(api.client.post("/api/auth/refresh", json={"refresh_token": token}), 401, "refresh_token_invalid")


def test_an_expired_refresh_token_is_refused(api: Api) -> None:
    login = api.session_for(api.alice)
    api.clock.advance(timedelta(days=7, seconds=1))
    assert_problem(
        api.client.post("/api/auth/refresh", json={"refresh_token": login["refresh_token"]}),
        401,
        "refresh_token_invalid",
    )


# -- POST /api/auth/logout -------------------------------------------------------------


def test_logout_closes_the_session_and_its_credentials_at_once(api: Api) -> None:
    login = api.session_for(api.alice)
    response = api.client.post("/api/auth/logout", headers=bearer(login["access_token"]))
    assert response.status_code == 200, response.text
    assert response.json() == {"session_id": login["session_id"], "state": "closed"}
    after = api.client.get(f"/api/session/{login['session_id']}", headers=bearer(login["access_token"]))
    assert_problem(after, 401, "session_closed")
    assert_problem(api.client.post("/api/auth/logout", headers=bearer(login["access_token"])), 401, "session_closed")
    refreshed = api.client.post("/api/auth/refresh", json={"refresh_token": login["refresh_token"]})
    assert_problem(refreshed, 401, "session_closed")
    assert history(api, login["session_id"])[-1] == ("logout", "client", "closed")


def test_logout_works_on_a_session_expired_from_inactivity(make_api: Callable[..., Api]) -> None:
    """An expired session can still be ended by its holder (the access token outlives the idle timeout here)."""
    api = make_api(access_token_ttl=timedelta(hours=1))
    login = api.session_for(api.alice)
    api.clock.advance(timedelta(minutes=31))
    assert_problem(
        api.client.get(f"/api/session/{login['session_id']}", headers=bearer(login["access_token"])),
        401,
        "session_expired",
    )
    response = api.client.post("/api/auth/logout", headers=bearer(login["access_token"]))
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "closed"


def test_logout_of_an_anonymous_session(api: Api) -> None:
    anonymous = api.create_anonymous()
    response = api.client.post("/api/auth/logout", headers=bearer(anonymous["anonymous_token"]))
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "closed"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer"}, {"Authorization": "Token abc"}], ids=["none", "empty", "scheme"]
)
def test_logout_without_credentials_is_401(api: Api, headers: dict[str, str]) -> None:
    response = api.client.post("/api/auth/logout", headers=headers)
    assert_problem(response, 401, "credentials_missing")
    assert "www-authenticate" in response.headers
