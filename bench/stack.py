"""Which server stack to run sessionflow on: speed on the hot paths, and what each lets a client hold.

Usage::

    python bench/stack.py [--duration S] [--repeats N] [--connections N] [--sockets N]

Three stacks serve the same application (``app_from_env``, one worker, no access log, the same
SQLite file and signing secret):

- ``uvicorn-h11``: uvicorn with its pure-Python h11 parser on the asyncio loop, what ``sessionflow
  serve`` ran before: the baseline every ratio is against;
- ``uvicorn-httptools``: uvicorn with httptools and uvloop (``uvicorn[standard]``);
- ``granian``: ``sessionflow serve`` itself (granian, HTTP/1, uvloop, api/server.py).

Measured in blocks that alternate between the stacks, the order rotating every repeat (wrk, or
bench/http.py's fallback generator, ``--connections`` keep-alive connections):

- the event endpoint: ``POST /api/session/{id}/events/logout``, a transition per request (each
  request uses up a session made beforehand, outside the blocks);
- the read path: ``GET /api/session/{id}``;
- WebSocket holding: ``--sockets`` connections opened with bearer tokens and held for the block,
  answering pings every second: the server's resident memory per socket and CPU per socket-second.

Ratios are each stack's figure over the baseline's in the same repeat; the table shows their median.
Last, what each stack lets a client hold: a connection that sends nothing, half a request head, and
an 80 KiB head, each timed to the server's answer or close (capped at 15 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # bench/http.py must not shadow ``http``

from websockets.asyncio.client import connect

from bench import harness
from bench.http import EVENT_PATH, Generator, Load, SessionPool
from sessionflow.api.settings import Settings
from sessionflow.persistence import Database, migrate

OWN_FILES = ("bench/stack.py", "api/server.py", "api/limits.py")
UVICORN = [sys.executable, "-m", "uvicorn", "--factory", "sessionflow.api.app:app_from_env", "--workers", "1"]
UVICORN += ["--log-level", "warning", "--no-access-log", "--ws-per-message-deflate", "false"]
STACKS: dict[str, list[str]] = {
    "uvicorn-h11": [*UVICORN, "--http", "h11", "--loop", "asyncio"],
    "uvicorn-httptools": [*UVICORN, "--http", "httptools", "--loop", "uvloop"],
    "granian": [sys.executable, "-m", "sessionflow.api.cli", "serve", "--workers", "1"],
}
BASELINE = "uvicorn-h11"
PROBE_CAP = 15.0


@dataclass
class Stack:
    name: str
    server: harness.Server
    event: list[float] = field(default_factory=list)  # requests/s per repeat
    read: list[float] = field(default_factory=list)
    ws_kib: list[float] = field(default_factory=list)  # resident KiB per held socket
    ws_cpu_ms: list[float] = field(default_factory=list)  # CPU ms per socket-second held


def rss_kib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return float(line.split()[1])
    return float("nan")


def serving_pid(server: harness.Server) -> int:
    """The process that runs the application: granian's worker, or uvicorn itself."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    return int(children[0]) if children and server.name == "granian" else server.pid


async def hold(base: str, tokens: list[tuple[str, str]], seconds: float, pid: int) -> tuple[float, float]:
    """Open a socket per token, hold them answering pings; (resident KiB, CPU ms per socket-second) they cost."""
    url = base.replace("http://", "ws://") + "/api/ws"
    before_rss = rss_kib(pid)
    async with contextlib.AsyncExitStack() as stack:
        sockets = [
            await stack.enter_async_context(connect(url, additional_headers={"Authorization": f"Bearer {token}"}))
            for _, token in tokens
        ]
        for ws in sockets:
            json.loads(await ws.recv())  # welcome

        async def answer(ws: object) -> None:
            with contextlib.suppress(Exception):
                async for message in ws:  # type: ignore[attr-defined]
                    if json.loads(message)["type"] == "ping":
                        await ws.send('{"type":"pong"}')  # type: ignore[attr-defined]

        tasks = [asyncio.create_task(answer(ws)) for ws in sockets]
        cpu = harness.cpu_seconds(pid)
        await asyncio.sleep(seconds)
        cpu = harness.cpu_seconds(pid) - cpu
        held_rss = rss_kib(pid)
        for task in tasks:
            task.cancel()
    return (held_rss - before_rss) / len(tokens), cpu * 1000 / (len(tokens) * seconds)


def probe(port: int, request: bytes) -> str:
    """How the server answers ``request`` (or nothing), and after how long."""
    started = time.monotonic()
    with socket.create_connection((harness.HOST, port), timeout=PROBE_CAP) as sock:
        if request:
            sock.sendall(request)
        try:
            answer = sock.recv(64)
        except TimeoutError:
            return f"held > {PROBE_CAP:.0f} s"
    took = time.monotonic() - started
    status = answer.split(b"\r\n", 1)[0].decode(errors="replace") if answer else "closed"
    return f"{status[9:] if status.startswith('HTTP/') else status} after {took:.1f} s"


