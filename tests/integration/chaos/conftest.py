"""Chaos tests: real servers (``sessionflow serve``) under hostile clients, a sick network and killed workers.

They reuse the WebSocket tests' server fixtures. Each test bounds its own time; together they keep to
about a minute and a half per database in CI.
"""

from __future__ import annotations

import os

from tests.integration.ws.conftest import make_server, password_hash, worker_pids  # noqa: F401 - fixtures used here


def descriptors(pid: int) -> int:
    """Open file descriptors of ``pid`` and every worker it runs."""
    return sum(len(os.listdir(f"/proc/{p}/fd")) for p in [pid, *worker_pids(pid)])
