"""How many authenticated WebSockets one worker holds with heartbeats running, and how fast a logout closes them.

Usage::

    python bench/ws.py [--quick] [--connections N] [--sessions N] [--heartbeat S] [--clients N]
                       [--window N] [--ramp-seconds S] [--samples N] [--per-session K]
                       [--no-compression] [--postgres-url URL] [--no-postgres]
                       [--only capacity|logout|cross] [--profile] [--strict]

Real servers run as subprocesses (``python -m api.cli serve``, one worker each,
log level warning), on loopback only, on temporary databases this script makes
and removes. Sessions are logged in beforehand through ``Flows.login_user`` in
this process on the same database with the server's signing secret (the path
every login takes once the user is verified; no argon2), and every connection
authenticates with ``Authorization: Bearer <access token>`` on the handshake.

(a) Capacity, one worker, SQLite: client processes (asyncio + ``websockets``,
    answering every ``{"type":"ping"}`` with ``{"type":"pong"}``) open the
    connections, spread evenly over the sessions, with a bounded number of
    handshakes in flight each and none started after ``--ramp-seconds``. Then
    the connections are held for 2.5 heartbeat intervals; a connection counts
    when it is still open then and answered at least two pings during the hold,
    that is when its heartbeat ran at about the configured interval. The
    interval is lowered (10 s, 5 s with ``--quick``; the default is 25 s) so
    that every connection really pings and pongs while held; every pong is a
    database write, as in production. Memory per connection is the server's
    RSS at the end of the hold minus its RSS before the first connection,
    divided by the connections. The soft RLIMIT_NOFILE is raised to the hard
    limit here and inherited by the server and the clients; the limits found
    and in force are printed. ``--profile`` samples the server with py-spy
    during the hold. Target: 10,000 connections.
(b) Logout to close, one worker, SQLite: a session with K live connections,
    then ``POST /api/auth/logout`` with its token; per connection, the time
    from just before the request is written to the arrival of the close frame
    (4410), over many sessions, one at a time. A session's first connection
    opens alone, then the others together (see ``logout_samples``). Target:
    p99 < 100 ms.
(c) The same across two workers sharing a PostgreSQL database: connections on
    worker A, the logout sent to worker B, so the close travels through
    ``pg_notify`` and A's ``LISTEN``. Target: p99 < 500 ms. Logouts sent to A
    itself are interleaved with them and shown, not judged.

``--strict`` exits 1 if a target is missed. Nothing here is a test.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, where bench/http.py would shadow the
# standard library's ``http`` package for everything imported below: put the repository root there instead,
# which also makes ``bench`` importable. The imports below follow on purpose.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import queue
import re
import resource
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.frames import Frame, Opcode

from api.app import build_context
from api.protocol import BY_CODE
from api.settings import Settings
from bench import harness
from persistence import migrate
from persistence.database import Database
from persistence.models import Connection

OWN_FILES = ("bench/ws.py", "api", "persistence", "lifecycle")
THIS = Path(__file__).resolve()  # run again for each capacity client
CAPACITY_TARGET = 10_000
P99_ONE_WORKER_MS = 100.0
P99_CROSS_WORKER_MS = 500.0
UNBOUNDED = 1_000_000  # limits lifted for the benchmark (sessions per user)
MAX_CONNECTIONS = 50_000  # bound on what the script will ever open
PONG = '{"type":"pong"}'
SPARE_FDS = 200  # descriptors a process needs besides its sockets (database, logs, pipes, imports)


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
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def rss_bytes(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def start_worker(stack: contextlib.ExitStack, name: str, env: dict[str, str], log: Path) -> harness.Server:
    """``sessionflow serve`` (one worker), ready; the stack stops it, whatever happens next."""
    port = harness.free_port()
    argv = [sys.executable, "-m", "api.cli", "serve", "--host", harness.HOST, "--port", str(port), "--workers", "1"]
    server = harness.start_server(stack, name, argv, env=env, port=port, log=log)
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


# -- the capacity client: its own process ---------------------------------------------------------


class Held:
    """One held connection, as the client sees it."""

    __slots__ = ("last_ping", "pings", "ws")

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.pings = 0  # answered since the last mark
        self.last_ping = 0.0


class Fleet:
    """``--client``: one client process holding connections ``first`` .. ``first + count - 1`` on one server.

    Connection j authenticates with token j mod tokens. Handshakes not started within ``budget`` seconds are
    skipped. Prints ``RAMPED {...}`` once every handshake has settled, then obeys one command per stdin line:
    ``mark`` (restart the hold counters), ``status N`` (N: pings a connection must have answered since the mark
    to count as answering), ``close`` (close all with 1000, report, exit). It exits at stdin EOF, so it never
    outlives the script.
    """

    def __init__(self, port: int, tokens: list[str], *, window: int, budget: float, compression: bool) -> None:
        self.uri = f"ws://{harness.HOST}:{port}/api/ws"
        self.tokens = tokens
        self.gate = asyncio.Semaphore(window)
        self.compression = compression
        self.live: set[Held] = set()
        self.failures: Counter[str] = Counter()  # before welcome: handshake errors, refusals
        self.closes: Counter[int] = Counter()  # after welcome, closed by the server (or lost) before we closed
        self.gaps: list[float] = []  # seconds between consecutive pings of one connection, since the mark
        self.mark = 0.0
        self.closing = False
        self.settled = 0
        self.deadline = time.monotonic() + budget
        self.opened: list[float] = []  # when each connection got its welcome (time.time(), to merge across clients)
        self.rss_before = rss_bytes(os.getpid())

    async def open(self, j: int) -> ClientConnection | None:
        """Handshake and welcome, or None with the failure counted."""
        headers = {"Authorization": f"Bearer {self.tokens[j % len(self.tokens)]}"}
        try:
            ws = await connect(
                self.uri,
                additional_headers=headers,
                compression="deflate" if self.compression else None,
                ping_interval=None,  # the heartbeat is the application's ping/pong, as browsers do it
                open_timeout=30,
                close_timeout=5,
                max_size=2**16,
            )
        except InvalidStatus as exc:
            self.failures[f"handshake refused: HTTP {exc.response.status_code}"] += 1
            return None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            self.failures[f"handshake failed: {type(exc).__name__}"] += 1
            return None
        try:
            welcome = json.loads(await asyncio.wait_for(ws.recv(), 30))
        except ConnectionClosed:
            self.failures[f"closed before welcome: {ws.close_code}"] += 1
            return None
        except TimeoutError:
            self.failures["no welcome within 30 s"] += 1
            await ws.close()
            return None
        if welcome.get("type") != "welcome":
            self.failures[f"first message {welcome.get('type')!r}, code {welcome.get('code')}"] += 1
            await ws.close()
            return None
        return ws

    async def hold(self, j: int) -> None:
        loop = asyncio.get_running_loop()
        async with self.gate:
            if time.monotonic() > self.deadline:
                self.failures["not started: ramp time budget used up"] += 1
                ws = None
            else:
                ws = await self.open(j)
            self.settled += 1
        if ws is None:
            return
        held = Held(ws)
        self.live.add(held)
        self.opened.append(time.time())
        try:
            async for text in ws:
                if json.loads(text).get("type") == "ping":
                    now = loop.time()
                    if held.last_ping >= self.mark:
                        self.gaps.append(now - held.last_ping)
                    held.last_ping = now
                    held.pings += 1
                    await ws.send(PONG)
        except ConnectionClosed:
            pass
        finally:
            self.live.discard(held)
            if not self.closing:
                self.closes[ws.close_code or 1006] += 1

    def status(self, need: int) -> dict[str, Any]:
        pings = sorted(h.pings for h in self.live)
        gaps = sorted(self.gaps)
        return {
            "open": len(self.live),
            "answering": sum(1 for p in pings if p >= need),
            "pinged": sum(1 for p in pings if p >= 1),
            "pings": [pings[0], pings[len(pings) // 2], pings[-1]] if pings else [0, 0, 0],
            "pongs": sum(pings),
            "gaps": [percentile(gaps, 50), percentile(gaps, 99), gaps[-1]] if gaps else [],
            "failures": dict(self.failures),
            "closes": dict(self.closes),
            "rss_before": self.rss_before,
            "rss": rss_bytes(os.getpid()),
        }

    async def close_all(self) -> float:
        self.closing = True
        began = time.perf_counter()
        gate = asyncio.Semaphore(500)

        async def close(held: Held) -> None:
            async with gate:
                await held.ws.close(1000, "benchmark done")

        await asyncio.wait_for(asyncio.gather(*(close(h) for h in list(self.live)), return_exceptions=True), 120)
        return time.perf_counter() - began

    async def run(self, first: int, count: int) -> int:
        loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(self.hold(j)) for j in range(first, first + count)]
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        try:
            while self.settled < count:
                await asyncio.sleep(0.05)
            emit("RAMPED", self.status(0) | {"opened": self.opened})
            while line := (await reader.readline()).decode().split():
                if line[0] == "mark":
                    self.mark = loop.time()
                    self.gaps.clear()
                    for held in self.live:
                        held.pings = 0
                    emit("MARKED", {})
                elif line[0] == "status":
                    emit("STATUS", self.status(int(line[1])))
                elif line[0] == "close":
                    report = self.status(0)
                    report["close_seconds"] = await self.close_all()
                    emit("CLOSED", report)
                    break
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return 0


def emit(kind: str, payload: dict[str, Any]) -> None:
    print(f"{kind} {json.dumps(payload)}", flush=True)


def client_main(argv: Sequence[str]) -> int:
    """The client process: ``--client PORT TOKENS FIRST COUNT WINDOW BUDGET COMPRESSION``."""
    port, tokens, first, count, window, budget, compression = argv
    fleet = Fleet(
        int(port),
        Path(tokens).read_text().split(),
        window=int(window),
        budget=float(budget),
        compression=compression == "1",
    )
    return asyncio.run(fleet.run(int(first), int(count)))


@dataclass
class Client:
    """A capacity client process, driven line by line."""

    process: subprocess.Popen[str]
    log: Path
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        def pump() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.lines.put(line)
            self.lines.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def expect(self, kind: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            if line.startswith(kind + " "):
                return dict(json.loads(line[len(kind) + 1 :]))
        raise RuntimeError(
            f"client {self.process.pid}: no {kind} within {timeout:.0f} s:\n{harness.log_tail(self.log)}"
        )


def start_client(stack: contextlib.ExitStack, argv: list[str], log: Path) -> Client:
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, str(THIS), "--client", *argv],
            cwd=harness.ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=True,
        )
    stack.callback(harness.stop_process, process)
    stack.callback(lambda: process.stdin.close() if process.stdin else None)  # EOF: the client exits
    return Client(process, log)


# -- logout to close -------------------------------------------------------------------------------


class Timed(ClientConnection):
    """A client connection that notes when the close frame arrives, and when the closing transition did."""

    close_at: float | None = None
    transition_at: float | None = None

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame) and event.opcode is Opcode.CLOSE and self.close_at is None:
            self.close_at = time.perf_counter()
        super().process_event(event)


class Http:
    """One keep-alive HTTP/1.1 connection for the logouts (reopened if the server closes it)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, token: str) -> tuple[int, float]:
        """Send; return the status and the perf_counter() just before the request was written."""
        if self.stream is None:
            self.stream = await asyncio.open_connection(harness.HOST, self.port)
        reader, writer = self.stream
        request = f"POST {path} HTTP/1.1\r\nHost: {harness.HOST}:{self.port}\r\nAuthorization: Bearer {token}\r\n"
        request += "Content-Length: 0\r\n\r\n"
        sent = time.perf_counter()
        writer.write(request.encode())
        status = int((await reader.readline()).split()[1])
        length, keep = 0, True
        while (header := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = header.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            if name.strip().lower() == b"connection" and value.strip().lower() == b"close":
                keep = False
        await reader.readexactly(length)
        if not keep:
            await self.aclose()
        return status, sent

    async def aclose(self) -> None:
        if self.stream is not None:
            _, writer = self.stream
            self.stream = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


@dataclass
class Sample:
    """One logged-out session: per connection, ms from the request to the close frame."""

    target: int  # index of the worker the logout went to
    close_ms: list[float]
    http_ms: float
    codes: Counter[int]
    transitions: int  # connections that got the closing transition before the close


async def logout_samples(
    ws_port: int, targets: Sequence[int], sessions: Sequence[tuple[str, str]], k: int, compression: bool
) -> list[Sample]:
    """For each session in turn: K connections on ``ws_port``, then a logout to ``targets[i % len(targets)]``."""
    uri = f"ws://{harness.HOST}:{ws_port}/api/ws"
    https = [Http(port) for port in targets]
    options: dict[str, Any] = {"compression": "deflate" if compression else None, "ping_interval": None}
    samples: list[Sample] = []

    async def opened(headers: dict[str, str]) -> Timed:
        ws = await connect(uri, additional_headers=headers, create_connection=Timed, **options)
        welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if welcome.get("type") != "welcome":
            raise RuntimeError(f"expected welcome, got {welcome}")
        assert isinstance(ws, Timed)  # create_connection=Timed
        return ws

    async def watch(ws: Timed) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for text in ws:
                message = json.loads(text)
                if message.get("type") == "transition" and message.get("to_state") == "closed":
                    ws.transition_at = time.perf_counter()

    try:
        for i, (_, token) in enumerate(sessions):
            headers = {"Authorization": f"Bearer {token}"}
            # The first connection alone, then the rest at once: a session's first connections opened all at
            # once deadlocked on PostgreSQL before the FOR NO KEY UPDATE fix; kept so runs stay comparable.
            first = await opened(headers)
            conns = [first, *await asyncio.gather(*(opened(headers) for _ in range(k - 1)))]
            watchers = [asyncio.create_task(watch(ws)) for ws in conns]
            await asyncio.sleep(0.02)  # let the server finish with the opens
            http = https[i % len(https)]
            status, sent = await http.post("/api/auth/logout", token)
            answered = time.perf_counter()
            if status != 200:
                raise RuntimeError(f"logout answered {status}")
            await asyncio.wait_for(asyncio.gather(*watchers), 10)
            timed: list[Timed] = list(conns)
            samples.append(
                Sample(
                    target=i % len(https),
                    close_ms=[(ws.close_at - sent) * 1e3 for ws in timed if ws.close_at is not None],
                    http_ms=(answered - sent) * 1e3,
                    codes=Counter(ws.close_code or 1006 for ws in timed),
                    transitions=sum(1 for ws in timed if ws.transition_at is not None),
                )
            )
    finally:
        for http in https:
            await http.aclose()
    return samples


# -- reporting ---------------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100), at least 1
    return float(ordered[int(min(rank, len(ordered))) - 1])


def log_summary(path: Path, top: int = 4) -> str:
    """Warnings and errors in a server log, counted by message (ids and numbers masked)."""
    counts: Counter[str] = Counter()
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            level = next((word for word in ("CRITICAL", "ERROR", "WARNING") if f" {word} " in line), None)
            if level is not None:
                message = line.split("] ", 1)[-1] if "] " in line else line.split(f" {level} ", 1)[-1]
                counts[f"{level} " + re.sub(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}|\d+", "#", message)[:110]] += 1
    if not counts:
        return "no warnings or errors"
    shown = "; ".join(f"{n:,} x {message!r}" for message, n in counts.most_common(top))
    return shown + (f"; {len(counts) - top} more kinds" if len(counts) > top else "")


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def code_names(codes: dict[Any, int]) -> str:
    if not codes:
        return "none"
    parts = []
    for code, n in sorted(codes.items(), key=lambda item: -item[1]):
        row = BY_CODE.get(int(code)) if str(code).isdigit() else None
        parts.append(f"{n:,} x {code}{f' {row.name}' if row else ''}")
    return ", ".join(parts)


@dataclass
class Judged:
    label: str
    shown: str
    target: str
    passed: bool | None  # None: not judged (and why is in ``shown``)


class Profile:
    """py-spy sampling the server's thread that holds the GIL for ``seconds``, in the background.

    The server is one process bound by its GIL: the event loop and the worker threads of ``asyncio.to_thread``
    take turns. Sampling only the GIL holder shows where that shared time goes.
    """

    def __init__(self, pid: int, seconds: float, output: Path) -> None:
        self.output = output
        self.spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
        self.process: subprocess.Popen[bytes] | None = None
        if self.spy is not None:
            argv = [self.spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--rate", "100"]
            argv += ["--gil", "--threads", "--format", "raw", "--output", str(output)]
            self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def report(self, top: int = 16) -> None:
        print("  profile     py-spy on the server during the hold, sampling the thread holding the GIL (--gil)")
        if self.process is None:
            print("              skipped: py-spy not found (pip install py-spy)")
            return
        try:
            _, stderr = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            stderr = b"timed out"
        if not self.output.exists():
            print(f"              skipped: py-spy failed: {stderr.decode(errors='replace').strip()[-300:]}")
            return
        threads: Counter[str] = Counter()
        inclusive: Counter[str] = Counter()
        leaves: Counter[str] = Counter()
        total = 0
        for line in self.output.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames, n = stack.split(";"), int(count)
            total += n
            thread = frames[0].split(": ", 1)[-1] if frames[0].startswith("thread") else "?"
            threads["event loop" if thread == "MainThread" else "threads " + thread.rstrip("0123456789_")] += n
            leaves[_frame(frames[-1])] += n
            for name in {_frame(f) for f in frames[1:] if _ours(f) and not _entry(f)}:
                inclusive[name] += n
        if not total:
            print("              no samples")
            return
        shares = ", ".join(f"{name} {100 * n / total:.0f}%" for name, n in threads.most_common())
        print(f"              {total:,} samples: {shares}")
        print("              self time by function (% of all samples):")
        for name, n in leaves.most_common(top // 2):
            print(f"                {100 * n / total:5.1f}%  {name}")
        print("              our functions most often on the stack (inclusive, % of all samples):")
        for name, n in inclusive.most_common(top):
            print(f"                {100 * n / total:5.1f}%  {name}")


OURS = re.compile(r"(^|/)(api|persistence|lifecycle)/")  # py-spy names our files relative to the working directory


def _ours(frame: str) -> bool:
    path = frame.rpartition(" (")[2]
    return "site-packages/" not in path and OURS.search(path) is not None


def _entry(frame: str) -> bool:
    """The frames from ``python -m api.cli serve`` down to the event loop: on every sample of it."""
    path = frame.rpartition(" (")[2]
    return path.startswith(("api/cli.py", "api/server.py")) or "/api/cli.py" in path or "/api/server.py" in path


def _frame(frame: str) -> str:
    """``name (path:line)`` as ``name (module)``: ours by module, libraries by package."""
    name, _, where = frame.rpartition(" (")
    path = where.rsplit(":", 1)[0]
    if "site-packages/" in path:
        return f"{name} ({path.split('site-packages/', 1)[1].split('/', 1)[0].removesuffix('.py')})"
    if (ours := OURS.search(path)) is not None:
        return f"{name} ({path[ours.start(2) :].removesuffix('.py').replace('/', '.')})"
    return f"{name} ({Path(path).stem})"


# -- (a) capacity ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
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


class Capacity:
    """(a): one server, its sessions and its client processes; each step prints its part of the report."""

    def __init__(self, stack: contextlib.ExitStack, workdir: Path, plan: Plan) -> None:
        self.stack = stack
        self.workdir = workdir
        self.plan = plan
        self.url = f"sqlite:///{workdir / 'capacity.db'}"
        self.clients: list[Client] = []
        self.rss_idle = self.fds_idle = 0
        self.profile: Profile | None = None

    def start(self) -> None:
        """Sessions, then the server, warmed up; its RSS before any held connection."""
        plan = self.plan
        per_session = -(-plan.connections // plan.sessions)
        env = server_env(self.url, secrets.token_urlsafe(48), plan.heartbeat, 2 * per_session, plan.connections + 100)
        print(
            f"\n(a) capacity: one worker, SQLite; {plan.connections:,} connections over {plan.sessions:,} sessions"
            f" ({per_session:,} each), Authorization: Bearer on the handshake"
        )
        sessions, made_in = make_sessions(env, plan.sessions + 1)
        warm, sessions = sessions[0], sessions[1:]
        self.tokens = self.workdir / "capacity-tokens.txt"
        self.tokens.touch(mode=0o600)
        self.tokens.write_text("".join(f"{token}\n" for _, token in sessions))
        self.server = start_worker(self.stack, "capacity server", env, self.workdir / "capacity-server.log")
        print(
            f"  settings    heartbeat interval {plan.heartbeat:g} s (the server pings every connection that often and"
            f" drops it after 3 missed pongs); hold {plan.hold:g} s after the ramp"
        )
        print(
            "              SESSIONFLOW_WS_MAX_CONNECTIONS_PER_ADDRESS="
            f"{env['SESSIONFLOW_WS_MAX_CONNECTIONS_PER_ADDRESS']}, SESSIONFLOW_WS_MAX_CONNECTIONS_PER_SESSION="
            f"{env['SESSIONFLOW_WS_MAX_CONNECTIONS_PER_SESSION']}; permessage-deflate"
            f" {'negotiated (as browsers do)' if plan.compression else 'off (--no-compression)'}"
        )
        print(f"  sessions    {len(sessions):,} made beforehand by Flows.login_user in {made_in:.1f} s, untimed")
        # Warm up (imports, compiled statements, pools) with a few connections, then the baseline.
        asyncio.run(logout_samples(self.server.port, [self.server.port], [warm], 5, plan.compression))
        time.sleep(1.0)
        self.rss_idle, self.fds_idle = rss_bytes(self.server.pid), open_fds(self.server.pid)

    def ramp(self) -> None:
        plan = self.plan
        n, extra = divmod(plan.connections, plan.clients)
        share = [n + (1 if k < extra else 0) for k in range(plan.clients)]
        first = 0
        began, wall = time.monotonic(), time.time()
        for k, count in enumerate(share):
            argv = [str(self.server.port), str(self.tokens), str(first), str(count), str(plan.window)]
            log = self.workdir / f"capacity-client-{k}.log"
            argv += [f"{plan.ramp_budget:g}", str(int(plan.compression))]
            self.clients.append(start_client(self.stack, argv, log))
            first += count
        ramped = [client.expect("RAMPED", plan.ramp_budget + 90) for client in self.clients]
        seconds = time.monotonic() - began
        opened = sum(r["open"] for r in ramped)
        failures: Counter[str] = Counter()
        for r in ramped:
            failures.update(r["failures"])
        print(
            f"  clients     {plan.clients} processes ({', '.join(f'{n:,}' for n in share)} connections), at most"
            f" {plan.window} handshakes in flight each, none started after {plan.ramp_budget:g} s"
        )
        print(
            f"  fd limits   server process {proc_fd_limit(self.server.pid)};"
            f" client processes {proc_fd_limit(self.clients[0].process.pid)}"
        )
        print(
            f"  ramp        {opened:,} of {plan.connections:,} open and welcomed in {seconds:.1f} s"
            f" ({opened / seconds:,.0f}/s, from the first client start); failures: {code_names(failures)};"
            f" server RSS then {mib(rss_bytes(self.server.pid))}"
        )
        times = sorted(t for r in ramped for t in r["opened"])
        if len(times) >= 50:
            edges = [wall] + [times[min(len(times) - 1, len(times) * i // 5)] for i in range(1, 6)]
            rates = [(len(times) / 5) / max(b - a, 1e-3) for a, b in itertools.pairwise(edges)]
            shown = ", ".join(f"{r:,.0f}" for r in rates)
            print(f"              welcomes per second, by fifth of the connections opened: {shown}")

    def hold(self) -> int:
        """Hold for ``plan.hold`` seconds; the connections still open that answered two pings or more."""
        plan, pid = self.plan, self.server.pid
        for client in self.clients:
            client.send("mark")
        for client in self.clients:
            client.expect("MARKED", 30)
        pids = [client.process.pid for client in self.clients]
        cpu0, clients0, wall0 = harness.cpu_seconds(pid), sum(harness.cpu_seconds(p) for p in pids), time.monotonic()
        profile = Profile(pid, plan.hold - 2, self.workdir / "server.pyspy.txt") if plan.profile else None
        time.sleep(plan.hold)
        for client in self.clients:
            client.send("status 2")
        held = [client.expect("STATUS", 60) for client in self.clients]
        elapsed = time.monotonic() - wall0
        cpu = (harness.cpu_seconds(pid) - cpu0) / elapsed
        clients_cpu = (sum(harness.cpu_seconds(p) for p in pids) - clients0) / elapsed
        rss_full, fds_full = rss_bytes(pid), open_fds(pid)
        rows_open, rows_beating = connection_rows(self.url, 1.5 * plan.heartbeat)
        still_open = sum(h["open"] for h in held)
        answering = sum(h["answering"] for h in held)
        pinged = sum(h["pinged"] for h in held)
        pongs = sum(h["pongs"] for h in held)
        counts = [h["pings"] for h in held if h["open"]]
        pings = (
            (min(c[0] for c in counts), statistics.median(c[1] for c in counts), max(c[2] for c in counts))
            if counts
            else (0, 0, 0)
        )
        print(
            f"  hold        {plan.hold:g} s: {still_open:,} open; {answering:,} answered >= 2 pings during the hold"
            f" (the judged figure), {pinged:,} answered >= 1"
        )
        print(
            f"              pings answered per connection: min {pings[0]}, median {pings[1]:g}, max {pings[2]};"
            f" {pongs / plan.hold:,.0f} pongs/s in all, where the interval asks for"
            f" {still_open / plan.heartbeat:,.0f}/s"
        )
        gaps = [h["gaps"] for h in held if h["gaps"]]
        if gaps:
            print(
                f"              seconds between two pings on one connection (interval {plan.heartbeat:g} s):"
                f" p50 {statistics.median(g[0] for g in gaps):.2f}, p99 {max(g[1] for g in gaps):.2f},"
                f" max {max(g[2] for g in gaps):.2f}"
            )
        print(
            f"              the server's rows: {rows_open:,} connections open, {rows_beating:,} with a heartbeat"
            f" recorded in the last {1.5 * plan.heartbeat:g} s"
        )
        print(
            f"              CPU during the hold: server {100 * cpu:.0f}% of one core, clients {100 * clients_cpu:.0f}%;"
            f" load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus"
        )
        closes: Counter[int] = Counter()
        failures: Counter[str] = Counter()
        for h in held:
            closes.update({int(code): n for code, n in h["closes"].items()})
            failures.update(h["failures"])
        print(
            f"  closed      by the server or lost, after welcome: {code_names(closes)}; before: {code_names(failures)}"
        )
        per_connection = (rss_full - self.rss_idle) / still_open if still_open else float("nan")
        print(
            f"  memory      server RSS {mib(self.rss_idle)} before connecting, {mib(rss_full)} at the end of the hold:"
            f" {per_connection / 1024:,.1f} KiB per connection"
        )
        client_delta = sum(h["rss"] - h["rss_before"] for h in held)
        print(
            f"              clients RSS grew by {mib(client_delta)} in all"
            f" ({client_delta / max(still_open, 1) / 1024:,.1f} KiB per connection);"
            f" server open fds {self.fds_idle:,} before, {fds_full:,} at full load"
        )
        self.profile = profile
        return answering

    def close(self) -> None:
        for client in self.clients:
            client.send("close")
        closed = [client.expect("CLOSED", 150) for client in self.clients]
        began = time.monotonic()
        while (left := connection_rows(self.url, 1.0)[0]) and time.monotonic() - began < 15:
            time.sleep(0.5)
        print(
            f"  close       clients closed {sum(c['open'] for c in closed):,} with 1000 in"
            f" {max(c['close_seconds'] for c in closed):.1f} s; {left:,} rows still open"
            f" {time.monotonic() - began:.1f} s later; server RSS then {mib(rss_bytes(self.server.pid))}"
        )
        for client in self.clients:
            with contextlib.suppress(subprocess.TimeoutExpired):
                client.process.wait(15)
        print(f"  server log  {log_summary(self.server.log)}")
        if self.profile is not None:
            self.profile.report()


def capacity(stack: contextlib.ExitStack, workdir: Path, plan: Plan) -> Judged:
    run = Capacity(stack, workdir, plan)
    run.start()
    run.ramp()
    answering = run.hold()
    run.close()
    label = "(a) connections one worker holds, heartbeats running"
    if plan.connections < CAPACITY_TARGET:
        shown = f"{answering:,} of {plan.connections:,} (only {plan.connections:,} opened: not judged)"
        return Judged(label, shown, f">= {CAPACITY_TARGET:,}", None)
    return Judged(label, f"{answering:,}", f">= {CAPACITY_TARGET:,}", answering >= CAPACITY_TARGET)


# -- (b), (c) logout to close --------------------------------------------------------------------


def describe_latency(label: str, samples: Sequence[Sample], k: int, target_ms: float | None) -> Judged | None:
    times = sorted(t for s in samples for t in s.close_ms)
    expected = len(samples) * k
    codes: Counter[int] = Counter()
    for s in samples:
        codes.update(s.codes)
    transitions = sum(s.transitions for s in samples)
    http = sorted(s.http_ms for s in samples)
    spreads = sorted(max(s.close_ms) - min(s.close_ms) for s in samples if s.close_ms)
    blocks = 5
    size = max(1, len(samples) // blocks)
    block_p99 = [
        percentile(sorted(t for s in samples[b * size : (b + 1) * size] for t in s.close_ms), 99) for b in range(blocks)
    ]
    block_p99 = [v for v in block_p99 if not math.isnan(v)]  # empty blocks
    p50, p99 = percentile(times, 50), percentile(times, 99)
    print(f"  {label}")
    print(
        f"    logout -> close frame, ms   p50 {p50:7.2f}  p90 {percentile(times, 90):7.2f}  p99 {p99:7.2f}"
        f"  max {times[-1] if times else float('nan'):7.2f}   ({len(times):,} connections of {expected:,},"
        f" {len(samples)} sessions)"
    )
    if block_p99:
        print(
            f"    p99 per fifth of the sessions: {min(block_p99):.2f}-{max(block_p99):.2f} ms; first to last close"
            f" of one session: p50 {percentile(spreads, 50):.2f}, p99 {percentile(spreads, 99):.2f} ms"
        )
    print(
        f"    logout HTTP response, ms     p50 {percentile(http, 50):7.2f}  p99 {percentile(http, 99):7.2f};"
        f" close codes: {code_names(codes)}; closing transition seen first on {transitions:,}"
    )
    if target_ms is None:
        return None
    complete = len(times) == expected and codes.get(4410, 0) == expected
    return Judged(
        label.split(":", maxsplit=1)[0],
        f"p99 {p99:.2f} ms" + ("" if complete else f" (only {codes.get(4410, 0):,} of {expected:,} closed with 4410)"),
        f"< {target_ms:g} ms",
        p99 < target_ms and complete,
    )


def logout_one_worker(stack: contextlib.ExitStack, workdir: Path, plan: Plan) -> Judged:
    url = f"sqlite:///{workdir / 'logout.db'}"
    k, warmup = plan.per_session, 3
    env = server_env(url, secrets.token_urlsafe(48), plan.heartbeat, k, 4 * k + 100)
    print(
        f"\n(b) logout to close, one worker, SQLite: {plan.samples} sessions x {k} connections, one session at a time"
    )
    sessions, _ = make_sessions(env, plan.samples + warmup)
    server = start_worker(stack, "logout server", env, workdir / "logout-server.log")
    samples = asyncio.run(logout_samples(server.port, [server.port], sessions, k, plan.compression))[warmup:]
    judged = describe_latency(
        "(b) one worker: connections and logout on the same worker", samples, k, P99_ONE_WORKER_MS
    )
    assert judged is not None
    return judged


def logout_two_workers(stack: contextlib.ExitStack, workdir: Path, plan: Plan, postgres_url: str) -> Judged:
    k, warmup = plan.per_session, 4
    with harness.temporary_postgres(postgres_url, prefix="sessionflow_bench_ws") as url:
        env = server_env(url, secrets.token_urlsafe(48), plan.heartbeat, k, 4 * k + 100)
        print(
            f"\n(c) logout to close across two workers, PostgreSQL: {2 * plan.samples} sessions x {k} connections,"
            " all on worker A; logouts alternate between worker B (judged) and worker A (shown)"
        )
        sessions, _ = make_sessions(env, 2 * plan.samples + warmup)
        a = start_worker(stack, "worker A", env, workdir / "worker-a.log")
        b = start_worker(stack, "worker B", env, workdir / "worker-b.log")
        try:
            samples = asyncio.run(logout_samples(a.port, [b.port, a.port], sessions, k, plan.compression))[warmup:]
        finally:
            harness.stop_process(a.process)  # before the database is dropped
            harness.stop_process(b.process)
    cross = [s for s in samples if s.target == 0]
    same = [s for s in samples if s.target == 1]
    judged = describe_latency(
        "(c) across workers: connections on A, logout to B (pg_notify, LISTEN)", cross, k, P99_CROSS_WORKER_MS
    )
    describe_latency("    same worker on PostgreSQL: connections on A, logout to A (not judged)", same, k, None)
    assert judged is not None
    return judged


# -- environment and main -------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return "unknown"


def environment(limits: FdLimits, plan: Plan, postgres_url: str | None) -> None:
    memory = next((line.split()[1] for line in _read("/proc/meminfo").splitlines() if line.startswith("MemTotal")), "0")
    ports = _read("/proc/sys/net/ipv4/ip_local_port_range").split()
    ephemeral = int(ports[1]) - int(ports[0]) + 1 if len(ports) == 2 else 0
    ws_impl = getattr(AutoWebSocketsProtocol, "__name__", "none")
    harness.print_header("bench/ws.py", OWN_FILES, "under " + " ".join(OWN_FILES))
    load = harness.load_average()
    print(f"  machine     {os.cpu_count()} cpus (load average {load}), {int(memory) / 2**20:.1f} GiB memory")
    loop = "uvloop" if harness.package_version("uvloop") != "not installed" else "asyncio"
    litestar, uvicorn, websockets, sqlalchemy, psycopg = map(
        harness.package_version, ("litestar", "uvicorn", "websockets", "sqlalchemy", "psycopg")
    )
    print(f"  litestar    {litestar}; uvicorn {uvicorn} ({ws_impl}, {loop} loop, 1 worker each)")
    print(f"  websockets  {websockets} (server protocol and client); sqlalchemy {sqlalchemy}")
    print(f"  sqlite      {sqlite3.sqlite_version}; psycopg {psycopg}")
    if postgres_url is not None:
        print(f"  postgresql  {harness.postgres_version(postgres_url)}")
    (soft, hard), (new_soft, _) = limits.found, limits.set_to
    raised = f"raised the soft limit to {new_soft}" if new_soft != soft else "no raise needed (soft = hard)"
    print(f"  fd limit    RLIMIT_NOFILE found soft {soft}, hard {hard}; {raised}; subprocesses inherit it")
    server_needs = plan.connections + SPARE_FDS
    client_needs = -(-plan.connections // plan.clients) + SPARE_FDS
    print(
        f"              needed: about {server_needs:,} in the server, {client_needs:,} per client process"
        f" (one socket per connection, each side)"
    )
    print(
        f"  ports       ephemeral range {' to '.join(ports)} ({ephemeral:,} ports): {plan.connections:,} connections"
        f" from {harness.HOST} to one port {'fit' if plan.connections < ephemeral else 'DO NOT fit'};"
        f" somaxconn {_read('/proc/sys/net/core/somaxconn')}, uvicorn backlog 2048"
    )
    print(f"  note        the clients, the servers and this script share the {os.cpu_count()} cpus; loopback only")


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, Plan]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add = parser.add_argument
    add("--quick", action="store_true", help="2,000 connections, 5 s heartbeats, fewer samples (about a minute)")
    add("--connections", type=int, help=f"held in (a) (default {CAPACITY_TARGET:,}, quick 2,000)")
    add("--sessions", type=int, help="sessions the connections of (a) are spread over (default connections/100)")
    add("--heartbeat", type=float, help="SESSIONFLOW_WS_HEARTBEAT_INTERVAL in s (default 10, quick 5)")
    add("--clients", type=int, default=2, help="client processes in (a) (default 2)")
    add("--ramp-seconds", type=float, help="no handshake starts after this (default 150, quick 60)")
    add("--window", type=int, default=100, help="handshakes in flight per client process (default 100)")
    add("--samples", type=int, help="sessions logged out in (b), and per worker in (c) (default 100, quick 30)")
    add("--per-session", type=int, default=10, help="connections per logged-out session (default 10)")
    add("--no-compression", action="store_true", help="clients do not offer permessage-deflate")
    add(
        "--postgres-url",
        default=harness.DEFAULT_POSTGRES_URL,
        help="loopback server for (c); a temporary database is made",
    )
    add("--no-postgres", action="store_true", help="skip (c)")
    add("--only", choices=("capacity", "logout", "cross"), action="append", help="run only these parts")
    add("--profile", action="store_true", help="sample the server with py-spy during the hold of (a)")
    add("--strict", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    connections = args.connections or (2_000 if args.quick else CAPACITY_TARGET)
    heartbeat = args.heartbeat or (5.0 if args.quick else 10.0)
    plan = Plan(
        connections=connections,
        sessions=args.sessions or max(1, connections // 100),
        clients=args.clients,
        window=args.window,
        heartbeat=heartbeat,
        hold=2.5 * heartbeat,
        ramp_budget=args.ramp_seconds or (60.0 if args.quick else 150.0),
        samples=args.samples or (30 if args.quick else 100),
        per_session=args.per_session,
        compression=not args.no_compression,
        quick=args.quick,
        profile=args.profile,
    )
    if not (1 <= plan.connections <= MAX_CONNECTIONS and 1 <= plan.sessions <= plan.connections):
        parser.error(f"keep --connections in 1..{MAX_CONNECTIONS:,} and --sessions in 1..connections")
    if not (1 <= plan.clients <= 8 and 1 <= plan.window <= 1000 and 1 <= heartbeat <= 60):
        parser.error("keep --clients in 1..8, --window in 1..1000 and --heartbeat in 1..60")
    if not 5 <= plan.ramp_budget <= 900:
        parser.error("keep --ramp-seconds in 5..900")
    if not (5 <= plan.samples <= 1000 and 1 <= plan.per_session <= 100):
        parser.error("keep --samples in 5..1000 and --per-session in 1..100")
    return args, plan


@contextlib.contextmanager
def part() -> Iterator[tuple[contextlib.ExitStack, Path]]:
    """A scratch directory and a stack that stops every process of one part before the next starts."""
    with contextlib.ExitStack() as stack:
        yield stack, Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sessionflow-bench-ws-")))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    harness.line_buffered_stdout()
    if argv[:1] == ["--client"]:  # a capacity client's own process
        return client_main(argv[1:8])
    args, plan = parse(argv)
    parts = set(args.only or ("capacity", "logout", "cross"))
    postgres_url = None if args.no_postgres or "cross" not in parts else args.postgres_url
    limits = raise_fd_limit()
    environment(limits, plan, postgres_url)
    soft = limits.set_to[0]
    if "capacity" in parts and soft != resource.RLIM_INFINITY and soft < plan.connections + SPARE_FDS:
        print(f"\nfd limit {soft} is below what (a) needs; raise the hard limit (ulimit -Hn, prlimit) or open fewer")
        return 2

    harness.interrupt_on_sigterm()
    judged: list[Judged] = []
    if "capacity" in parts:
        with part() as (stack, workdir):
            judged.append(capacity(stack, workdir, plan))
    if "logout" in parts:
        with part() as (stack, workdir):
            judged.append(logout_one_worker(stack, workdir, plan))
    if "cross" in parts and postgres_url is None:
        print("\n(c) across workers: skipped (--no-postgres)")
    elif "cross" in parts and (reason := harness.postgres_unreachable(postgres_url)) is not None:
        print(f"\n(c) across workers: skipped, PostgreSQL unreachable: {reason}")
    elif "cross" in parts:
        with part() as (stack, workdir):
            judged.append(logout_two_workers(stack, workdir, plan, postgres_url))

    print("\ntargets")
    width = max((len(row.shown) for row in judged), default=0) + 2
    for row in judged:
        print(f"  {row.label:<56}{row.shown:<{width}}{row.target:<12}{harness.verdict(row.passed)}".rstrip())
    missed = harness.print_targets((row.label, row.passed) for row in judged)
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
