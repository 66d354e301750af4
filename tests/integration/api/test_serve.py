"""`sessionflow serve` migrates a fresh database and answers over a real socket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_migrates_then_reports_healthy_and_ready(tmp_path: Path) -> None:
    """On an empty SQLite path the server creates the schema, then health and readiness answer 200."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONFLOW_")}
    env["SESSIONFLOW_DATABASE_URL"] = f"sqlite:///{tmp_path / 'served.db'}"
    server = subprocess.Popen(
        [sys.executable, "-m", "sessionflow.api.cli", "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, "server exited early"
                assert time.monotonic() < deadline, "server did not answer within 30 s"
                time.sleep(0.2)
        assert health.status_code == 200, health.text
        ready = httpx.get(f"http://127.0.0.1:{port}/api/ready", timeout=5)
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ready"}
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    # The server shuts down cleanly on SIGTERM.
    assert server.returncode in (0, -15), output
    assert "application shutdown complete" in output
    assert (tmp_path / "served.db").exists()
