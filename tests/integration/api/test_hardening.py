"""Smaller findings of the adversarial run (issue 11, defect 10), each refused the way OWASP advises."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from tests.integration.api.conftest import PASSWORD, Api, assert_problem, bearer

METRICS_TOKEN = "metrics-scraper-token-" + "m" * 32


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_login_refuses_json_sent_as_a_type_a_cross_site_form_can_send(api: Api, content_type: str) -> None:
    """A JSON body under a form's media type is 415, even when it holds the right password."""
    body = b'{"username": "alice", "password": "' + PASSWORD.encode() + b'"}'
    response = api.client.post("/api/auth/login", content=body, headers={"Content-Type": content_type})
    assert_problem(response, 415, "unsupported_media_type")


def test_login_accepts_json_with_a_charset(api: Api) -> None:
    body = b'{"username": "alice", "password": "' + PASSWORD.encode() + b'"}'
    response = api.client.post(
        "/api/auth/login", content=body, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"/api/admin/sessions/{uuid.uuid4()}/revoke", b'{"reason": 7, "unknown": true}'),
        (f"/api/admin/users/{uuid.uuid4()}/revoke-sessions", b"[[["),
    ],
)
def test_admin_routes_authenticate_before_validating(api: Api, path: str, body: bytes) -> None:
    """An anonymous caller learns 401, not how its path or body would have been validated."""
    response = api.client.post(path, content=body, headers={"Content-Type": "application/json"})
    problem = assert_problem(response, 401)
    assert "errors" not in problem


def test_admin_routes_refuse_a_non_admin_before_validating(api: Api) -> None:
    alice = api.session_for(api.alice)
    response = api.client.post(
        f"/api/admin/sessions/{uuid.uuid4()}/revoke",
        content=b'{"reason": 7}',
        headers={**bearer(alice["access_token"]), "Content-Type": "application/json"},
    )
    assert_problem(response, 403, "admin_required")


def test_metrics_are_off_without_a_token(api: Api) -> None:
    assert api.client.get("/api/metrics").status_code == 404


def test_metrics_need_the_configured_bearer_token(make_api: Callable[..., Api]) -> None:
    api = make_api(metrics_token=METRICS_TOKEN)
    assert api.client.get("/api/metrics").status_code == 401
    assert api.client.get("/api/metrics", headers=bearer("wrong")).status_code == 401
    user = api.session_for(api.alice)  # a user's access token is not the scraper's
    assert api.client.get("/api/metrics", headers=bearer(user["access_token"])).status_code == 401
    response = api.client.get("/api/metrics", headers=bearer(METRICS_TOKEN))
    assert response.status_code == 200
    assert "sessionflow_transitions" in response.text


def test_request_metrics_count_the_apis_requests_and_leave_scrapes_out(make_api: Callable[..., Api]) -> None:
    api = make_api(metrics_token=METRICS_TOKEN)
    api.client.get("/api/health")
    api.client.get("/api/metrics", headers=bearer(METRICS_TOKEN))
    scraped = api.client.get("/api/metrics", headers=bearer(METRICS_TOKEN)).text
    counted = [line for line in scraped.splitlines() if line.startswith("sessionflow_requests_total{")]
    assert any('path="/api/health"' in line for line in counted), counted
    assert not any('path="/api/metrics"' in line for line in counted), counted


def test_openapi_declares_refused_unknown_fields_and_the_diagram_media_types(api: Api) -> None:
    spec = api.client.get("/api/schema/openapi.json").json()
    for name in ("LoginRequest", "RefreshRequest", "EventRequest", "RevokeRequest"):
        assert spec["components"]["schemas"][name]["additionalProperties"] is False, name
    content = spec["paths"]["/api/lifecycle/machines/{name}/diagram"]["get"]["responses"]["200"]["content"]
    assert {media.split(";")[0] for media in content} == {"text/vnd.mermaid", "text/vnd.graphviz", "image/svg+xml"}
