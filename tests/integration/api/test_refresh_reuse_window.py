"""Refreshing twice with one token is a race, not theft, inside the reuse window; outside it, or older, it is theft.

Tabs sharing one refresh token, or a client retrying after a lost response,
present the token its successor just replaced. Within
``SESSIONFLOW_REFRESH_REUSE_WINDOW`` (10 s) and only for that immediate
predecessor, the caller gets credentials of the current generation and
nothing is revoked; history and metrics say which kind of refresh it was.
Real concurrency over real sockets is tests/integration/ws/test_refresh_race.py.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prometheus_client import REGISTRY

from sessionflow.persistence import queries
from tests.integration.api.conftest import Api, assert_problem, bearer

TEN_SECONDS = timedelta(seconds=10)


def _refresh(api: Api, token: str) -> Any:
    return api.client.post("/api/auth/refresh", json={"refresh_token": token})


def _works(api: Api, login: dict[str, Any], access_token: str) -> bool:
    return api.client.get(f"/api/session/{login['session_id']}", headers=bearer(access_token)).status_code == 200


def _refreshes(outcome: str) -> float:
    return REGISTRY.get_sample_value("sessionflow_refreshes_total", {"outcome": outcome}) or 0.0


def test_the_predecessor_inside_the_window_gets_working_credentials_and_revokes_nothing(api: Api) -> None:
    login = api.session_for(api.alice)
    graced_before = _refreshes("within_grace")
    first = _refresh(api, login["refresh_token"])
    assert first.status_code == 200, first.text
    api.clock.advance(timedelta(seconds=9))
    second = _refresh(api, login["refresh_token"])
    assert second.status_code == 200, second.text

    assert _works(api, login, first.json()["access_token"])
    assert _works(api, login, second.json()["access_token"])
    events = [(e.event, e.detail) for e in queries.history(api.ctx.db, "session", login["session_id"])]
    assert events[-2:] == [("refresh", None), ("refresh", {"refresh_token": "reused_within_grace"})]
    assert "revoke" not in [event for event, _ in events]
    assert _refreshes("within_grace") == graced_before + 1
    # Either new refresh token carries the session on; the one rotated first is now the predecessor.
    assert _refresh(api, second.json()["refresh_token"]).status_code == 200


def test_a_replay_after_the_window_revokes_the_session(api: Api) -> None:
    login = api.session_for(api.alice)
    fresh = _refresh(api, login["refresh_token"]).json()
    api.clock.advance(TEN_SECONDS)
    assert_problem(_refresh(api, login["refresh_token"]), 401, "refresh_token_reused")
    assert_problem(
        api.client.get(f"/api/session/{login['session_id']}", headers=bearer(fresh["access_token"])),
        401,
        "session_revoked",
    )


def test_a_grandparent_inside_the_window_revokes_the_session(api: Api) -> None:
    """Only the token the current one replaced is tolerated: a grace that reached further back let thieves in."""
    login = api.session_for(api.alice)
    child = _refresh(api, login["refresh_token"]).json()
    grandchild = _refresh(api, child["refresh_token"]).json()
    assert_problem(_refresh(api, login["refresh_token"]), 401, "refresh_token_reused")
    assert not _works(api, login, grandchild["access_token"])
    assert queries.history(api.ctx.db, "session", login["session_id"])[-1].event == "revoke"


def test_a_zero_window_makes_every_reuse_theft(make_api: Any) -> None:
    api: Api = make_api(refresh_reuse_window=timedelta(0))
    login = api.session_for(api.alice)
    assert _refresh(api, login["refresh_token"]).status_code == 200
    assert_problem(_refresh(api, login["refresh_token"]), 401, "refresh_token_reused")


def test_a_logged_out_session_stays_closed_whatever_the_window(api: Api) -> None:
    """The predecessor of a token retired by logout finds the session closed: 401 session_closed, no revoke."""
    login = api.session_for(api.alice)
    api.client.post("/api/auth/logout", headers=bearer(login["access_token"])).raise_for_status()
    assert_problem(_refresh(api, login["refresh_token"]), 401, "session_closed")
    assert queries.history(api.ctx.db, "session", login["session_id"])[-1].event == "logout"
