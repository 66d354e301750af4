"""A real ``sessionflow serve`` (EdDSA) and the sample experience service in each mode, each under uvicorn.

The experience services are registered with the real CLI (``sessionflow
services add``); every request in these tests goes over a real socket.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.integration.client.conftest import PASSWORD, Server, free_port, running_server

ROOT = Path(__file__).resolve().parents[3]
MODES = ("offline", "push", "checked")


@dataclass
class Experience:
    mode: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, token: str | None, *, authorization: str | None = None) -> httpx.Response:
        """GET the profile with ``token`` as bearer, or with the ``authorization`` header given."""
        authorization = authorization or (f"Bearer {token}" if token else None)
        headers = {"Authorization": authorization} if authorization else {}
        return httpx.get(f"{self.url}/api/profile", headers=headers, timeout=10)

    def websocket(self, token: str | None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return connect(f"ws://127.0.0.1:{self.port}/ws", additional_headers=headers, open_timeout=5)

    def handshake(self, token: str | None) -> dict[str, Any] | int:
        """The hello of an admitted WebSocket, or the close code of a refused one."""
        with self.websocket(token) as socket:
            try:
                hello: dict[str, Any] = json.loads(socket.recv(timeout=5))
            except ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd is not None else 1006
            return hello


def cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    """``sessionflow ARGS`` against the server's database and keys, as its operator would run it."""
    return subprocess.run(
        [sys.executable, "-m", "sessionflow.api.cli", *args],
        env=server.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def register(server: Server, name: str) -> str:
    """``sessionflow services add NAME`` against the server's database; the secret it prints once."""
    done = cli(server, "services", "add", name)
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip().splitlines()[-1]
    assert secret.startswith("sfs_")
    return secret


@contextlib.contextmanager
def running_experience(server: Server, mode: str, secret: str, directory: Path) -> Iterator[Experience]:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SESSIONFLOW_", "EXPERIENCE_"))}
    env |= {
        "EXPERIENCE_SESSIONFLOW_URL": server.url,
        "EXPERIENCE_MODE": mode,
        "EXPERIENCE_CLIENT_ID": "experience",
        "EXPERIENCE_CLIENT_SECRET": secret,
    }
    log = (directory / f"experience-{mode}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.services.experience", str(port)],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    experience = Experience(mode, port, process)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.TransportError):
                health = httpx.get(f"{experience.url}/health", timeout=2)
                if health.status_code == 200 and (mode != "push" or health.json()["feed"]):
                    break
            assert process.poll() is None, (directory / f"experience-{mode}.log").read_text()
            assert time.monotonic() < deadline, "the experience service did not get ready"
            time.sleep(0.1)
        yield experience
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


EDDSA = {"SESSIONFLOW_JWT_ALGORITHM": "EdDSA"}


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("sessionflow"), **EDDSA) as running:
        yield running


@pytest.fixture(scope="package")
def experiences(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Experience]]:
    """The experience service in each mode, beside the package's sessionflow."""
    secret = register(server, "experience")
    directory = tmp_path_factory.mktemp("experience")
    with contextlib.ExitStack() as stack:
        yield {mode: stack.enter_context(running_experience(server, mode, secret, directory)) for mode in MODES}


def login(server: Server, username: str = "alice") -> dict[str, Any]:
    response = httpx.post(f"{server.url}/api/auth/login", json={"username": username, "password": PASSWORD}, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
