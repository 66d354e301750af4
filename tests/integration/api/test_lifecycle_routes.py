"""Definitions served as data (machines, diagrams, close codes) and the operations routes (health, readiness)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from sessionflow.api.app import create_app
from sessionflow.api.diagrams import render_svg
from sessionflow.lifecycle import CONNECTION, MACHINES, SESSION, Definition, ManualClock, protocol
from sessionflow.lifecycle.diagrams import render_dot, render_mermaid
from tests.conftest import needs_dot
from tests.integration.api.conftest import Api, assert_problem, settings_for


@pytest.fixture(scope="module")
def static(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Litestar]]:
    """An app for routes that never touch the database (its SQLite file is not even migrated)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('static') / 'unused.db'}"
    with TestClient(create_app(settings_for(url), clock=ManualClock(), run_sweeper=False)) as client:
        yield client


# -- /api/lifecycle/machines ---------------------------------------------------------------


def test_every_machine_is_served_as_data(static: TestClient[Litestar]) -> None:
    response = static.get("/api/lifecycle/machines")
    assert response.status_code == 200, response.text
    machines = response.json()
    assert [m["name"] for m in machines] == list(MACHINES) == ["session", "connection", "client"]
    session = machines[0]
    assert session["initial"] == "anonymous"
    assert [s["name"] for s in session["states"]] == list(SESSION.states)
    assert {s["name"] for s in session["states"] if s["terminal"]} == {"closed", "revoked"}
    assert [e["name"] for e in session["events"]] == list(SESSION.events)
    assert next(e for e in session["events"] if e["name"] == "revoke")["fired_by"] == ["admin", "server"]
    assert {t["name"] for t in session["timers"]} == {"login_window", "idle", "grace", "refresh_window", "lifetime"}


@pytest.mark.parametrize("name", ["session", "connection"])
def test_one_machine_by_name(static: TestClient[Litestar], name: str) -> None:
    response = static.get(f"/api/lifecycle/machines/{name}")
    assert response.status_code == 200, response.text
    assert response.json()["name"] == name
    assert [s["name"] for s in response.json()["states"]] == list(MACHINES[name].states)


def test_the_connection_machine_has_the_designed_states(static: TestClient[Litestar]) -> None:
    states = {s["name"] for s in static.get("/api/lifecycle/machines/connection").json()["states"]}
    assert {"connecting", "open", "closed", "rejected", "dropped"} <= states
    assert set(CONNECTION.states) == states


@pytest.mark.parametrize("path", ["/api/lifecycle/machines/printer", "/api/lifecycle/machines/printer/diagram"])
def test_an_unknown_machine_is_404_naming_the_known_ones(static: TestClient[Litestar], path: str) -> None:
    body = assert_problem(static.get(path), 404, "unknown_machine")
    assert "session" in body["detail"]
    assert "connection" in body["detail"]


@pytest.mark.parametrize(
    ("fmt", "media_type", "render"),
    [
        ("mermaid", "text/vnd.mermaid", render_mermaid),
        ("dot", "text/vnd.graphviz", render_dot),
        ("svg", "image/svg+xml", render_svg),
    ],
)
@pytest.mark.parametrize("name", ["session", "connection"])
def test_diagrams_in_each_format_with_its_media_type(
    static: TestClient[Litestar], name: str, fmt: str, media_type: str, render: Callable[[Definition], str]
) -> None:
    if fmt == "svg":
        needs_dot()
    response = static.get(f"/api/lifecycle/machines/{name}/diagram", params={"format": fmt})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(media_type)
    assert response.text == render(MACHINES[name])


def test_the_default_diagram_is_mermaid(static: TestClient[Litestar]) -> None:
    response = static.get("/api/lifecycle/machines/session/diagram")
    assert response.headers["content-type"].startswith("text/vnd.mermaid")
    assert response.text.startswith("stateDiagram-v2")


@pytest.mark.parametrize("fmt", ["png", "", "SVG", "mermaid;rm -rf /"])
def test_an_unknown_diagram_format_is_400(static: TestClient[Litestar], fmt: str) -> None:
    assert_problem(
        static.get("/api/lifecycle/machines/session/diagram", params={"format": fmt}), 400, "invalid_request"
    )


# -- /api/lifecycle/close-codes --------------------------------------------------------------


def test_the_close_code_table_is_the_protocols(static: TestClient[Litestar]) -> None:
    response = static.get("/api/lifecycle/close-codes")
    assert response.status_code == 200, response.text
    rows = response.json()
    assert rows == [
        {"code": c.code, "name": c.name, "meaning": c.meaning, "action": str(c.action), "retry": c.retry}
        for c in protocol.CLOSE_CODES
    ]
    # docs/protocol.md, literally.
    assert [r["code"] for r in rows] == [
        1000,
        1001,
        1008,
        1009,
        4400,
        4401,
        4403,
        4406,
        4408,
        4409,
        4410,
        4419,
        4429,
        4500,
        4503,
        4504,
    ]


# -- /api/health and /api/ready ----------------------------------------------------------------


def test_health_answers_without_a_database(static: TestClient[Litestar]) -> None:
    response = static.get("/api/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_ready_on_a_migrated_database(api: Api) -> None:
    response = api.client.get("/api/ready")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


def test_not_ready_while_the_schema_is_not_migrated(tmp_path: Path) -> None:
    """An empty SQLite file: 503 with a reason an operator can act on."""
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with TestClient(create_app(settings_for(url), clock=ManualClock(), run_sweeper=False)) as client:
        response = client.get("/api/ready")
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "reason": "schema is not at head; run sessionflow migrate"}
        assert client.get("/api/health").status_code == 200


def test_not_ready_when_the_database_cannot_be_reached() -> None:
    """Nothing listens where the database should be: 503 naming the kind of failure, never its details."""
    url = "postgresql+psycopg://sessionflow:hunter2-secret@127.0.0.1:9/nowhere"
    with TestClient(create_app(settings_for(url), clock=ManualClock(), run_sweeper=False)) as client:
        response = client.get("/api/ready")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["reason"].startswith("database: ")
        assert "hunter2" not in response.text
