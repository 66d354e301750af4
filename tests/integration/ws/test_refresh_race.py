"""Ten callers refreshing with one token at the same moment, over real sockets: a race, not a theft.

As browser tabs sharing a refresh token, or a client retrying after a lost
response, do. Against a real ``sessionflow serve`` on SQLite and on
PostgreSQL: no revocation, and every caller ends with an access token that
works and a live WebSocket. The same token presented after the reuse window
still revokes the session.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from tests.integration.ws.conftest import Server, Servers, recv_type

pytestmark = pytest.mark.slow

CALLERS = 10
WINDOW = 2.0  # seconds: short, so that the replay test need not wait long


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def served(request: pytest.FixtureRequest, make_server: Servers) -> Server:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    return make_server(f"race-{request.param}", database_url=url, REFRESH_REUSE_WINDOW=f"{WINDOW:g}")


def _together(served: Server, refresh_token: str) -> list[httpx.Response]:
    """``CALLERS`` refreshes released at once, each on its own connection."""
    barrier = threading.Barrier(CALLERS)
    answers: list[Any] = [None] * CALLERS

    def call(index: int) -> None:
        with httpx.Client(base_url=served.base_url, trust_env=False, timeout=30) as client:
            barrier.wait()
            answers[index] = client.post("/api/auth/refresh", json={"refresh_token": refresh_token})

    threads = [threading.Thread(target=call, args=(i,)) for i in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def test_ten_concurrent_refreshes_of_one_token_revoke_nothing_and_all_end_with_working_credentials(
    served: Server,
) -> None:
    login = served.login()
    answers = _together(served, login.refresh_token)
    assert [answer.status_code for answer in answers] == [200] * CALLERS, [a.text for a in answers]
    history = served.http.get(f"/api/session/{login.session_id}/history", headers=login.headers)
    assert history.status_code == 401  # the login's own access token was superseded by the rotation
    for answer in answers:
        token = answer.json()["access_token"]
        shown = served.http.get(f"/api/session/{login.session_id}", headers={"Authorization": f"Bearer {token}"})
        assert shown.status_code == 200, shown.text
        assert shown.json()["state"] == "session_active"
    events = served.http.get(
        f"/api/session/{login.session_id}/history",
        params={"limit": 100},
        headers={"Authorization": f"Bearer {answers[0].json()['access_token']}"},
    ).json()["items"]
    assert [e["event"] for e in events].count("refresh") == CALLERS
    assert "revoke" not in [e["event"] for e in events]
    # Each caller can open the live channel with what it got.
    bearer = {"Authorization": f"Bearer {answers[-1].json()['access_token']}"}
    with served.connect(headers=bearer) as ws:
        assert recv_type(ws, "welcome")["state"] == "ws_connected"


def test_the_same_token_after_the_window_revokes_the_session(served: Server) -> None:
    login = served.login()
    fresh = served.http.post("/api/auth/refresh", json={"refresh_token": login.refresh_token}).json()
    time.sleep(WINDOW + 0.2)
    replay = served.http.post("/api/auth/refresh", json={"refresh_token": login.refresh_token})
    assert replay.status_code == 401
    assert replay.json()["code"] == "refresh_token_reused"
    shown = served.http.get(
        f"/api/session/{login.session_id}", headers={"Authorization": f"Bearer {fresh['access_token']}"}
    )
    assert shown.json()["code"] == "session_revoked"
