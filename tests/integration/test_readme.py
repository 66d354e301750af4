"""The README's examples run as pasted, against a real ``sessionflow serve``, and do what the README says.

The server runs as the quick start starts it: ``sessionflow serve`` in a
directory of its own, on its default SQLite file there. The walk-through runs
in bash from that directory (with ``.venv`` pointing at this environment),
the client example in Python; both read the server's address from ``SERVER``,
which defaults to the quick start's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PASSWORD = "correct horse battery staple"

pytestmark = pytest.mark.slow


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def _needs(*programs: str) -> None:
    missing = [program for program in programs if shutil.which(program) is None]
    if not missing:
        return
    reason = f"the README walk-through needs {', '.join(missing)} (apt-get install {' '.join(missing)})"
    if IN_CI:
        pytest.fail(f"{reason}; required under CI=true")
    pytest.skip(reason)


@dataclass
class Served:
    url: str
    directory: Path
    env: dict[str, str]

    def sessionflow(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        command = [str(self.directory / ".venv" / "bin" / "sessionflow"), *args]
        return subprocess.run(
            command,
            input=stdin,
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """``sessionflow serve`` started as the quick start starts it, in an empty directory."""
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    env = {key: value for key, value in os.environ.items() if not key.startswith("SESSIONFLOW_")}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env["SERVER"] = url
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [str(tmp_path / ".venv" / "bin" / "sessionflow"), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/api/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "the server did not get ready"
            time.sleep(0.1)
        yield Served(url, tmp_path, env)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_the_walk_through_runs_as_pasted_and_answers_as_the_readme_says(served: Served) -> None:
    _needs("curl", "jq")
    (walk_through,) = [block for block in _blocks("sh") if "$SERVER" in block]
    ran = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", walk_through],
        cwd=served.directory,
        env=served.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert "created user alice" in ran.stdout
    lines = [line for line in ran.stdout.splitlines() if line.strip()]
    login = json.loads(next(line for line in lines if line.startswith('{"session_id"') and "access_token" in line))
    assert login["state"] == "session_active"
    assert (login["token_type"], login["expires_in"], login["refresh_expires_in"]) == ("Bearer", 900, 604800)
    assert login["refresh_token"].startswith("sfr_")
    assert 'etag: "2"' in ran.stdout.lower()
    shown = json.loads(next(line for line in lines if line.startswith('{"session_id"') and "allowed_events" in line))
    assert (shown["state"], shown["version"], shown["allowed_events"]) == ("session_active", 2, ["refresh", "logout"])
    logout = json.loads(next(line for line in lines if '"event":"logout"' in line))
    assert logout == {
        "session_id": login["session_id"],
        "event": "logout",
        "from_state": "session_active",
        "to_state": "closed",
        "version": 3,
        "repeated": False,
    }
    refused = json.loads(lines[-1])
    assert (refused["status"], refused["code"]) == (401, "session_closed")
    assert refused["detail"] == "the session is closed; log in again"


def test_the_client_example_runs_as_pasted_until_the_session_is_revoked(served: Served) -> None:
    created = served.sessionflow("users", "create", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    (example,) = _blocks("python")
    (served.directory / "example.py").write_text(example)
    with subprocess.Popen(
        [sys.executable, "example.py"],
        cwd=served.directory,
        env=served.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as client:
        assert client.stdin is not None
        assert client.stdout is not None
        client.stdin.write(PASSWORD + "\n")
        client.stdin.close()
        seen: list[str] = []
        try:
            while not any("dest='connected'" in line for line in seen):
                line = client.stdout.readline()
                assert line, f"the example ended early: {seen}\n{client.stderr.read() if client.stderr else ''}"
                seen.append(line)
            disabled = served.sessionflow("users", "disable", "alice")
            assert disabled.returncode == 0, disabled.stderr
            client.wait(timeout=30)
            rest = client.stdout.read()
        finally:
            if client.poll() is None:
                client.kill()
    output = "".join(seen) + rest
    assert client.returncode == 0, client.stderr.read() if client.stderr else ""
    assert "SessionTransition(" in output
    assert "event='revoke'" in output
    assert output.splitlines()[-1].startswith("Stopped(event='end'")
    assert "close_code=4403" in output.splitlines()[-1]
