"""A thousand clients cut off by a server restart: the reconnect rate the server sees, and when all are back.

Usage::

    python bench/reconnect.py [--clients N] [--per-session K] [--down S] [--addresses N]

One ``sessionflow serve`` (one worker, SQLite, the default connection caps)
on loopback. ``--clients`` WebSockets (1,000) connect with their access
tokens, spread over sessions of ``--per-session`` connections (10, the
default per-session cap) and over ``--addresses`` loopback source addresses
(5: 127.0.0.1 to 127.0.0.5), so that no address passes the default cap of 200.
Each client answers pings and reconnects as every sessionflow client does:
full-jitter backoff from 0.5 s doubling to a 30 s cap
(``sessionflow.client.Backoff``, the same rule as the TypeScript client), with
``last_seq`` to resume, forever.

Once all are connected the server is stopped (it closes every socket with
1001) and started again ``--down`` seconds (20) later on the same port and
database. Printed: handshake attempts and accepted connections per second
as the server saw them, their peak against what a storm without jitter would
be (every client at once), refusals by close code (4429 means a cap was
passed), and the time from the server's return until every client was back,
against the bound the backoff promises: its 30 s cap plus the slowest
handshake. PASS/MISS: no refusal by a cap; all back within the bound.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # bench.harness, not a script's neighbour

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from bench import harness
from bench.ws_setup import make_sessions, server_env, start_worker
from sessionflow.client import Backoff

CAP = 30.0  # the backoff's cap, seconds
OWN_FILES = ("bench/reconnect.py", "clients/python/src/sessionflow/client/backoff.py", "api/ws.py")


@dataclass
class Log:
    """What the clients saw, with times on the monotonic clock."""

    attempts: list[float] = field(default_factory=list)
    accepted: list[float] = field(default_factory=list)
    handshake: list[float] = field(default_factory=list)
    refused: Counter[int] = field(default_factory=Counter)
    back: dict[int, float] = field(default_factory=dict)  # client -> its first welcome after the drop
    dropped: float | None = None  # when the server was stopped
    restarted: float | None = None  # when the second server answered


async def client(index: int, uri: str, token: str, source: str, log: Log, stop: asyncio.Event) -> None:
    backoff = Backoff()
    last_seq: int | None = None
    while not stop.is_set():
        target = uri + (f"?last_seq={last_seq}" if last_seq is not None else "")
        started = time.monotonic()
        log.attempts.append(started)
        try:
            async with connect(
                target,
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=10,
                ping_interval=None,
                compression=None,
                local_addr=(source, 0),
            ) as ws:
                async for raw in ws:
                    message = json.loads(raw)
                    if message["type"] == "welcome":
                        now = time.monotonic()
                        log.accepted.append(now)
                        log.handshake.append(now - started)
                        last_seq = message["last_seq"]
                        backoff.connected()
                        if log.dropped is not None:
                            log.back.setdefault(index, now)
                    elif message["type"] == "ping":
                        await ws.send('{"type":"pong"}')
                    elif message["type"] == "transition":
                        last_seq = message["seq"]
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else 1006
            if code not in (1000, 1001, 1006):
                log.refused[code] += 1
        except (InvalidHandshake, OSError, TimeoutError):
            pass
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), backoff.next().seconds)


def per_second(times: Sequence[float], origin: float) -> list[int]:
    if not times:
        return []
    counts = Counter(int(t - origin) for t in times if t >= origin)
    return [counts.get(second, 0) for second in range(max(counts, default=-1) + 1)]


async def run(args: argparse.Namespace) -> bool:
    """Whether any target was missed."""
    directory = Path(tempfile.mkdtemp(prefix="sessionflow-reconnect-"))
    url = f"sqlite:///{directory / 'bench.db'}"
    env = server_env(url, secrets.token_urlsafe(32), heartbeat=25.0, per_session=args.per_session, per_address=200)
    sessions, _ = make_sessions(env, (args.clients + args.per_session - 1) // args.per_session)
    sources = [f"127.0.0.{n}" for n in range(1, args.addresses + 1)]
    log = Log()
    stop = asyncio.Event()
    with contextlib.ExitStack() as stack:
        server = start_worker(stack, "sessionflow", env, directory / "server-1.log")
        uri = f"ws://{harness.HOST}:{server.port}/api/ws"
        tasks = [
            asyncio.create_task(
                client(i, uri, sessions[i // args.per_session][1], sources[i % len(sources)], log, stop)
            )
            for i in range(args.clients)
        ]
        deadline = time.monotonic() + 120
        while len(log.accepted) < args.clients and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        print(f"connected: {len(log.accepted)} of {args.clients} clients")
        log.attempts.clear()
        log.accepted.clear()
        log.handshake.clear()
        dropped = log.dropped = time.monotonic()
        await asyncio.to_thread(harness.stop_process, server.process)
        print(f"server stopped; starting it again in {args.down:g} s")
        await asyncio.sleep(args.down)
        argv = [
            sys.executable,
            "-m",
            "sessionflow.api.cli",
            "serve",
            "--host",
            harness.HOST,
            "--port",
            str(server.port),
        ]
        second = harness.start_server(stack, "sessionflow", argv, env=env, port=server.port, log=directory / "log-2")
        await asyncio.to_thread(harness.wait_ready, second, "/api/health")
        log.restarted = time.monotonic()
        deadline = log.restarted + CAP + 30
        while len(log.back) < args.clients and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return report(args, log, dropped)


def report(args: argparse.Namespace, log: Log, dropped: float) -> bool:
    """Print the figures; whether any target was missed."""
    assert log.restarted is not None
    during = [t for t in log.attempts if t < log.restarted]
    after = per_second(log.attempts, log.restarted)
    accepted = per_second(log.accepted, log.restarted)
    print(f"while the server was down ({log.restarted - dropped:.1f} s): {len(during)} attempts in all")
    print(f"after it was back, attempts per second:  {after[:40]}")
    print(f"after it was back, accepted per second:  {accepted[:40]}")
    peak = max(after, default=0)
    share = peak / args.clients
    print(f"peak: {peak} attempts in one second, against {args.clients} at once without jitter ({share:.2f}x)")
    slowest = max(log.handshake, default=0.0)
    bound = CAP + slowest
    back = max(0.0, max(log.back.values(), default=log.restarted) - log.restarted)
    print(f"refusals by close code: {dict(log.refused) or 'none'}")
    print(f"back: {len(log.back)} of {args.clients}; the last {back:.1f} s after the server returned")
    print(f"bound: the backoff cap {CAP:g} s + the slowest handshake {slowest:.2f} s = {bound:.1f} s")
    no_cap_refusal = log.refused.get(4429, 0) == 0
    all_back = len(log.back) == args.clients and back <= bound
    return harness.print_targets(
        [
            ("no connection refused by a cap (4429)", no_cap_refusal),
            (f"all {args.clients} back within {bound:.1f} s of the server's return", all_back),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--per-session", type=int, default=10)
    parser.add_argument("--down", type=float, default=20.0, help="seconds the server stays down")
    parser.add_argument("--addresses", type=int, default=5, help="loopback source addresses to spread clients over")
    args = parser.parse_args(argv)
    harness.line_buffered_stdout()
    harness.interrupt_on_sigterm()
    harness.print_header("bench/reconnect.py", OWN_FILES, "under " + " ".join(OWN_FILES))
    return 1 if asyncio.run(run(args)) else 0


if __name__ == "__main__":
    raise SystemExit(main())
