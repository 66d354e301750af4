"""(b) and (c): per connection, the time from a logout request to the close frame (4410) it causes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from bench import harness
from bench.ws_report import Judged, code_names, percentile
from bench.ws_setup import Plan, make_sessions, server_env, start_worker

P99_ONE_WORKER_MS = 100.0
P99_CROSS_WORKER_MS = 500.0


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


FANOUTS = {"postgres": "pg_notify, LISTEN", "redis": "Redis, published after commit"}


def logout_two_workers(
    stack: contextlib.ExitStack,
    workdir: Path,
    plan: Plan,
    postgres_url: str,
    *,
    fanout: str = "postgres",
    redis_url: str = "",
) -> Judged:
    k, warmup = plan.per_session, 4
    with harness.temporary_postgres(postgres_url, prefix="sessionflow_bench_ws") as url:
        env = server_env(url, secrets.token_urlsafe(48), plan.heartbeat, k, 4 * k + 100)
        env |= {"SESSIONFLOW_FANOUT": fanout}
        if fanout == "redis":
            env |= {"SESSIONFLOW_REDIS_URL": redis_url, "SESSIONFLOW_REDIS_CHANNEL": f"bench:{secrets.token_hex(8)}"}
        print(
            f"\n(c) logout to close across two workers, PostgreSQL, fan-out {fanout}: {2 * plan.samples} sessions x"
            f" {k} connections, all on worker A; logouts alternate between worker B (judged) and worker A (shown)"
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
        f"(c) across workers, {fanout} fan-out: connections on A, logout to B ({FANOUTS[fanout]})",
        cross,
        k,
        P99_CROSS_WORKER_MS,
    )
    describe_latency("    same worker on PostgreSQL: connections on A, logout to A (not judged)", same, k, None)
    assert judged is not None
    return judged
