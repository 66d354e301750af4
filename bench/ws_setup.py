"""What each part of bench/ws.py sets up: the plan of a run, file descriptors, servers and their sessions.

Servers are ``sessionflow serve`` processes (one worker) on loopback, stopped by the caller's ``ExitStack``;
sessions are logged in beforehand, untimed, by ``Flows.login_user`` on the server's database. The ``/proc``
readers return a placeholder (``unknown``, -1, 0) rather than fail where ``/proc`` is missing.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from bench import harness
from sessionflow.api.app import build_context
from sessionflow.api.settings import Settings
from sessionflow.persistence import migrate
from sessionflow.persistence.database import Database
from sessionflow.persistence.models import Connection

UNBOUNDED = 1_000_000  # limits lifted for the benchmark (sessions per user)


@dataclass(frozen=True)
class Plan:
    """What one run measures, from the command line."""

    connections: int
    sessions: int
    clients: int
    window: int  # handshakes in flight per client process
    heartbeat: float
    hold: float
    ramp_budget: float  # seconds after which no more handshakes start
    samples: int
    per_session: int
    compression: bool
    quick: bool
    profile: bool


# -- file descriptors, processes, /proc ----------------------------------------------------------


@dataclass(frozen=True)
class FdLimits:
    found: tuple[int, int]
    set_to: tuple[int, int]


def raise_fd_limit() -> FdLimits:
    """Soft RLIMIT_NOFILE up to the hard limit, in this process; subprocesses inherit it."""
    found = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft, hard = found
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return FdLimits(found, resource.getrlimit(resource.RLIMIT_NOFILE))


def proc_fd_limit(pid: int) -> str:
    """``Max open files`` of a running process, as the kernel applies it."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return f"soft {soft}, hard {hard}"
    return "unknown"


def open_fds(pid: int) -> int:
    """Open file descriptors of ``pid`` and the processes under it (granian's workers); -1 if unreadable."""
    try:
        return sum(len(os.listdir(f"/proc/{each}/fd")) for each in harness.process_tree(pid))
    except OSError:
        return -1


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and the processes under it (granian's workers)."""
    return sum(_own_rss(each) for each in harness.process_tree(pid))


def _own_rss(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def serve_argv(port: int) -> list[str]:
    """``sessionflow serve`` on loopback ``port``, one worker, as this interpreter runs it."""
    command = [sys.executable, "-m", "sessionflow.api.cli", "serve"]
    return [*command, "--host", harness.HOST, "--port", str(port), "--workers", "1"]


def start_worker(stack: contextlib.ExitStack, name: str, env: dict[str, str], log: Path) -> harness.Server:
    """``sessionflow serve`` (one worker), ready; the stack stops it, whatever happens next."""
    port = harness.free_port()
    server = harness.start_server(stack, name, serve_argv(port), env=env, port=port, log=log)
    harness.wait_ready(server, "/api/health")
    return server


# -- databases and sessions -----------------------------------------------------------------------


def server_env(url: str, secret: str, heartbeat: float, per_session: int, per_address: int) -> dict[str, str]:
    return harness.sessionflow_env(url, secret) | {
        "SESSIONFLOW_WS_HEARTBEAT_INTERVAL": f"{heartbeat:g}",
        "SESSIONFLOW_WS_MAX_CONNECTIONS_PER_SESSION": str(per_session),
        "SESSIONFLOW_WS_MAX_CONNECTIONS_PER_ADDRESS": str(per_address),
        "SESSIONFLOW_MAX_SESSIONS_PER_USER": str(UNBOUNDED),
    }


def make_sessions(env: dict[str, str], count: int, per_user: int = 500) -> tuple[list[tuple[str, str]], float]:
    """Migrate, then ``count`` logged-in sessions as (session id, access token); and the seconds it took."""
    ctx = build_context(Settings.from_env(env))
    try:
        migrate.upgrade(ctx.db)
        start = time.perf_counter()
        made: list[tuple[str, str]] = []
        user = None
        for i in range(count):
            if i % per_user == 0:
                user = harness.bench_user(ctx.db)
            assert user is not None
            issued = ctx.flows.login_user(user)
            made.append((str(issued.session_id), issued.access_token))
        return made, time.perf_counter() - start
    finally:
        ctx.db.dispose()


def connection_rows(url: str, heartbeat_within: float) -> tuple[int, int]:
    """The server's own record: connection rows open, and those with a heartbeat in the last ``heartbeat_within`` s."""
    db = Database.from_url(url, pool_size=1)
    try:
        cutoff = datetime.now(UTC) - timedelta(seconds=heartbeat_within)
        is_open = Connection.state == "open"
        with db.engine.connect() as connection:
            total = connection.execute(select(func.count()).select_from(Connection).where(is_open)).scalar_one()
            recent = connection.execute(
                select(func.count()).select_from(Connection).where(is_open, Connection.last_heartbeat_at >= cutoff)
            ).scalar_one()
        return int(total), int(recent)
    finally:
        db.dispose()
