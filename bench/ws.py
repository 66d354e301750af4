"""How many authenticated WebSockets one worker holds with heartbeats running, and how fast a logout closes them.

Usage::

    python bench/ws.py [--quick] [--connections N] [--sessions N] [--heartbeat S] [--clients N]
                       [--window N] [--ramp-seconds S] [--samples N] [--per-session K]
                       [--no-compression] [--postgres-url URL] [--no-postgres]
                       [--only capacity|logout|cross] [--profile] [--strict]

Real servers run as subprocesses (``python -m sessionflow.api.cli serve``, one worker each,
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
    opens alone, then the others together (see ``ws_logout.logout_samples``).
    Target: p99 < 100 ms.
(c) The same across two workers sharing a PostgreSQL database: connections on
    worker A, the logout sent to worker B, so the close travels through
    ``pg_notify`` and A's ``LISTEN``. Target: p99 < 500 ms. Logouts sent to A
    itself are interleaved with them and shown, not judged.

``--strict`` exits 1 if a target is missed. Nothing here is a test.

This file reads the command line, prints the environment and the targets, and runs the parts, which live
beside it: ``ws_capacity`` (a), ``ws_logout`` (b) and (c), ``ws_clients`` (the client processes of (a),
started as ``ws.py --client``), ``ws_setup`` (the plan, fd limits, servers, sessions), ``ws_report`` (the
wording of figures) and ``ws_profile`` (``--profile``).
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
import contextlib
import os
import resource
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence

from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

from bench import harness
from bench.ws_capacity import CAPACITY_TARGET, capacity
from bench.ws_clients import client_main
from bench.ws_logout import logout_one_worker, logout_two_workers
from bench.ws_report import Judged
from bench.ws_setup import FdLimits, Plan, raise_fd_limit

OWN_FILES = ("bench/ws.py", "bench/ws_*.py", "api", "persistence", "lifecycle")
MAX_CONNECTIONS = 50_000  # bound on what the script will ever open
SPARE_FDS = 200  # descriptors a process needs besides its sockets (database, logs, pipes, imports)


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
        f" somaxconn {_read('/proc/sys/net/core/somaxconn')}, granian backlog 1024 (its default)"
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
    add("--redis-url", default="redis://127.0.0.1:6379/0", help="(c) runs again with the Redis fan-out on it")
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


def redis_unreachable(url: str) -> str | None:
    """Why the Redis at ``url`` cannot be used, or None when it answers."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        client.ping()
        client.close()
    except (redis.RedisError, OSError) as exc:
        return f"Redis unreachable at {url}: {type(exc).__name__}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    harness.line_buffered_stdout()
    if argv[:1] == ["--client"]:  # a capacity client's own process
        return client_main(argv[1:8])
    args, plan = parse(argv)
    parts = set(args.only or ("capacity", "logout", "cross"))
    postgres_url: str | None = None if args.no_postgres or "cross" not in parts else args.postgres_url
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
    if "cross" in parts:
        if postgres_url is None:
            print("\n(c) across workers: skipped (--no-postgres)")
        elif (reason := harness.postgres_unreachable(postgres_url)) is not None:
            print(f"\n(c) across workers: skipped, PostgreSQL unreachable: {reason}")
        else:
            with part() as (stack, workdir):
                judged.append(logout_two_workers(stack, workdir, plan, postgres_url))
            if (reason := redis_unreachable(args.redis_url)) is not None:
                print(f"\n(c) across workers with the Redis fan-out: skipped, {reason}")
            else:
                with part() as (stack, workdir):
                    judged.append(
                        logout_two_workers(stack, workdir, plan, postgres_url, fanout="redis", redis_url=args.redis_url)
                    )

    print("\ntargets")
    width = max((len(row.shown) for row in judged), default=0) + 2
    for row in judged:
        print(f"  {row.label:<56}{row.shown:<{width}}{row.target:<12}{harness.verdict(row.passed)}".rstrip())
    missed = harness.print_targets((row.label, row.passed) for row in judged)
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
