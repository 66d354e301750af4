"""Refresh requests per access-token expiry with 1, 3 and 10 browser tabs of one session (goal: 1).

Usage::

    python bench/browser_refresh.py [--tabs 1,3,10] [--ttl SECONDS] [--expiries N]

A real ``sessionflow serve`` (SQLite) with a short access-token lifetime
(``--ttl``, 10 s), the example app of ``clients/typescript`` served on another
localhost port, and Debian's headless Chromium driven by Playwright. For each
tab count: one browser context (one profile, one refresh cookie), the first
tab logs in, the others open the app and resume the session; once every tab's
socket is open, the refresh requests every tab sends to
``/api/auth/refresh`` are counted for ``--expiries`` (4) token lifetimes.
Printed: requests per expiry, per tab count, and the server's own count of
``refresh`` transitions and revocations in that time. A tab count PASSes
when its requests per expiry stay at one refresh period's worth (at most
1.25: a client refreshes at 80% of a token's life).

Needs Node.js and npm (the client is built if ``dist/`` is missing) and
Chromium at ``/usr/bin/chromium`` (``SESSIONFLOW_TEST_CHROMIUM`` moves it).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, where bench/http.py would shadow the standard
# library's ``http`` (which http.server, urllib and Playwright import): put the repository root there instead,
# before those imports, which also makes ``bench`` importable. The imports below follow on purpose.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import contextlib
import functools
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench import harness
from bench.ws_setup import start_worker
from sessionflow.api.passwords import hash_password
from sessionflow.lifecycle import SystemClock
from sessionflow.persistence import Database, migrate, queries, users

CLIENT = harness.ROOT / "clients" / "typescript"
CHROMIUM = os.environ.get("SESSIONFLOW_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"]
PASSWORD = "correct horse battery staple"
OWN_FILES = ("bench/browser_refresh.py", "clients/typescript/src", "api/auth")
LIMIT = 1.25  # refresh requests per expiry: one refresh period (80% of a lifetime) is 1.25 per lifetime


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


@contextlib.contextmanager
def static_site(directory: Path) -> Iterator[str]:
    server = ThreadingHTTPServer((harness.HOST, 0), functools.partial(_Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def build_client() -> None:
    if (CLIENT / "dist" / "index.js").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("bench/browser_refresh.py needs npm to build clients/typescript")
    if not (CLIENT / "node_modules").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=CLIENT, check=True)
    subprocess.run([npm, "run", "build"], cwd=CLIENT, check=True)


def measure(browser: Any, app: str, api: str, db: Database, tabs: int, ttl: float, expiries: int) -> dict[str, float]:
    username = f"bench-{secrets.token_hex(4)}"
    users.create_user(db, username, hash_password(PASSWORD), is_admin=False, now=SystemClock().now())
    context = browser.new_context()
    refreshes: list[float] = []

    def count(request: Any) -> None:
        if request.url.endswith("/api/auth/refresh"):
            refreshes.append(time.monotonic())

    try:
        pages = []
        for index in range(tabs):
            page = context.new_page()
            page.on(
                "request", lambda r: refreshes.append(time.monotonic()) if r.url.endswith("/api/auth/refresh") else None
            )
            page.goto(f"{app}/example/index.html?api={api}")
            if index == 0:
                page.get_by_test_id("username").fill(username)
                page.get_by_test_id("password").fill(PASSWORD)
                page.get_by_test_id("login").click()
            page.wait_for_function(
                "document.querySelector('[data-testid=\"socket-state\"]')?.textContent === 'open'", timeout=30_000
            )
            pages.append(page)
        refreshes.clear()
        started = time.monotonic()
        pages[0].wait_for_timeout(expiries * ttl * 1000)  # not time.sleep: Playwright delivers events meanwhile
        counted = len([t for t in refreshes if t >= started])
        (session,) = queries.list_sessions(db, user_id=users.by_name(db, username).id)  # type: ignore[union-attr]
        events = [e.event for e in queries.history(db, "session", session.id, limit=500)]
        return {
            "requests": counted,
            "per_expiry": counted / expiries,
            "revocations": events.count("revoke"),
            "connected": sum(p.get_by_test_id("socket-state").inner_text() == "open" for p in pages),
        }
    finally:
        context.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tabs", default="1,3,10")
    parser.add_argument("--ttl", type=float, default=10.0, help="access-token lifetime, seconds")
    parser.add_argument("--expiries", type=int, default=4)
    args = parser.parse_args(argv)
    harness.line_buffered_stdout()
    harness.interrupt_on_sigterm()
    harness.print_header("bench/browser_refresh.py", OWN_FILES, "under " + " ".join(OWN_FILES))
    from playwright.sync_api import sync_playwright

    build_client()
    directory = Path(tempfile.mkdtemp(prefix="sessionflow-browser-bench-"))
    url = f"sqlite:///{directory / 'bench.db'}"
    results = []
    with contextlib.ExitStack() as stack, static_site(CLIENT) as app:
        env = harness.sessionflow_env(url, secrets.token_urlsafe(32)) | {
            "SESSIONFLOW_ACCESS_TOKEN_TTL": f"{args.ttl:g}",
            "SESSIONFLOW_ALLOWED_ORIGINS": app,
            "SESSIONFLOW_MAX_SESSIONS_PER_USER": "100",
        }
        db = Database.from_url(url, pool_size=2)
        stack.callback(db.dispose)
        migrate.upgrade(db)
        server = start_worker(stack, "sessionflow", env, directory / "server.log")
        api = f"http://localhost:{server.port}"
        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        stack.callback(browser.close)
        for tabs in (int(n) for n in args.tabs.split(",")):
            figures = measure(browser, app, api, db, tabs, args.ttl, args.expiries)
            print(
                f"{tabs:>3} tabs: {figures['requests']:.0f} refresh requests in {args.expiries} expiries = "
                f"{figures['per_expiry']:.2f} per expiry; {figures['revocations']:.0f} revocations; "
                f"{figures['connected']:.0f} of {tabs} sockets open at the end"
            )
            passed = figures["per_expiry"] <= LIMIT and figures["revocations"] == 0 and figures["connected"] == tabs
            results.append((f"{tabs} tabs: at most {LIMIT} refreshes per expiry, none revoked, all open", passed))
    return 1 if harness.print_targets(results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
