"""The load of (a): client processes that open and hold connections, and the script's handle on each.

A client is ``python bench/ws.py --client ...`` (see ``client_main``), so that it starts like the script
itself; it talks to the script by lines, commands on its stdin and JSON reports on its stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from bench import harness
from bench.ws_report import percentile
from bench.ws_setup import rss_bytes

SCRIPT = Path(__file__).resolve().with_name("ws.py")  # run again, with --client, for each client process
PONG = '{"type":"pong"}'


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
            [sys.executable, str(SCRIPT), "--client", *argv],
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
