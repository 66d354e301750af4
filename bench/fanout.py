"""Transitions per second on PostgreSQL with the Redis fan-out against the NOTIFY fan-out, for 1, 2 and 4 workers.

Usage::

    python bench/fanout.py [--quick] [--workers 1,2,4] [--repeats N] [--duration S] [--connections N]
                           [--postgres-url URL] [--redis-url URL] [--generator wrk|python] [--strict]

For each worker count, two ``sessionflow serve --workers N`` servers run side by side on one temporary
PostgreSQL database: one with ``SESSIONFLOW_FANOUT=postgres`` (``pg_notify`` inside every transition's
transaction, which takes a database-wide lock at commit) and one with ``SESSIONFLOW_FANOUT=redis``
(published after commit). The load generator sends each the same ``POST
/api/session/{id}/events/logout`` requests (one transition, a history row and the session's
credentials retired per request) from ``--connections`` (32) keep-alive connections, in blocks that
alternate, the order rotating every repeat; sessions are made beforehand, untimed, as in
``bench/http.py``. Printed per worker count: transitions/s of each fan-out, and Redis/NOTIFY per repeat
with its range; the target (Redis >= 2x NOTIFY with 4 workers) is judged on the largest worker count
run. Only one pair of servers runs at a time, so the machine's cpus are theirs. First, where ``pgbench``
is installed, the database's own ceiling: commits/s of an UPDATE + INSERT per transaction with and
without ``pg_notify``, from the same number of clients, interleaved.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # as bench/http.py: the repository root first

from sqlalchemy import create_engine, make_url, text

from bench import harness
from bench import http as http_bench
from sessionflow.persistence import Database, migrate

OWN_FILES = ("bench/fanout.py", "api", "persistence")
TARGET = harness.Target(">=", 2.0)  # Redis fan-out's transitions/s against NOTIFY's, at the largest worker count
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Fanout:
    name: str
    server: harness.Server
    loads: list[http_bench.Load] = field(default_factory=list)

    def rates(self) -> list[float]:
        return [load.per_second for load in self.loads]


def start_pair(
    stack: contextlib.ExitStack, env: dict[str, str], workers: int, redis_url: str, workdir: Path
) -> list[Fanout]:
    pair = []
    for name, extra in (
        ("postgres", {"SESSIONFLOW_FANOUT": "postgres"}),
        (
            "redis",
            {
                "SESSIONFLOW_FANOUT": "redis",
                "SESSIONFLOW_REDIS_URL": redis_url,
                "SESSIONFLOW_REDIS_CHANNEL": f"bench:{uuid.uuid4().hex}",
            },
        ),
    ):
        port = harness.free_port()
        argv = [sys.executable, "-m", "sessionflow.api.cli", "serve", "--host", harness.HOST, "--port", str(port)]
        argv += ["--workers", str(workers)]
        log = workdir / f"{name}-{workers}.log"
        pair.append(
            Fanout(name, harness.start_server(stack, f"{name} x{workers}", argv, env=env | extra, port=port, log=log))
        )
    for fanout in pair:
        harness.wait_ready(fanout.server, "/api/health")
    return pair


def measure(
    pair: list[Fanout], pool: http_bench.SessionPool, generator: http_bench.Generator, plan: http_bench.Plan
) -> None:
    best = 300.0
    for round_, fanout in enumerate(harness.interleaved(pair, plan.repeats + 1)):
        seconds = plan.warm_up if round_ < 2 else plan.seconds
        pool.ensure(math.ceil(best * seconds * 1.6) + plan.connections + 100)
        started = time.monotonic()
        load = generator.run(
            fanout.server.base,
            "event",
            lines=pool.path,
            offset=pool.offset,
            template=http_bench.EVENT_PATH,
            connections=plan.connections,
            seconds=seconds,
        )
        pool.consumed(load, plan.connections, started)
        best = max(best, load.per_second)
        if round_ >= 2:
            fanout.loads.append(load)


def report(workers: int, pair: list[Fanout]) -> tuple[float, float]:
    """Print one worker count's figures; the Redis/NOTIFY ratio and the faster fan-out's transitions/s."""
    notify, redis = pair
    ratios = harness.per_repeat_ratios(redis.rates(), notify.rates())
    spread = harness.value_range
    print(f"\n{workers} worker(s)")
    for fanout in pair:
        rates = fanout.rates()
        p99 = http_bench.median([x.p99_ms for x in fanout.loads])
        errors = sum(x.non_2xx + x.socket_errors for x in fanout.loads)
        print(
            f"  {fanout.name:<10}{http_bench.median(rates):>9,.0f} transitions/s {spread(rates, ',.0f'):<15}"
            f" p99 {p99:>7.1f} ms" + (f"  WARNING {errors} non-2xx or socket errors" if errors else "")
        )
    ratio = http_bench.median(ratios)
    print(f"  redis / postgres, per repeat: {ratio:.2f}x {spread(ratios, '.2f')}")
    return ratio, max(http_bench.median(fanout.rates()) for fanout in pair)


PGBENCH_SCRIPT = """\\set id random(1, 10000)
BEGIN;
UPDATE fanout_s SET v = v + 1 WHERE id = :id;
INSERT INTO fanout_h (sid, at) VALUES (:id, now());
{notify}END;
"""


def pgbench_ceiling(url: str, workdir: Path, connections: int, seconds: int, repeats: int) -> float | None:
    """The database's own ceiling: commits/s of an UPDATE + INSERT with and without ``pg_notify``, by pgbench.

    Returns the median with NOTIFY, or None where pgbench is not installed."""
    pgbench = shutil.which("pgbench")
    if pgbench is None:
        print("\npgbench not installed: the database's own NOTIFY ceiling is not measured")
        return None
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE fanout_s (id int PRIMARY KEY, v int NOT NULL DEFAULT 0)"))
        connection.execute(text("INSERT INTO fanout_s (id) SELECT g FROM generate_series(1, 10000) g"))
        connection.execute(text("CREATE TABLE fanout_h (id bigserial PRIMARY KEY, sid int, at timestamptz)"))
    engine.dispose()
    u = make_url(url)
    argv = [pgbench, "-h", u.host or harness.HOST, "-p", str(u.port or 5432), "-U", u.username or "postgres", "-n"]
    argv += ["-c", str(connections), "-j", "2", "-T", str(seconds)]
    rates: dict[str, list[float]] = {"without NOTIFY": [], "with NOTIFY": []}
    for name in harness.interleaved(list(rates), repeats):
        script = workdir / f"pgbench-{len(rates[name])}-{name.replace(' ', '-')}.sql"
        notify = "SELECT pg_notify('fanout_bench', 'x' || :id);\n" if name == "with NOTIFY" else ""
        script.write_text(PGBENCH_SCRIPT.format(notify=notify))
        command = [*argv, "-f", str(script), u.database or ""]
        out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
        found = re.search(r"^tps = ([0-9.]+)", out.stdout, re.MULTILINE)
        if out.returncode != 0 or found is None:
            raise RuntimeError(f"pgbench failed: {out.stderr.strip()[-500:]}")
        rates[name].append(float(found.group(1)))
    print(
        f"\nthe database's own ceiling (pgbench): UPDATE + INSERT per commit, {connections} clients, {seconds} s runs"
    )
    for name, values in rates.items():
        print(f"  {name:<16}{http_bench.median(values):>9,.0f} commits/s {harness.value_range(values, ',.0f')}")
    ratios = harness.per_repeat_ratios(rates["without NOTIFY"], rates["with NOTIFY"])
    print(f"  without / with, per repeat: {http_bench.median(ratios):.2f}x {harness.value_range(ratios, '.2f')}")
    return http_bench.median(rates["with NOTIFY"])


def bound(ceiling: float | None, fastest: float) -> None:
    """Say whether the NOTIFY lock could have held the API back: Redis can be ``TARGET.bound`` times NOTIFY
    only where NOTIFY's runs stop at the ceiling and the API could carry that many times more."""
    if ceiling is None:
        return
    needed = TARGET.bound * ceiling
    print(
        f"\n  Redis {TARGET} NOTIFY needs NOTIFY's runs held at its ceiling ({ceiling:,.0f} commits/s) and an API"
        f" that carries {needed:,.0f} transitions/s; the fastest run here carried {fastest:,.0f}/s,"
        f" {fastest / ceiling:.0%} of the ceiling:"
        + (" the lock never held the API back" if fastest < ceiling else " the lock may have held it back")
    )


