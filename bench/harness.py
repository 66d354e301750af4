"""What every benchmark script shares, so that their runs start, clean up and read the same way.

- the environment lines a run opens with (script, command, commit, Python, load, package versions);
- servers in subprocesses on loopback: free ports, start, wait until ready, stop, CPU time from ``/proc``;
- temporary PostgreSQL databases and the users that own the benchmark's sessions;
- the arithmetic and wording of results: interleaved repeats, per-repeat ratios and their ranges,
  targets with PASS/MISS, and the closing ``targets:`` line.

Each script decides what it measures and how its tables look; nothing here times anything. Every process
and database made here is undone by the caller's ``ExitStack`` or ``with`` block, on errors and Ctrl-C too.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, make_url, text

from sessionflow.lifecycle import SystemClock
from sessionflow.persistence import Database, UserRecord, users
from sessionflow.persistence.users import create_user

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # loopback only, for every server, request and connection
DEFAULT_POSTGRES_URL = os.environ.get(
    "SESSIONFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
T = TypeVar("T")

# -- the environment lines ----------------------------------------------------------------------


def package_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _revision(watched: Sequence[str], changes: str) -> str:
    try:
        git = ["git", "-C", str(ROOT)]
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
        dirty = subprocess.run([*git, "status", "--porcelain", "--", *watched], capture_output=True, check=False)
    except OSError:
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + (f" + uncommitted changes {changes}" if dirty.stdout.strip() else "")


def print_header(script: str, watched: Sequence[str], changes: str) -> None:
    """The run's first lines: the script, its command line, the commit, Python and the platform.

    ``changes`` follows the commit when any of the ``watched`` paths differs from it, so a figure is never
    mistaken for the committed code's.
    """
    print(f"sessionflow benchmark: {script}")
    print(f"  command     {shlex.join([Path(sys.executable).name, *sys.argv])}")
    print(f"  revision    {_revision(watched, changes)}")
    print(f"  python      {platform.python_version()} ({platform.python_implementation()}) on {platform.platform()}")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: how busy the shared machine was when the run began."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def postgres_version(url: str) -> str:
    try:
        probe = create_engine(url, connect_args={"connect_timeout": 3})
        with probe.connect() as connection:
            version = str(connection.exec_driver_sql("SHOW server_version").scalar())
        probe.dispose()
    except Exception as exc:  # noqa: BLE001 - reported again, with the skip, where the part would run
        return f"unreachable ({type(exc).__name__})"
    return version


# -- processes -------------------------------------------------------------------------------------


def line_buffered_stdout() -> None:
    """Progress as it happens, even through a pipe."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwind through every cleanup, as Ctrl-C does


def interrupt_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so every server, client and temporary database is still removed."""
    signal.signal(signal.SIGTERM, _on_sigterm)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def sessionflow_env(url: str, secret: str) -> dict[str, str]:
    """The environment of a ``sessionflow serve`` process: none of ours, then the database, secret, log level."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONFLOW_")}
    return env | {
        "SESSIONFLOW_DATABASE_URL": url,
        "SESSIONFLOW_JWT_SECRET": secret,  # shared by every server and by the session maker in the script
        "SESSIONFLOW_LOG_LEVEL": "warning",
    }


def log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else ""


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self) -> str:
        return log_tail(self.log)


