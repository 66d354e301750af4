"""``kill -9`` of a worker under load, on SQLite and PostgreSQL, two workers each.

Clients refresh their sessions as fast as they can while one worker is killed outright. Afterwards
every refresh a client saw acknowledged is in its session's history, every session's history is
gapless and ends at its version (nothing half applied), and the server answers again (granian
replaces the dead worker).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter

import httpx
import pytest
from sqlalchemy import select

from sessionflow.persistence.models import Session as SessionRow
from sessionflow.persistence.models import TransitionRecord
from tests.integration.ws.conftest import Server, Servers, worker_pids

pytestmark = pytest.mark.slow

CLIENTS = 6
LOAD = 60  # refreshes acknowledged before the kill, and again after it


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], ids=str)
def server(request: pytest.FixtureRequest, make_server: Servers) -> Server:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    return make_server(f"kill-{request.param}", database_url=url, WORKERS="2", DATABASE_TIMEOUT="2")


def test_no_acknowledged_transition_is_lost_when_a_worker_is_killed(server: Server) -> None:
    assert server.process is not None
    acknowledged: Counter[str] = Counter()
    sessions: set[str] = set()
    failures: Counter[str] = Counter()
    stop = threading.Event()
    lock = threading.Lock()

    def client() -> None:
        http = httpx.Client(base_url=server.base_url, trust_env=False, timeout=10)
        login = None
        while not stop.is_set():
            try:
                if login is None:
                    login = server.login()
                    with lock:
                        sessions.add(login.session_id)
                response = http.post("/api/auth/refresh", json={"refresh_token": login.refresh_token})
            except (httpx.TransportError, AssertionError) as exc:
                with lock:
                    failures[type(exc).__name__] += 1
                login = None  # the answer was lost: that session is left as the kill left it
                continue
            if response.status_code != 200:
                with lock:
                    failures[str(response.status_code)] += 1
                login = None
                continue
            body = response.json()
            login.access_token, login.refresh_token = body["access_token"], body["refresh_token"]
            with lock:
                acknowledged[login.session_id] += 1
        http.close()

    def acknowledged_so_far() -> int:
        with lock:
            return sum(acknowledged.values())

    def wait_for(count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while acknowledged_so_far() < count and time.monotonic() < deadline:
            time.sleep(0.05)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    wait_for(LOAD, timeout=20)  # under load: the machine is shared, so count acknowledgements, not seconds
    before_kill = acknowledged_so_far()
    victim = worker_pids(server.process.pid)[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(before_kill + LOAD, timeout=20)
    after_kill = acknowledged_so_far() - before_kill
    stop.set()
    for thread in threads:
        thread.join(timeout=15)

    deadline = time.monotonic() + 15
    while True:  # the dead worker is replaced: two workers serve again
        pids = worker_pids(server.process.pid)
        if len(pids) == 2 and victim not in pids and server.http.get("/api/health").status_code == 200:
            break
        assert time.monotonic() < deadline, f"the killed worker was not replaced: {pids}"
        time.sleep(0.1)

    assert server.db is not None
    with server.db.engine.connect() as connection:
        ids = [uuid.UUID(s) for s in sessions]
        versions = dict(
            connection.execute(select(SessionRow.id, SessionRow.version).where(SessionRow.id.in_(ids))).all()
        )
        history: dict[uuid.UUID, list[tuple[int, str]]] = {i: [] for i in ids}
        rows = connection.execute(
            select(TransitionRecord.instance_id, TransitionRecord.seq, TransitionRecord.event)
            .where(TransitionRecord.machine == "session", TransitionRecord.instance_id.in_(ids))
            .order_by(TransitionRecord.instance_id, TransitionRecord.seq)
        ).all()
    for instance_id, seq, event in rows:
        history[instance_id].append((seq, event))
    lost, broken = [], []
    for session_id in ids:
        seqs = [seq for seq, _ in history[session_id]]
        if seqs != list(range(1, versions[session_id] + 1)):
            broken.append(f"{session_id}: version {versions[session_id]}, history seqs {seqs}")
        refreshes = sum(1 for _, event in history[session_id] if event == "refresh")
        if refreshes < acknowledged[str(session_id)]:
            lost.append(f"{session_id}: {acknowledged[str(session_id)]} acknowledged, {refreshes} in history")
    print(
        f"kill -9 under load: {before_kill} refreshes acknowledged before the kill and {after_kill} after, "
        f"over {len(ids)} sessions, "
        f"failures during the kill {dict(failures)}, lost {len(lost)}, broken histories {len(broken)}"
    )
    assert before_kill >= LOAD  # there was load when the worker died
    assert after_kill >= LOAD  # and the server took it again
    assert lost == []
    assert broken == []
