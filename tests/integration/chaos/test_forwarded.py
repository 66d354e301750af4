"""``X-Forwarded-For`` is trusted from nobody by default: a client cannot choose the address it is counted as."""

from __future__ import annotations

import pytest

from tests.integration.ws.conftest import Server, Servers

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(make_server: Servers) -> Server:
    return make_server("forwarded", LOGIN_LIMIT_PER_ADDRESS="2")


def test_rotating_x_forwarded_for_does_not_escape_the_address_limit(server: Server) -> None:
    """Issue 11, defect 9: from 127.0.0.1, each guess claimed another address; 25 of 25 got past the limit."""
    statuses = []
    for i in range(4):
        response = server.http.post(
            "/api/auth/login",
            json={"username": f"nobody-{i}", "password": "wrong"},
            headers={"X-Forwarded-For": f"198.51.100.{i + 1}"},
        )
        statuses.append(response.status_code)
    assert statuses == [401, 401, 429, 429]
