"""A real headless Chromium, the TypeScript client built as it ships, its example app, a real ``sessionflow serve``.

Debian's Chromium is driven by Playwright (``executable_path``; Playwright's own
browser download cannot reach its servers here). The example app
(``clients/typescript/example/``) is served by a plain static server on
``http://localhost:<port>``, another origin than the API's
``http://localhost:<port>``: the app is allowed by ``SESSIONFLOW_ALLOWED_ORIGINS``,
so every scenario also runs the CORS and cookie path a separately hosted
frontend takes. Without Node.js, npm or Chromium these tests skip, with the
reason; under ``CI=true`` they fail instead.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[3]
CLIENT = ROOT / "clients" / "typescript"
CHROMIUM = os.environ.get("SESSIONFLOW_TEST_CHROMIUM", "/usr/bin/chromium")
# Chromium as root in a container, with nothing reaching for the network it does not have.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (required under CI=true)")
    pytest.skip(reason)


@functools.cache
def _build() -> str | None:
    """Install (``npm ci``, when needed) and build the TypeScript client once per run; why not, if it failed."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        return "Node.js and npm are not installed"
    steps = [] if (CLIENT / "node_modules").is_dir() else [[npm, "ci", "--no-audit", "--no-fund"]]
    for step in [*steps, [npm, "run", "build"]]:
        done = subprocess.run(step, cwd=CLIENT, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            return f"`{' '.join(step[1:])}` failed in clients/typescript:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    return None


@pytest.fixture(scope="session")
def built_client() -> Path:
    """clients/typescript with its dependencies installed and ``dist/`` built."""
    failure = _build()
    if failure is not None:
        if failure.startswith("Node.js"):
            unavailable(failure)
        pytest.fail(failure)
    return CLIENT


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="session")
def app_origin(built_client: Path) -> Iterator[str]:
    """The example app and the built client, served as static files on their own origin."""
    handler = functools.partial(_Quiet, directory=str(built_client))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Debian Chromium per module; each test opens its own context (its own cookie jar).

    Module-scoped: Playwright's synchronous API runs an event loop in this thread while it is open, and
    the tests after these ones call ``asyncio.run``.
    """
    if not Path(CHROMIUM).exists():
        unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
