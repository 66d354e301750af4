"""sessionflow beside the peer a Python team would pick: fastapi-users with its database token strategy.

Usage::

    pip install -e '.[bench]'   # fastapi-users, aiosqlite, asyncpg: for this script only
    python bench/peer.py [--quick] [--postgres] [--repeats N] [--duration S] [--connections N]
                         [--login-clients N] [--generator wrk|python] [--strict]

Two servers on loopback, one worker each: ``sessionflow serve``, and the peer (``bench/peer_app.py``)
served by this script on the same server stack with the same settings (granian, as ``bench/http.py``).
Each has its own database of the same kind: a temporary SQLite file each, or with ``--postgres`` a
temporary PostgreSQL database each on 127.0.0.1. Both check a stored credential on
every request and end it on logout, so the comparison is like for like:

- **read**: sessionflow ``GET /api/session/{id}`` with that session's access token (the JWT, then the
  session row); the peer ``GET /users/me`` with its bearer token (the token row, then the user row).
  1,000 credentials each, used round-robin; reads use nothing up.
- **logout**: sessionflow ``POST /api/session/{id}/events/logout`` (one transition, a history row, the
  session's credentials retired); the peer ``POST /auth/db/logout`` (its token row deleted). Each
  request uses a credential up, so both are made beforehand, untimed: sessions by ``Flows.login_user``
  on sessionflow's database, token rows inserted into the peer's.
- **login**: real passwords, a few clients, one block each; both are bounded by argon2 on purpose, so
  logins are reported, not judged.

The generator (``wrk`` when installed, else the asyncio client of ``bench/http.py``) sends both the same
number of connections for the same time, in blocks that alternate, the order rotating every repeat.
Printed: requests/s and latency per server and workload, sessionflow's ratio to the peer per repeat
with its median and range, PASS/MISS against the target (>= 2x for reads and logouts), and each
server's CPU per request. ``--strict`` exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # as bench/http.py: the repository root first

import urllib.error  # after the sys.path fix: urllib imports the standard library's http
import urllib.request

from sqlalchemy import create_engine, func, insert, make_url, select

from bench import harness
from bench import http as http_bench
from sessionflow.persistence import Database, migrate

OWN_FILES = ("bench/peer.py", "bench/peer_app.py", "api", "persistence", "lifecycle")
THIS = Path(__file__).resolve()
READ_POOL = 1_000  # credentials each for the read blocks, used round-robin
TARGET = harness.Target(">=", 2.0)  # sessionflow's requests/s against the peer's, reads and logouts
SF_READ, SF_LOGOUT = "/api/session/%s", "/api/session/%s/events/logout"
PEER_READ, PEER_LOGOUT, PEER_LOGIN = "/users/me", "/auth/db/logout", "/auth/db/login"
UNUSED_HASH = "$argon2id$v=19$m=65536,t=3,p=4$bm90dXNlZA$bm90IGEgcmVhbCBoYXNoLCBuZXZlciB2ZXJpZmllZA"


def serve_peer(url: str, port: int) -> int:
    os.environ["PEER_DATABASE_URL"] = url  # granian's worker builds the app from it (bench.peer_app:from_env)
    return http_bench.serve("bench.peer_app:from_env", port)


# -- the peer's database ----------------------------------------------------------------------------


class PeerTokens:
    """Users and bearer tokens in the peer's own tables, written as its DatabaseStrategy writes them."""

    def __init__(self, url: str, path: Path) -> None:
        from bench.peer_app import AccessToken, Base, User

        self.engine = create_engine(url)
        self.user, self.token = User, AccessToken
        Base.metadata.create_all(self.engine)
        self.path = path
        self.path.touch(mode=0o600)
        self.offset = self.lines = 0
        self.user_id = self._user(f"bench-{uuid.uuid4().hex[:10]}@example.com", UNUSED_HASH)

    def _user(self, email: str, password_hash: str) -> uuid.UUID:
        user_id = uuid.uuid4()
        with self.engine.begin() as connection:
            connection.execute(
                insert(self.user).values(
                    id=user_id,
                    email=email,
                    hashed_password=password_hash,
                    is_active=True,
                    is_superuser=False,
                    is_verified=True,
                )
            )
        return user_id

    def make(self, count: int, out: Path) -> None:
        """``count`` fresh tokens as ``- <token>`` lines appended to ``out``."""
        now = datetime.now(UTC)
        rows = [{"token": secrets.token_urlsafe(), "user_id": self.user_id, "created_at": now} for _ in range(count)]
        with self.engine.begin() as connection:
            connection.execute(insert(self.token), rows)
        with out.open("a") as lines:
            lines.writelines(f"- {row['token']}\n" for row in rows)

    def ensure(self, unused: int) -> None:
        missing = unused - (self.lines - self.offset)
        if missing > 0:
            self.make(missing, self.path)
            self.lines += missing

    def login_users(self, count: int, out: Path) -> None:
        """Users with real password hashes, by the peer's own default hasher, as ``<email> <password>`` lines."""
        from fastapi_users.password import PasswordHelper

        helper = PasswordHelper()
        with out.open("w") as lines:
            for _ in range(count):
                email, password = f"login-{uuid.uuid4().hex[:10]}@example.com", secrets.token_urlsafe(18)
                self._user(email, helper.hash(password))
                lines.write(f"{quote(email)} {password}\n")

    def remaining(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(self.token)).scalar_one())

    def close(self) -> None:
        self.engine.dispose()


