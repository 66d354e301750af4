"""A model-based test: Hypothesis drives the real API over real sockets, the lifecycle definitions are the model.

Random interleavings of logins, tabs connecting and closing or dropping, refreshes (single, replayed
within the reuse window, two at once, a stolen old token), logouts, admin revocations and jumps past
the reconnect grace run against a real server on SQLite and on PostgreSQL. The model is
:data:`~sessionflow.lifecycle.SESSION` itself: each step's expected state is the destination its
transition table gives. After every step the persisted state, the gapless history, the live sockets
and the credentials must agree with the model.

Bounded in CI; ``SESSIONFLOW_TEST_MODEL_EXAMPLES`` and ``SESSIONFLOW_TEST_MODEL_STEPS`` run it longer.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule, run_state_machine_as_test
from sqlalchemy import select
from websockets.sync.client import ClientConnection

from sessionflow.api.problems import close_code_for_state
from sessionflow.lifecycle import SESSION
from sessionflow.persistence.models import Connection as ConnectionRow
from sessionflow.persistence.models import Session as SessionRow
from sessionflow.persistence.models import TransitionRecord
from tests.integration.ws.conftest import Login, Server, Servers, abort, expect_close, recv_type

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("SESSIONFLOW_TEST_MODEL_EXAMPLES", "8"))
STEPS = int(os.environ.get("SESSIONFLOW_TEST_MODEL_STEPS", "30"))
GRACE = 1.0  # SESSIONFLOW_SESSION_RECONNECT_GRACE of the test servers (tests/integration/ws/conftest.py)
REPLAY_WITHIN = 7.0  # seconds: well inside the default refresh reuse window (10 s)


def dest(state: str, event: str) -> str:
    """The model: where ``event`` takes a session in ``state``, by the session machine's transition table."""
    for transition in SESSION.transitions:
        if transition.event == event and state in transition.sources:
            return transition.dest or state
    raise AssertionError(f"the definition allows no {event} in {state}")


@dataclass
class Tab:
    ws: ClientConnection
    connection_id: str


@dataclass
class Modelled:
    """One session as the model sees it."""

    login: Login
    state: str
    tabs: list[Tab] = field(default_factory=list)
    older_refresh_tokens: list[str] = field(default_factory=list)  # rotated out, oldest first
    dropped_at: float | None = None  # when its last tab dropped, while the grace runs
    rotated_at: float = 0.0  # when its refresh token last rotated

    @property
    def live(self) -> bool:
        return self.state not in SESSION.terminal