def start_server(
    stack: contextlib.ExitStack, name: str, argv: list[str], *, env: dict[str, str], port: int, log: Path
) -> Server:
    """Start a server in its own process group; the stack stops it, whatever happens next."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    stack.callback(stop_process, process)
    return Server(name, process, port, log)


def stop_process(process: subprocess.Popen[Any]) -> None:
    """SIGINT (uvicorn's graceful shutdown: the lifespan disposes the database), then SIGKILL after 10 s."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)  # the group this script made for that process, by its id
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(wait)
            return


def wait_ready(server: Server, path: str, timeout: float = 60.0) -> None:
    """Poll ``path`` until it answers 200; fail with the server's log if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        with contextlib.suppress(OSError), urllib.request.urlopen(server.base + path, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} did not become ready on port {server.port}:\n{server.tail()}")


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time so far of a process and the processes it runs (granian's workers are its
    children), all their threads (Linux /proc; NaN elsewhere or once gone)."""
    seconds = [_own_cpu_seconds(each) for each in process_tree(pid)]
    return seconds[0] + sum(cpu for cpu in seconds[1:] if not math.isnan(cpu))  # a child gone meanwhile: 0


def _own_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime and stime, fields 14 and 15 in proc(5)


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process under it: a server is granian's supervisor and its forked workers."""
    return [pid, *(descendant for child in _children(pid) for descendant in process_tree(child))]


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


# The end of a wrk Lua script whose ``init`` filled ``reqs`` (and set ``sent = 0``): send them in turn, and
# print one ``BENCH {json}`` line (requests, seconds, non_2xx, socket_errors, p50_ms, p99_ms) when done.
WRK_CYCLE_AND_REPORT = r"""function request()
  sent = sent + 1
  return reqs[(sent - 1) % #reqs + 1]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "seconds": %.6f, "non_2xx": %d, "socket_errors": %d, "p50_ms": %.4f, "p99_ms": %.4f}\n',
    summary.requests, summary.duration / 1e6, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
"""


# -- databases and users ---------------------------------------------------------------------------


@contextlib.contextmanager
def temporary_postgres(url: str, *, prefix: str = "sessionflow_bench", loopback_only: bool = True) -> Iterator[str]:
    """A fresh database on the server at ``url`` (on loopback, unless told otherwise), dropped afterwards."""
    if loopback_only and make_url(url).host not in (HOST, "localhost"):
        raise SystemExit(f"--postgres-url must be on loopback ({HOST}), not {make_url(url).host}")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def postgres_unreachable(url: str) -> str | None:
    """Why the server at ``url`` cannot be used, or None when it answers."""
    try:
        probe = create_engine(url, connect_args={"connect_timeout": 3})
        with probe.connect() as connection:
            connection.execute(text("SELECT 1"))
        probe.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "skip", with the reason printed
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return None


def bench_user(db: Database) -> UserRecord:
    """A new passwordless user to own logged-in sessions (``Flows.login_user`` skips the password)."""
    name = f"bench-{uuid.uuid4().hex[:10]}"
    create_user(db, name, None, is_admin=False, now=SystemClock().now())
    user = users.by_name(db, name)
    if user is None:
        raise RuntimeError(f"user {name} was created but cannot be read back")
    return user


# -- results ---------------------------------------------------------------------------------------


def interleaved(variants: Sequence[T], repeats: int) -> Iterator[T]:
    """Every variant once per repeat, the order rotating every repeat, so neighbours see the same load."""
    for repeat in range(repeats):
        shift = repeat % len(variants)
        yield from (*variants[shift:], *variants[:shift])


def per_repeat_ratios(subject: Sequence[float], baseline: Sequence[float]) -> list[float]:
    """``subject / baseline``, repeat by repeat: blocks of one repeat ran side by side, on the same load."""
    return [s / b for s, b in zip(subject, baseline, strict=True)]


def value_range(values: Sequence[float], fmt: str) -> str:
    """``(lowest-highest)``, each formatted with ``fmt``."""
    return f"({min(values):{fmt}}-{max(values):{fmt}})"


@dataclass(frozen=True)
class Target:
    """A bound on a ratio: ``>=`` (at least, for throughput) or ``<=`` (at most, for time per operation)."""

    op: str
    bound: float

    def met(self, ratio: float) -> bool:
        return ratio >= self.bound if self.op == ">=" else ratio <= self.bound

    def __str__(self) -> str:
        return f"{self.op} {self.bound:.2f}x"


def verdict(passed: bool | None) -> str:
    """``PASS``, ``MISS``, or nothing for a figure that is shown but not judged."""
    return "" if passed is None else "PASS" if passed else "MISS"


def print_targets(results: Iterable[tuple[str, bool | None]]) -> bool:
    """The run's last line: targets met and missed, naming those missed; whether any was missed."""
    judged = [(label, passed) for label, passed in results if passed is not None]
    missed = [label for label, passed in judged if not passed]
    summary = f"\ntargets: {len(judged) - len(missed)} PASS, {len(missed)} MISS"
    print(summary + (f" ({'; '.join(missed)})" if missed else ""))
    return bool(missed)
