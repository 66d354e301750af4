"""What one open inspector costs the server: transitions/s under the HTTP benchmark's load, with and without it.

Usage::

    python bench/inspector.py [--quick] [--repeats N] [--duration S] [--connections N]
                              [--postgres] [--postgres-url URL] [--generator wrk|python] [--strict]

One ``sessionflow serve`` (one worker, log level warning) on a temporary
SQLite file or, with ``--postgres``, a temporary PostgreSQL database. The load
is bench/http.py's: its generator sends ``POST /api/session/{id}/events/logout``
with sessions made beforehand, untimed, each request one persisted transition.
Blocks of the same length alternate between two variants on the same server,
the order rotating every repeat:

- without an inspector;
- with one open inspector: an admin's feed (``/api/inspector/feed``, what the
  page keeps open) connected for the whole block, reading every message, in
  a thread of this script (the page's own rendering runs in the browser, not
  on the server).

Transitions/s is read from the store: the rise of ``transitions.id`` over a
block, per second. Target: with the inspector, at least 0.95x the
transitions/s without it (at most 5% less), as the median of per-repeat
ratios. The feed's items are counted too, as a check that it kept up.
``--strict`` exits 1 if the target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import secrets
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path: put the repository root there instead, so
# that ``bench`` imports and bench/http.py does not shadow the standard library's ``http`` (which urllib, below,
# imports). Nothing above imports ``http``; the imports below follow on purpose.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import urllib.request

from sqlalchemy import make_url, text
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from bench import harness
from bench.http import (
    EVENT_PATH,
    UNBOUNDED,
    Generator,
    Load,
    Plan,
    SessionPool,
    add_load_options,
    generator_kind,
    median,
    plan_from,
)
from sessionflow.api.auth.flows import Issued
from sessionflow.api.settings import Settings
from sessionflow.lifecycle import SystemClock
from sessionflow.persistence import Database, migrate, users
from sessionflow.persistence.users import create_user

OWN_FILES = ("bench/inspector.py", "api/inspector", "persistence/inspection.py")
TARGET = harness.Target(">=", 0.95)  # transitions/s with one open inspector against without, same repeat


class Inspector:
    """One admin's feed, open for a block, every message read in a thread; counts what it received."""

    def __init__(self, base: str, access_token: str, session_id: str) -> None:
        request = urllib.request.Request(
            f"{base}/api/session/{session_id}/ws-ticket",
            method="POST",
            headers={"Authorization": f"Bearer {access_token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            ticket = json.loads(response.read())["ticket"]
        url = base.replace("http://", "ws://") + f"/api/inspector/feed?ticket={ticket}"
        self._stack = contextlib.ExitStack()
        self.socket = self._stack.enter_context(
            ws_connect(url, proxy=None, open_timeout=10, close_timeout=5, compression=None, max_size=None)
        )
        welcome = json.loads(self.socket.recv(timeout=10))
        if welcome.get("type") != "welcome":
            raise RuntimeError(f"the feed did not welcome the inspector: {welcome}")
        self.items = 0
        self.last_seq = int(welcome["seq"])
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            for raw in self.socket:
                message = json.loads(raw)
                if message["type"] == "transitions":
                    self.items += len(message["items"])
                    self.last_seq = message["items"][-1]["seq"]

    def close(self) -> None:
        self._stack.close()
        self._thread.join(10)


@dataclass
class Variant:
    label: str
    inspector: bool
    rates: list[float] = field(default_factory=list)  # transitions/s, from the store
    loads: list[Load] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # the server's CPU seconds per block
    lag: list[int] = field(default_factory=list)  # transitions the feed had not delivered when the block ended

    def cpu_ms(self) -> list[float]:
        """The server's CPU milliseconds per transition, one figure per block."""
        return [
            1e3 * cpu / (rate * load.seconds) for cpu, rate, load in zip(self.cpu, self.rates, self.loads, strict=True)
        ]


def newest_seq(db: Database) -> int:
    with db.engine.connect() as connection:
        return int(connection.execute(text("SELECT coalesce(max(id), 0) FROM transitions")).scalar_one())


def measure(
    server: harness.Server, variants: Sequence[Variant], pool: SessionPool, generator: Generator, plan: Plan
) -> None:
    admin = _admin(pool)
    best = 0.0

    def block(variant: Variant, seconds: int) -> tuple[Load, float, float, int]:
        nonlocal best
        pool.ensure(math.ceil(max(best, 500.0) * seconds * 1.6) + plan.connections + 100)
        inspector = Inspector(server.base, admin.access_token, str(admin.session_id)) if variant.inspector else None
        try:
            before, cpu, started = newest_seq(pool.ctx.db), harness.cpu_seconds(server.pid), time.monotonic()
            load = generator.run(
                server.base,
                "event",
                lines=pool.path,
                offset=pool.offset,
                template=EVENT_PATH,
                connections=plan.connections,
                seconds=seconds,
            )
            after, cpu = newest_seq(pool.ctx.db), harness.cpu_seconds(server.pid) - cpu
            lag = after - inspector.last_seq if inspector is not None else 0
        finally:
            if inspector is not None:
                inspector.close()
        pool.consumed(load, plan.connections, started)
        rate = (after - before) / load.seconds
        best = max(best, rate)
        return load, cpu, rate, lag

    for variant in variants:
        block(variant, plan.warm_up)
    for variant in harness.interleaved(variants, plan.repeats):
        load, cpu, rate, lag = block(variant, plan.seconds)
        variant.loads.append(load)
        variant.cpu.append(cpu)
        variant.rates.append(rate)
        variant.lag.append(lag)


def _admin(pool: SessionPool) -> Issued:
    """A logged-in admin session (``Issued``), made like the pool's sessions, without a password."""
    name = f"bench-admin-{secrets.token_hex(5)}"
    create_user(pool.ctx.db, name, None, is_admin=True, now=SystemClock().now())
    user = users.by_name(pool.ctx.db, name)
    assert user is not None
    return pool.ctx.flows.login_user(user)


def report(variants: Sequence[Variant], plan: Plan) -> bool:
    without, with_ = variants
    spread = harness.value_range
    print(
        f"\nwith and without one open inspector: {plan.connections} connections, {plan.seconds} s blocks,"
        f" median of {plan.repeats} repeats; the blocks alternate, the order rotating every repeat"
    )
    print(
        f"  {'variant':<40}{'transitions/s':>14} {'(range)':<15}{'cpu busy':>9} {'(range)':<11}"
        f"{'cpu ms/transition':>18} {'(range)':<15}{'p99 ms':>7}"
    )
    for v in variants:
        busy = [100 * cpu / load.seconds for cpu, load in zip(v.cpu, v.loads, strict=True)]
        per = v.cpu_ms()
        p99 = [x.p99_ms for x in v.loads]
        print(
            f"  {v.label:<40}{median(v.rates):>14,.0f} {spread(v.rates, ',.0f'):<15}"
            f"{median(busy):>8.0f}% {spread(busy, '.0f'):<11}{median(per):>18.3f} {spread(per, '.3f'):<15}"
            f"{median(p99):>7.2f}"
        )
    if all(with_.cpu_ms()) and all(without.cpu_ms()):
        cpu = harness.per_repeat_ratios(with_.cpu_ms(), without.cpu_ms())
        print(
            f"  server CPU per transition, with against without: {median(cpu):.2f}x {spread(cpu, '.2f')}"
            " (less noisy than throughput on a shared machine; shown, not judged)"
        )
    else:  # the process started is not the one serving (a supervisor): its own CPU says nothing
        print("  server CPU: not measured (the serving process is not the one this script started)")
    ratios = harness.per_repeat_ratios(with_.rates, without.rates)
    passed = TARGET.met(median(ratios))
    print(f"\n  {'transitions/s with against without':<40}{'ratio':>7} {'(range)':<13}{'target':<10}result")
    print(f"  {'':<40}{median(ratios):>6.2f}x {spread(ratios, '.2f'):<13}{TARGET!s:<10}{harness.verdict(passed)}")
    print(
        f"  check: the feed was behind by at most {max(with_.lag):,} transitions as a block ended"
        f" (it reads the store every 0.25 s)"
    )
    for v in variants:
        non_2xx, errors = sum(x.non_2xx for x in v.loads), sum(x.socket_errors for x in v.loads)
        if non_2xx or errors:
            print(f"  WARNING {v.label}: {non_2xx} non-2xx responses and {errors} socket errors in timed blocks")
    return passed


def environment(generator: Generator, database: str) -> None:
    harness.print_header("bench/inspector.py", OWN_FILES, "under " + ", ".join(OWN_FILES))
    print(f"  cpus        {os.cpu_count()} (load average {harness.load_average()})")
    print(f"  database    {database}")
    print(f"  generator   {generator.describe()}")
    print(f"  note        the generator, the server and this script's feed reader share the {os.cpu_count()} cpus")


def run(stack: contextlib.ExitStack, workdir: Path, url: str, generator: Generator, plan: Plan) -> bool:
    """Set up the database, the server and the sessions, measure, report; the stack undoes all of it."""
    env = harness.sessionflow_env(url, secrets.token_urlsafe(48))
    env |= {"SESSIONFLOW_MAX_SESSIONS_PER_USER": UNBOUNDED, "SESSIONFLOW_INSPECTOR": "true"}
    Settings.from_env(env)  # the same settings the server will read, checked here first
    db = Database.from_url(url)
    try:
        migrate.upgrade(db)
    finally:
        db.dispose()
    port = harness.free_port()
    argv = [sys.executable, "-m", "sessionflow.api.cli", "serve", "--host", harness.HOST, "--port", str(port)]
    server = harness.start_server(stack, "sessionflow", argv, env=env, port=port, log=workdir / "server.log")
    pool = SessionPool(env, workdir / "sessions.txt")
    stack.callback(pool.close)
    harness.wait_ready(server, "/api/health")
    variants = [Variant("without an inspector (baseline)", False), Variant("with one open inspector feed", True)]
    measure(server, variants, pool, generator, plan)
    return report(variants, plan)


def main(argv: Sequence[str] | None = None) -> int:
    harness.line_buffered_stdout()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_load_options(parser, repeats=6, connections=8)
    parser.add_argument("--postgres", action="store_true", help="serve from a temporary PostgreSQL database")
    parser.add_argument("--postgres-url", default=harness.DEFAULT_POSTGRES_URL, help="loopback server for --postgres")
    parser.add_argument("--strict", action="store_true", help="exit 1 if the target is missed")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    plan = plan_from(parser, args, repeats=6)
    kind = generator_kind(parser, args)

    harness.interrupt_on_sigterm()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sessionflow-bench-inspector-")))
        generator = Generator(kind, workdir)
        if args.postgres:
            url = stack.enter_context(harness.temporary_postgres(args.postgres_url))
            database = f"PostgreSQL, a temporary database on {make_url(url).host}:{make_url(url).port or 5432}"
        else:
            url = f"sqlite:///{workdir / 'bench.db'}"
            database = f"SQLite {sqlite3.sqlite_version}, a temporary file (WAL, synchronous=NORMAL)"
        environment(generator, database)
        passed = run(stack, workdir, url, generator, plan)
    print(f"\ntarget: {harness.verdict(passed)} (transitions/s with one open inspector {TARGET} without)")
    return 1 if args.strict and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
