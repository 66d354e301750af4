"""Servers for the inspector's tests: the WebSocket tests' real ``sessionflow serve`` processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sessionflow.api.passwords import hash_password
from tests.integration.ws.conftest import PASSWORD, Servers, _servers


@pytest.fixture(scope="module")
def make_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    yield from _servers(tmp_path_factory.mktemp("inspector-servers"), hash_password(PASSWORD))