def main(argv: Sequence[str] | None = None) -> int:
    harness.line_buffered_stdout()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    http_bench.add_load_options(parser, repeats=4, connections=32)
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated (default 1,2,4)")
    parser.add_argument("--postgres-url", default=harness.DEFAULT_POSTGRES_URL, help="loopback PostgreSQL server")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help=f"Redis (default {DEFAULT_REDIS_URL})")
    parser.add_argument("--strict", action="store_true", help="exit 1 if the target is missed")
    args = parser.parse_args(argv)
    counts = sorted({int(n) for n in args.workers.split(",") if n.strip()})
    plan = http_bench.plan_from(parser, args, repeats=4)
    if not counts or counts[0] < 1 or counts[-1] > 16:
        parser.error("--workers takes counts from 1 to 16")
    if reason := harness.postgres_unreachable(args.postgres_url):
        parser.error(f"PostgreSQL: {reason}")
    kind = http_bench.generator_kind(parser, args)

    harness.interrupt_on_sigterm()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sessionflow-bench-fanout-")))
        generator = http_bench.Generator(kind, workdir)
        url = stack.enter_context(harness.temporary_postgres(args.postgres_url))
        harness.print_header("bench/fanout.py", OWN_FILES, "under " + ", ".join(OWN_FILES))
        print(f"  database    PostgreSQL {harness.postgres_version(url)}, a temporary database on loopback")
        print(f"  redis       redis-py {harness.package_version('redis')}")
        print(f"  generator   {generator.describe()}, {plan.connections} connections")
        env = harness.sessionflow_env(url, secrets.token_urlsafe(48))
        env |= dict.fromkeys(("SESSIONFLOW_MAX_SESSIONS_PER_USER",), http_bench.UNBOUNDED)
        db = Database.from_url(url)
        try:
            migrate.upgrade(db)
        finally:
            db.dispose()
        ceiling = pgbench_ceiling(url, workdir, plan.connections, plan.seconds * 2, plan.repeats)
        pool = http_bench.SessionPool(env, workdir / "sessions.txt")
        stack.callback(pool.close)
        ratio, fastest = 0.0, 0.0
        for workers in counts:
            with contextlib.ExitStack() as servers:
                pair = start_pair(servers, env, workers, args.redis_url, workdir)
                measure(pair, pool, generator, plan)
                ratio, rate = report(workers, pair)
                fastest = max(fastest, rate)
        bound(ceiling, fastest)
    passed = TARGET.met(ratio)
    print(f"\ntargets: {harness.verdict(passed)} (Redis {TARGET} NOTIFY, transitions/s, {counts[-1]} workers)")
    return 1 if args.strict and not passed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: every server, generator, temporary file and database this run started is gone")
        sys.exit(130)