# -- measuring ---------------------------------------------------------------------------------------


@dataclass
class Side:
    label: str
    server: harness.Server
    template: str
    lines: Path
    offset: int = 0
    loads: list[http_bench.Load] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def rates(self) -> list[float]:
        return [load.per_second for load in self.loads]


@dataclass
class Workload:
    name: str
    mode: str  # the generator's: read (GET) or event (POST)
    ours: Side
    peer: Side
    consumes: bool


def run_block(side: Side, mode: str, generator: http_bench.Generator, plan: http_bench.Plan, seconds: int) -> None:
    cpu = harness.cpu_seconds(side.server.pid)
    load = generator.run(
        side.server.base,
        mode,
        lines=side.lines,
        offset=side.offset,
        template=side.template,
        connections=plan.connections,
        seconds=seconds,
    )
    side.loads.append(load)
    side.cpu.append(harness.cpu_seconds(side.server.pid) - cpu)


def measure(
    workload: Workload,
    pool: http_bench.SessionPool,
    tokens: PeerTokens,
    generator: http_bench.Generator,
    plan: http_bench.Plan,
) -> None:
    best = 500.0
    for repeat, side in enumerate(harness.interleaved([workload.ours, workload.peer], plan.repeats + 1)):
        seconds = plan.warm_up if repeat < 2 else plan.seconds
        if workload.consumes:  # fresh credentials for the fastest rate seen so far, with room to spare
            need = int(best * seconds * 1.6) + plan.connections + 100
            if side is workload.ours:
                pool.ensure(need)
                side.offset = pool.offset
            else:
                tokens.ensure(need)
                side.offset = tokens.offset
        started = time.monotonic()
        run_block(side, workload.mode, generator, plan, seconds)
        load = side.loads[-1]
        if repeat < 2:  # warm-up: imports, compiled statements, pools
            side.loads.pop()
            side.cpu.pop()
        if workload.consumes:
            best = max(best, load.per_second)
            if side is workload.ours:
                pool.consumed(load, plan.connections, started)
            else:
                tokens.offset += load.requests + plan.connections


