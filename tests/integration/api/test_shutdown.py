"""An app that shuts down while a background write is in a worker thread waits for it before the pool goes."""

from __future__ import annotations

import gc
import threading
import time
import warnings
from typing import Any

import pytest
from litestar.testing import TestClient

from sessionflow.api.app import create_app
from sessionflow.api.inspector import refusals as refusals_module
from sessionflow.lifecycle import ManualClock
from sessionflow.persistence.users import create_user
from tests.integration.api.conftest import bearer, settings_for


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # the unclosed connection is psycopg's to report
def test_shutdown_during_a_refusal_flush_waits_for_it_and_leaves_no_connection_open(
    db_url: str, password_hash: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal log's flush holds a pooled connection in a worker thread as the app shuts down. Before, the
    cancelled task ended at once, the pool was disposed (which closes only the connections checked in), and
    the thread's connection went back to the discarded pool, to be garbage collected open (a CI failure)."""
    started, ended = threading.Event(), threading.Event()
    original = refusals_module.inspection.record_refusals

    def slow(db: Any, rows: list[dict[str, Any]]) -> None:
        with db.write():  # a pooled connection checked out, as during the insert on a slow link
            started.set()
            time.sleep(0.5)
        original(db, rows)
        ended.set()

    monkeypatch.setattr(refusals_module.inspection, "record_refusals", slow)
    clock = ManualClock()
    app = create_app(settings_for(db_url), clock=clock, run_sweeper=False)
    ctx = app.state["ctx"]
    with TestClient(app) as client:
        user = create_user(ctx.db, "alice", password_hash, is_admin=False, now=clock.now())
        issued = ctx.flows.login_user(user)
        client.post("/api/auth/logout", headers=bearer(issued.access_token)).raise_for_status()
        reused = client.post("/api/auth/refresh", json={"refresh_token": issued.refresh_token})
        assert reused.status_code == 401, reused.text  # a refused event: the refusal log queues it
        assert started.wait(5), "the refusal log never flushed"
    assert ended.is_set(), "the app shut down while its flush was still writing"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaked, leaked