class SessionModel(RuleBasedStateMachine):
    server: ClassVar[Server]
    steps: ClassVar[list[int]] = []

    sessions = Bundle("sessions")

    def __init__(self) -> None:
        super().__init__()
        self.all: list[Modelled] = []
        self.sockets = contextlib.ExitStack()  # websockets wants its connections entered
        SessionModel.steps.append(0)

    def _step(self) -> None:
        SessionModel.steps[-1] += 1

    # -- rules --------------------------------------------------------------------------------------

    @rule(target=sessions)
    def login(self) -> Modelled:
        self._step()
        session = Modelled(self.server.login(), SESSION.initial)
        for event in ("authenticate", "activate"):
            session.state = dest(session.state, event)
        self.all.append(session)
        return session

    @rule(session=sessions)
    def open_tab(self, session: Modelled) -> None:
        self._step()
        ws = self.sockets.enter_context(self.server.connect(headers=session.login.headers))
        if session.live and close_code_for_state(session.state) is None:
            welcome = recv_type(ws, "welcome")
            session.state = dest(session.state, "connect") if not session.tabs else session.state
            assert welcome["state"] == session.state
            session.tabs.append(Tab(ws, welcome["connection_id"]))
            session.dropped_at = None
        else:
            expect_close(ws, 4401 if not session.live else close_code_for_state(session.state)[0])  # type: ignore[index]
            ws.close()

    @rule(session=sessions, clean=st.booleans())
    def close_tab(self, session: Modelled, clean: bool) -> None:
        if not session.tabs:
            return
        self._step()
        tab = session.tabs.pop()
        if clean:
            tab.ws.close()
        else:
            abort(tab.ws)
        self.server.wait_connection(tab.connection_id, "closed" if clean else "dropped", close_recorded=clean)
        if not session.tabs:
            session.state = dest(session.state, "disconnect" if clean else "drop")
            session.dropped_at = None if clean else time.monotonic()

    @rule(session=sessions)
    def refresh(self, session: Modelled) -> None:
        if not session.live:
            return
        self._step()
        self._refreshed(session, self._post_refresh(session.login.refresh_token))

    @rule(session=sessions)
    def refresh_replayed_within_the_window(self, session: Modelled) -> None:
        """A retry after a lost answer: the token just rotated out, again, within the reuse window."""
        if (
            not session.live
            or not session.older_refresh_tokens
            or time.monotonic() - session.rotated_at > REPLAY_WITHIN
        ):
            return
        self._step()
        response = self._post_refresh(session.older_refresh_tokens[-1])
        assert response.status_code == 200, response.text
        session.login.access_token = response.json()["access_token"]
        session.login.refresh_token = response.json()["refresh_token"]

    @rule(session=sessions)
    def refresh_twice_at_once(self, session: Modelled) -> None:
        """Two tabs refresh with the same token at the same moment: both get credentials, nothing is revoked."""
        if not session.live:
            return
        self._step()
        token = session.login.refresh_token
        answers: list[httpx.Response] = []
        threads = [threading.Thread(target=lambda: answers.append(self._post_refresh(token))) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        self._refreshed(session, answers[0])  # the race's loser got a pair of the same generation: both work

    @rule(session=consumes(sessions))
    def steal_an_old_refresh_token(self, session: Modelled) -> None:
        """A token two rotations old is theft: the session is revoked, its sockets closed 4403."""
        if not session.live or len(session.older_refresh_tokens) < 2:
            return
        self._step()
        response = self._post_refresh(session.older_refresh_tokens[-2])
        assert response.status_code == 401, response.text
        self._ended(session, "revoke")

    @rule(session=consumes(sessions))
    def logout(self, session: Modelled) -> None:
        if not session.live:
            return
        self._step()
        response = self.server.logout(session.login)
        assert response.status_code == 200, response.text
        self._ended(session, "logout")

    @rule(session=consumes(sessions))
    def admin_revokes(self, session: Modelled) -> None:
        if not session.live:
            return
        self._step()
        response = self.server.revoke(session.login.session_id)
        assert response.status_code == 200, response.text
        self._ended(session, "revoke")

    @rule()
    def clock_passes_the_reconnect_grace(self) -> None:
        """Time passes beyond the grace: every session whose last tab dropped is active again (grace_elapsed)."""
        waiting = [s for s in self.all if s.dropped_at is not None and s.live]
        if not waiting:
            return
        self._step()
        time.sleep(max(0.0, max(s.dropped_at or 0 for s in waiting) + GRACE + 0.3 - time.monotonic()))
        for session in waiting:
            session.state = dest(session.state, "grace_elapsed")
            session.dropped_at = None
            self.server.wait_state(session.login.session_id, session.state)

    # -- helpers ------------------------------------------------------------------------------------

    def _post_refresh(self, token: str) -> httpx.Response:
        with httpx.Client(base_url=self.server.base_url, trust_env=False, timeout=10) as http:
            return http.post("/api/auth/refresh", json={"refresh_token": token})

    def _refreshed(self, session: Modelled, response: httpx.Response) -> None:
        assert response.status_code == 200, response.text
        body = response.json()
        session.older_refresh_tokens.append(session.login.refresh_token)
        session.login.access_token, session.login.refresh_token = body["access_token"], body["refresh_token"]
        session.rotated_at = time.monotonic()
        session.state = dest(session.state, "refresh")

    def _ended(self, session: Modelled, event: str) -> None:
        session.state = dest(session.state, event)
        code = close_code_for_state(session.state)
        assert code is not None
        for tab in session.tabs:
            expect_close(tab.ws, code[0])
            tab.ws.close()
            # The handler records a close after sending it: the row follows the frame.
            self.server.wait_connection(tab.connection_id, "closed", close_recorded=True)
        session.tabs.clear()
        session.dropped_at = None

    # -- invariants ---------------------------------------------------------------------------------

    @invariant()
    def store_sockets_and_credentials_agree_with_the_model(self) -> None:
        if not self.all:
            return
        db = self.server.db
        assert db is not None
        ids = [uuid.UUID(s.login.session_id) for s in self.all]
        with db.engine.connect() as connection:
            rows = {
                r.id: (r.state, r.version)
                for r in connection.execute(
                    select(SessionRow.id, SessionRow.state, SessionRow.version).where(SessionRow.id.in_(ids))
                )
            }
            seqs: dict[uuid.UUID, list[int]] = {i: [] for i in ids}
            for instance_id, seq in connection.execute(
                select(TransitionRecord.instance_id, TransitionRecord.seq)
                .where(TransitionRecord.machine == SESSION.name, TransitionRecord.instance_id.in_(ids))
                .order_by(TransitionRecord.instance_id, TransitionRecord.seq)
            ):
                seqs[instance_id].append(seq)
            open_rows: dict[uuid.UUID, int] = dict.fromkeys(ids, 0)
            for (session_id,) in connection.execute(
                select(ConnectionRow.session_id).where(ConnectionRow.session_id.in_(ids), ConnectionRow.state == "open")
            ):
                open_rows[session_id] += 1
        for session, session_id in zip(self.all, ids, strict=True):
            state, version = rows[session_id]
            in_grace = session.dropped_at is not None and time.monotonic() - session.dropped_at > GRACE - 0.3
            if not in_grace:  # the sweeper may be firing grace_elapsed right now
                assert state == session.state, f"{session_id}: stored {state}, model {session.state}"
            assert seqs[session_id] == list(range(1, version + 1)), f"{session_id}: history {seqs[session_id]}"
            assert open_rows[session_id] == len(session.tabs), f"{session_id}: {open_rows[session_id]} open rows"
            answer = self.server.http.get(f"/api/session/{session_id}", headers=session.login.headers)
            if session.live:
                assert answer.status_code == 200, answer.text
            else:
                assert answer.status_code == 401, answer.text

    def teardown(self) -> None:
        self.sockets.close()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], ids=str)
def server(request: pytest.FixtureRequest, make_server: Servers) -> Iterator[Server]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    return make_server(f"model-{request.param}", database_url=url)


def test_the_api_agrees_with_the_lifecycle_model(server: Server) -> None:
    SessionModel.server = server
    SessionModel.steps = []
    started = time.monotonic()
    run_state_machine_as_test(
        SessionModel,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=False,
        ),
    )
    steps = SessionModel.steps
    print(
        f"model test: {len(steps)} examples, {sum(steps)} steps ({min(steps)}-{max(steps)} per example) "
        f"in {time.monotonic() - started:.1f} s"
    )
    assert sum(steps) > 0