def report(workload: Workload, plan: http_bench.Plan) -> bool:
    ours, peer = workload.ours, workload.peer
    ratios = harness.per_repeat_ratios(ours.rates(), peer.rates())
    passed = TARGET.met(http_bench.median(ratios))
    spread = harness.value_range
    print(f"\n{workload.name}: {plan.connections} connections, {plan.seconds} s blocks, {plan.repeats} repeats")
    print(f"  {'server':<58}{'requests/s':>11} {'(range)':<15}{'p99 ms':>7}{'cpu ms/request':>16}")
    for side in (ours, peer):
        p99 = http_bench.median([x.p99_ms for x in side.loads])
        cpu = http_bench.median([1e3 * c / max(x.requests, 1) for c, x in zip(side.cpu, side.loads, strict=True)])
        rates = side.rates()
        print(
            f"  {side.label:<58}{http_bench.median(rates):>11,.0f} {spread(rates, ',.0f'):<15}{p99:>7.2f}{cpu:>16.3f}"
        )
        errors = sum(x.non_2xx + x.socket_errors for x in side.loads)
        if errors:
            print(f"  WARNING {side.label}: {errors} non-2xx responses or socket errors in timed blocks")
    print(
        f"  sessionflow / peer, per repeat: {http_bench.median(ratios):.2f}x {spread(ratios, '.2f')}"
        f"  target {TARGET}  {harness.verdict(passed)}"
    )
    return passed


def logins(
    ours: harness.Server,
    peer: harness.Server,
    generator: http_bench.Generator,
    files: tuple[Path, Path],
    clients: int,
    seconds: int,
) -> None:
    print(f"\nlogin, real passwords, {clients} clients, one {seconds} s block each (argon2 bounds both; not judged)")
    for label, server, mode, path, lines in (
        ("sessionflow POST /api/auth/login (argon2-cffi defaults)", ours, "login", "/api/auth/login", files[0]),
        (f"peer POST {PEER_LOGIN} (pwdlib's default argon2)", peer, "form-login", PEER_LOGIN, files[1]),
    ):
        cpu = harness.cpu_seconds(server.pid)
        load = generator.run(
            server.base, mode, lines=lines, offset=0, template=path, connections=clients, seconds=seconds
        )
        cpu = harness.cpu_seconds(server.pid) - cpu
        print(
            f"  {label:<58}{load.per_second:>8.1f} logins/s  p50 {load.p50_ms:.0f} ms"
            f"  cpu {1e3 * cpu / max(load.requests, 1):.0f} ms/login  non-2xx {load.non_2xx}"
        )


