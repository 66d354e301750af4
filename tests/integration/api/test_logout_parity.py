"""The two ways to log out agree in every state of the session machine.

``POST /api/auth/logout`` and ``POST /api/session/{id}/events/logout`` both
fire the machine's ``logout`` for the token's own session: same status, same
problem code, same stored state afterwards, whatever state the session is in.
Each state is reached the way the service reaches it (events, and the clock
for timers); a state the machine gains fails :data:`RECIPES` until a recipe
says how to reach it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from sessionflow.lifecycle import SESSION, Actor, SessionState
from sessionflow.persistence import SESSIONS, sessions
from tests.integration.api.conftest import Api, bearer

S = SessionState


def _logged_in(api: Api) -> tuple[uuid.UUID, str]:
    issued = api.issue(api.alice)
    return issued.session_id, issued.access_token


def _before_login(state: str) -> Callable[[Api], tuple[uuid.UUID, str]]:
    """A session stopped before login finished, with an access token its row accepts (generation 0)."""

    def make(api: Api) -> tuple[uuid.UUID, str]:
        service = api.ctx.service
        with service.transaction() as tx:
            session_id = tx.create(SESSIONS, uuid.uuid4(), {}).id
            sessions.bind_user(tx, session_id, api.alice.id)
            if state == S.AUTHENTICATED:
                tx.fire("session", session_id, "authenticate", actor=Actor.SERVER, facts={"credentials_verified": True})
        return session_id, api.ctx.flows.access.issue(user_id=api.alice.id, session_id=session_id, generation=0)

    return make


def _after(*events: tuple[str, Actor]) -> Callable[[Api], tuple[uuid.UUID, str]]:
    def make(api: Api) -> tuple[uuid.UUID, str]:
        session_id, token = _logged_in(api)
        for event, actor in events:
            api.ctx.service.fire("session", session_id, event, actor=actor)
        return session_id, token

    return make


def _expired(api: Api) -> tuple[uuid.UUID, str]:
    session_id, token = _logged_in(api)
    api.clock.advance(api.ctx.settings.session_idle_timeout)
    return session_id, token


RECIPES: dict[str, Callable[[Api], tuple[uuid.UUID, str]]] = {
    S.ANONYMOUS: _before_login(S.ANONYMOUS),
    S.AUTHENTICATED: _before_login(S.AUTHENTICATED),
    S.SESSION_ACTIVE: _logged_in,
    S.WS_CONNECTED: _after(("connect", Actor.SERVER)),
    S.WS_DISCONNECTED: _after(("connect", Actor.SERVER), ("drop", Actor.SERVER)),
    S.SESSION_EXPIRED: _expired,
    S.CLOSED: _after(("logout", Actor.CLIENT)),
    S.REVOKED: _after(("revoke", Actor.ADMIN)),
}


def test_there_is_a_recipe_for_every_state_of_the_machine() -> None:
    assert set(RECIPES) == set(SESSION.states)


def _outcome(response: httpx.Response) -> tuple[int, str]:
    body: dict[str, Any] = response.json()
    return response.status_code, body.get("code") or body.get("to_state") or body.get("state", "")


@pytest.mark.parametrize("state", SESSION.states)
def test_both_logout_routes_give_the_same_answer_and_leave_the_same_state(
    make_api: Callable[..., Api], state: str
) -> None:
    """With the idle timeout shorter than the access token's life, an expired session's token still verifies."""
    api = make_api(session_idle_timeout=timedelta(minutes=5))
    outcomes, stored = [], []
    for logout in (
        lambda sid, token: api.client.post("/api/auth/logout", headers=bearer(token)),
        lambda sid, token: api.client.post(f"/api/session/{sid}/events/logout", headers=bearer(token)),
    ):
        session_id, token = RECIPES[state](api)
        assert api.ctx.service.get("session", session_id).state == state
        outcomes.append(_outcome(logout(session_id, token)))
        stored.append(api.ctx.service.get("session", session_id).state)
    assert outcomes[0] == outcomes[1], f"in {state}: auth/logout {outcomes[0]}, events/logout {outcomes[1]}"
    assert stored[0] == stored[1]
    if state in SESSION.terminal:
        assert outcomes[0] == (401, f"session_{state}")
    else:
        assert outcomes[0] == (200, "closed")
        assert stored[0] == "closed"