def report(stacks: list[Stack]) -> None:
    """Each figure's median over the repeats, and its median ratio to the baseline's in the same repeat."""
    base = next(s for s in stacks if s.name == BASELINE)
    print()
    print(
        f"{'stack':<19} {'event req/s':>12} {'ratio':>6} {'read req/s':>11} {'ratio':>6} "
        f"{'KiB/socket':>10} {'ratio':>6} {'CPU ms/socket-s':>15} {'ratio':>6}"
    )
    for s in stacks:
        cells = []
        for mine, theirs, fmt in (
            (s.event, base.event, ".0f"),
            (s.read, base.read, ".0f"),
            (s.ws_kib, base.ws_kib, ".1f"),
            (s.ws_cpu_ms, base.ws_cpu_ms, ".3f"),
        ):
            ratio = statistics.median(harness.per_repeat_ratios(mine, theirs))
            cells.append(f"{statistics.median(mine):{fmt}}")
            cells.append(f"{ratio:.2f}x")
        print(
            f"{s.name:<19} {cells[0]:>12} {cells[1]:>6} {cells[2]:>11} {cells[3]:>6} "
            f"{cells[4]:>10} {cells[5]:>6} {cells[6]:>15} {cells[7]:>6}"
        )


def limits(stacks: list[Stack]) -> None:
    """How each stack answers a silent, a slow and an oversized client."""
    print()
    print("what a client may hold (header read timeout 10 s, head limit 32 KiB where the stack has one):")
    probes = {
        "sends nothing": b"",
        "half a head": b"GET /api/health HTTP/1.1\r\nHost: x\r\n",
        "80 KiB head": b"GET /api/health HTTP/1.1\r\nHost: x\r\nCookie: c=" + b"a" * 80_000 + b"\r\n\r\n",
        "80 KiB handshake": b"GET /api/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Cookie: c=" + b"a" * 80_000 + b"\r\n\r\n",
    }
    for s in stacks:
        answers = ", ".join(f"{what}: {probe(s.server.port, request)}" for what, request in probes.items())
        print(f"  {s.name:<19} {answers}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per block")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--sockets", type=int, default=200)
    args = parser.parse_args(argv)
    harness.line_buffered_stdout()
    harness.interrupt_on_sigterm()
    harness.print_header("bench/stack.py", OWN_FILES, "to the server stack")
    for package in ("granian", "uvicorn", "httptools", "uvloop", "litestar"):
        print(f"  {package:<11} {harness.package_version(package)}")
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sessionflow-stack-")))
        url = f"sqlite:///{workdir / 'bench.db'}"
        env = harness.sessionflow_env(url, secrets.token_urlsafe(48))
        env |= {
            "SESSIONFLOW_MAX_SESSIONS_PER_USER": "1000000",
            "SESSIONFLOW_WS_MAX_CONNECTIONS_PER_ADDRESS": "100000",
            "SESSIONFLOW_WS_HEARTBEAT_INTERVAL": "1",
        }
        db = Database.from_url(url)
        migrate.upgrade(db)
        db.dispose()
        Settings.from_env({k: v for k, v in env.items() if k.startswith("SESSIONFLOW_")})
        pool = SessionPool(env, workdir / "sessions.txt")
        stack.callback(pool.close)
        generator = Generator("wrk" if shutil.which("wrk") else "python", workdir)
        stacks = []
        for name, command in STACKS.items():
            port = harness.free_port()
            server = harness.start_server(
                stack,
                name,
                [*command, "--host", harness.HOST, "--port", str(port)],
                env=env,
                port=port,
                log=workdir / f"{name}.log",
            )
            harness.wait_ready(server, "/api/health")
            stacks.append(Stack(name, server))
        readers = [pool.login() for _ in range(args.connections)]
        read_lines = workdir / "readers.txt"
        read_lines.write_text("".join(f"{r.session_id} {r.access_token}\n" for r in readers))
        print(f"  generator   {generator.describe()}, {args.connections} connections, {args.duration} s blocks")
        for s in harness.interleaved(stacks, args.repeats):
            pool.ensure(3000 * args.duration)  # above the event rate measured here, so no block runs dry
            started = time.monotonic()
            load: Load = generator.run(
                s.server.base,
                "event",
                lines=pool.path,
                offset=pool.offset,
                template=EVENT_PATH,
                connections=args.connections,
                seconds=args.duration,
            )
            pool.consumed(load, args.connections, started)
            s.event.append(load.per_second)
            load = generator.run(
                s.server.base,
                "read",
                lines=read_lines,
                offset=0,
                template="/api/session/%s",
                connections=args.connections,
                seconds=args.duration,
            )
            s.read.append(load.per_second)
            holders = [(str(i.session_id), i.access_token) for i in (pool.login() for _ in range(args.sockets))]
            kib, cpu = asyncio.run(hold(s.server.base, holders, args.duration, serving_pid(s.server)))
            s.ws_kib.append(kib)
            s.ws_cpu_ms.append(cpu)
        report(stacks)
        limits(stacks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