def preflight(label: str, server: harness.Server, template: str, lines: Path) -> None:
    """One read with the first credential must answer 200, or the comparison would time refusals."""
    key, token = lines.read_text().split("\n", 1)[0].split()
    request = urllib.request.Request(
        server.base + template.replace("%s", key), headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    if status != 200:
        raise RuntimeError(f"{label} answered {status} to a read with a fresh credential:\n{server.tail()}")


# -- main ----------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--serve-peer"]:
        return serve_peer(argv[1], int(argv[2]))
    harness.line_buffered_stdout()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    http_bench.add_load_options(parser, repeats=5, connections=8)
    parser.add_argument("--login-clients", type=int, default=4, help="clients in the login blocks (default 4)")
    parser.add_argument("--postgres", action="store_true", help="temporary PostgreSQL databases instead of SQLite")
    parser.add_argument("--postgres-url", default=harness.DEFAULT_POSTGRES_URL, help="loopback server for --postgres")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    plan = http_bench.plan_from(parser, args, repeats=5)
    try:
        import fastapi_users  # noqa: F401 - only to say how to get it
    except ImportError:
        parser.error("the peer is not installed: pip install -e '.[bench]'")
    kind = http_bench.generator_kind(parser, args)

    harness.interrupt_on_sigterm()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sessionflow-bench-peer-")))
        generator = http_bench.Generator(kind, workdir)
        if args.postgres:
            ours_url = stack.enter_context(harness.temporary_postgres(args.postgres_url))
            peer_url = stack.enter_context(harness.temporary_postgres(args.postgres_url, prefix="fastapi_users_bench"))
            database = f"PostgreSQL, a temporary database each on {make_url(ours_url).host}"
        else:
            ours_url, peer_url = f"sqlite:///{workdir / 'sessionflow.db'}", f"sqlite:///{workdir / 'peer.db'}"
            database = (
                f"SQLite {sqlite3.sqlite_version}, a temporary file each (WAL for sessionflow; the peer's default)"
            )
        harness.print_header("bench/peer.py", OWN_FILES, "under " + ", ".join(OWN_FILES))
        print(f"  cpus          {os.cpu_count()} (load average {harness.load_average()})")
        print(
            f"  fastapi-users {harness.package_version('fastapi-users')} (fastapi {harness.package_version('fastapi')})"
        )
        print(f"  litestar      {harness.package_version('litestar')}, granian {harness.package_version('granian')}")
        print(f"  database      {database}")
        print(f"  generator     {generator.describe()}")
        passed = run(stack, args, generator, plan, ours_url, peer_url)
    print(f"\ntargets: {harness.verdict(passed)} (sessionflow {TARGET} the peer's requests/s, reads and logouts)")
    return 1 if args.strict and not passed else 0


def run(
    stack: contextlib.ExitStack,
    args: argparse.Namespace,
    generator: http_bench.Generator,
    plan: http_bench.Plan,
    ours_url: str,
    peer_url: str,
) -> bool:
    workdir = generator.workdir
    env = harness.sessionflow_env(ours_url, secrets.token_urlsafe(48))
    env |= dict.fromkeys(
        (
            "SESSIONFLOW_MAX_SESSIONS_PER_USER",
            "SESSIONFLOW_LOGIN_LIMIT_PER_USER",
            "SESSIONFLOW_LOGIN_LIMIT_PER_ADDRESS",
        ),
        http_bench.UNBOUNDED,
    )
    db = Database.from_url(ours_url)
    try:
        migrate.upgrade(db)
    finally:
        db.dispose()
    tokens = PeerTokens(peer_url.replace("postgresql://", "postgresql+psycopg://", 1), workdir / "peer-tokens.txt")
    stack.callback(tokens.close)
    ours_logins, peer_logins = workdir / "logins.txt", workdir / "peer-logins.txt"
    http_bench.login_user_file(env, ours_logins, args.login_clients)
    tokens.login_users(args.login_clients, peer_logins)

    python = sys.executable
    ours_port, peer_port = harness.free_port(), harness.free_port()
    ours = harness.start_server(
        stack,
        "sessionflow",
        [python, "-m", "sessionflow.api.cli", "serve", "--host", harness.HOST, "--port", str(ours_port)],
        env=env,
        port=ours_port,
        log=workdir / "sessionflow.log",
    )
    peer = harness.start_server(
        stack,
        "fastapi-users",
        [python, str(THIS), "--serve-peer", peer_url, str(peer_port)],
        env=env,
        port=peer_port,
        log=workdir / "peer.log",
    )
    pool = http_bench.SessionPool(env, workdir / "sessions.txt")
    stack.callback(pool.close)
    harness.wait_ready(ours, "/api/health")
    harness.wait_ready(peer, "/health")

    reads_ours, reads_peer = workdir / "reads.txt", workdir / "peer-reads.txt"
    with reads_ours.open("w") as out:
        for _ in range(READ_POOL):
            issued = pool.login()
            out.write(f"{issued.session_id} {issued.access_token}\n")
    tokens.make(READ_POOL, reads_peer)

    for side_label, server, template, lines in (
        ("sessionflow", ours, SF_READ, reads_ours),
        ("fastapi-users", peer, PEER_READ, reads_peer),
    ):
        preflight(side_label, server, template, lines)
    workloads = [
        Workload(
            "read",
            "read",
            Side("sessionflow GET /api/session/{id}", ours, SF_READ, reads_ours),
            Side(f"fastapi-users GET {PEER_READ} (database strategy)", peer, PEER_READ, reads_peer),
            consumes=False,
        ),
        Workload(
            "logout",
            "event",
            Side("sessionflow POST /api/session/{id}/events/logout", ours, SF_LOGOUT, pool.path),
            Side(f"fastapi-users POST {PEER_LOGOUT} (token row deleted)", peer, PEER_LOGOUT, tokens.path),
            consumes=True,
        ),
    ]
    passed = True
    for workload in workloads:
        measure(workload, pool, tokens, generator, plan)
        passed = report(workload, plan) and passed
    logins(ours, peer, generator, (ours_logins, peer_logins), args.login_clients, 3 if args.quick else 5)
    return passed


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: every server, generator, temporary file and database this run started is gone")
        sys.exit(130)
