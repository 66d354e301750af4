"""How fast the lifecycle engine and the transition service are, against baselines run alongside.

Usage::

    python bench/engine.py [--quick] [--repeats N] [--only step|sqlite|postgres]
                           [--postgres-url URL] [--no-postgres] [--strict]

The machine this runs on is shared and noisy, so absolute figures drift from
run to run. Every subject is therefore timed beside its baseline in the same
run, in short blocks that alternate (the order rotates every repeat); each
ratio is the median of the per-repeat ratios of adjacent blocks, printed with
the lowest and highest of them. The targets are ratios:

(a) ``Engine.step`` per in-process event <= 1.5x a bare ``transitions`` trigger
    on a shared machine with one model (same states and transitions, no
    guards, no timers). The events cycle connect, refresh (a guarded
    self-loop), disconnect, refresh; each step gets a fresh ``StepContext``
    carrying the previous outcome's timers, as the service builds one. Shown
    beside it: building a ``Machine`` per instance and then triggering, the
    pattern the shared machine exists to avoid.
(b) ``TransitionService.fire`` on SQLite (temporary file, WAL,
    synchronous=NORMAL as ``Database`` sets it) >= 0.5x a raw ``sqlite3`` loop
    running the compare-and-set UPDATE plus the history INSERT in one
    ``BEGIN IMMEDIATE`` transaction, with the same pragmas, schema and SQL.
    The target uses that UPDATE + INSERT loop, as the issue defines it; a
    stricter raw loop that also runs the service's SELECT is reported too.
(c) the same on PostgreSQL against a raw psycopg loop on one connection
    (SELECT ... FOR UPDATE in the stricter loop). Skipped, with the reason, if
    PostgreSQL is unreachable.

``--strict`` exits with status 1 if a target is missed. Nothing here is a
test: the suite stays fast and deterministic, this script measures.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, where bench/http.py would shadow the
# standard library's ``http`` package: put the repository root there instead, which also makes ``bench``
# importable. Nothing above imports ``http``; the imports below follow on purpose.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import gc
import os
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import Connection, make_url
from transitions import Machine

from bench import harness
from sessionflow.lifecycle import SESSION, Actor, SessionEvent, SessionGuard, StepContext, engine
from sessionflow.persistence.bindings import SESSIONS, history_insert
from sessionflow.persistence.database import Database
from sessionflow.persistence.models import Base
from sessionflow.persistence.service import TransitionService

OWN_FILES = (
    "bench/engine.py",
    "lifecycle/engine.py",
    "persistence/database.py",
    "persistence/service.py",
    "persistence/tx.py",
)

# -- measuring ---------------------------------------------------------------------------


@dataclass
class Variant:
    """One timed loop: ``run(n)`` performs ``n`` operations and returns the seconds it took."""

    label: str
    run: Callable[[int], float]
    baseline: str | None = None  # label of the variant this one is compared with
    target: harness.Target | None = None  # judged against ``baseline``
    seconds: list[float] | None = None  # per operation, one entry per repeat
    scale: float = 1.0  # fraction of the block size this variant runs (for the very slow ones)


def measure(variants: Sequence[Variant], n: int, repeats: int) -> None:
    """Run every variant ``repeats`` times, alternating them, ``n`` operations per block."""
    for variant in variants:
        variant.run(max(int(n * variant.scale) // 10, 1))  # warm up: caches, compiled statements, pools
        variant.seconds = []
    for variant in harness.interleaved(variants, repeats):
        gc.collect()
        ops = max(int(n * variant.scale), 1)
        assert variant.seconds is not None
        variant.seconds.append(variant.run(ops) / ops)


@dataclass
class Row:
    label: str
    value: float
    ratios: list[float] | None  # one per repeat, against the baseline
    target: harness.Target | None
    passed: bool | None

    @property
    def ratio(self) -> float | None:
        return statistics.median(self.ratios) if self.ratios else None


def report(title: str, unit: str, variants: Sequence[Variant], *, per_second: bool, n: int, repeats: int) -> list[Row]:
    """Print one table; ratios are medians of per-repeat ratios against the adjacent baseline block."""
    by_label = {variant.label: variant for variant in variants}
    rows: list[Row] = []
    for variant in variants:
        assert variant.seconds is not None
        value = statistics.median(1 / s if per_second else s * 1e6 for s in variant.seconds)
        ratios = passed = None
        if variant.baseline is not None:
            base = by_label[variant.baseline].seconds
            assert base is not None
            # Throughput ratio = baseline time / subject time; latency ratio = subject time / baseline time.
            over, under = (base, variant.seconds) if per_second else (variant.seconds, base)
            ratios = harness.per_repeat_ratios(over, under)
            if variant.target is not None:
                passed = variant.target.met(statistics.median(ratios))
        rows.append(Row(variant.label, value, ratios, variant.target, passed))
    print(f"\n{title}")
    print(f"  median of {repeats} repeats x {n} operations, baseline and subject blocks interleaved")
    print(f"  {'variant':<58}{unit:>12}{'ratio':>8} {'(per-repeat range)':<19} {'target':<9} result")
    for row in rows:
        shown = f"{row.ratio:.2f}x" if row.ratio is not None else "base" if _is_base(row, variants) else ""
        spread = harness.value_range(row.ratios, ".2f") if row.ratios else ""
        target, result = str(row.target) if row.target else "", harness.verdict(row.passed)
        print(f"  {row.label:<58}{row.value:>12,.2f}{shown:>8} {spread:<19} {target:<9} {result}".rstrip())
    return rows


def _is_base(row: Row, variants: Sequence[Variant]) -> bool:
    return any(v.baseline == row.label for v in variants)


# -- (a) in-process step ----------------------------------------------------------------

E = SessionEvent
# One connect/refresh/disconnect/refresh cycle: two moves that re-plan every timer,
# and the guarded ``refresh`` self-loop in both live states.
CYCLE = ("connect", "refresh", "disconnect", "refresh")
MOVES = ("connect", "disconnect")
ACTORS = {"connect": Actor.SERVER, "disconnect": Actor.SERVER, "refresh": Actor.CLIENT}
START = "session_active"
FACTS = {SessionGuard.REFRESH_TOKEN_CURRENT.name: True}


def _machine_spec() -> dict[str, Any]:
    """The session machine's states and transitions as plain ``transitions`` config, without guards."""
    return {
        "states": [str(state) for state in SESSION.states],
        "transitions": [
            {
                "trigger": str(row.event),
                "source": [str(source) for source in row.sources],
                "dest": str(row.dest) if row.dest is not None else "=",
            }
            for row in SESSION.transitions
        ],
        "auto_transitions": False,
    }


class _Model:
    """The one model of the bare machine; ``transitions`` adds ``trigger`` and the event methods."""

    state: str
    trigger: Callable[..., bool]


def bare_trigger(events: Sequence[str]) -> Callable[[int], float]:
    """A shared machine with one model, triggered by name: the floor for any ``transitions`` step."""
    model = _Model()
    Machine(model=model, initial=START, **_machine_spec())

    position = 0  # the model's state carries over between blocks, so the cycle must too

    def run(n: int) -> float:
        nonlocal position
        trigger = model.trigger
        cycle = len(events)
        start = time.perf_counter()
        for i in range(position, position + n):
            trigger(events[i % cycle])
        position += n
        return time.perf_counter() - start

    return run


def machine_per_instance(events: Sequence[str]) -> Callable[[int], float]:
    """What one machine per instance costs: build a ``Machine`` for the loaded state, then trigger."""
    spec = _machine_spec()

    def run(n: int) -> float:
        state = START
        cycle = len(events)
        start = time.perf_counter()
        for i in range(n):
            model = _Model()
            Machine(model=model, initial=state, **spec)
            model.trigger(events[i % cycle])
            state = model.state
        return time.perf_counter() - start

    return run


def engine_step(events: Sequence[str]) -> Callable[[int], float]:
    """``Engine.step`` as the service calls it: a fresh context per event carrying the last timers."""
    eng = engine(SESSION)
    now = datetime.now(UTC)
    initial_timers = eng.initial_timers(now)

    def run(n: int) -> float:
        state, timers = START, initial_timers
        cycle = len(events)
        step = eng.step
        start = time.perf_counter()
        for i in range(n):
            event = events[i % cycle]
            outcome = step(state, event, StepContext(ACTORS[event], now, FACTS, timers))
            state, timers = outcome.dest, outcome.timers
        return time.perf_counter() - start

    return run


def bench_step(n: int, repeats: int) -> list[Row]:
    base, moves_base = "bare trigger, shared machine (baseline)", "  moves only: bare trigger connect/disconnect"
    per_instance = machine_per_instance(CYCLE)
    variants = [
        Variant(base, bare_trigger(CYCLE)),
        Variant("Engine.step (guards, timer plan, context)", engine_step(CYCLE), base, harness.Target("<=", 1.5)),
        Variant("Machine built per instance, then trigger (1/20 the ops)", per_instance, base, scale=0.05),
        Variant(moves_base, bare_trigger(MOVES)),
        Variant("  moves only: Engine.step connect/disconnect", engine_step(MOVES), moves_base),
    ]
    measure(variants, n, repeats)
    return report(
        "(a) in-process step, one connect/refresh/disconnect/refresh cycle (refresh = guarded self-loop)",
        "us/event",
        variants,
        per_second=False,
        n=n,
        repeats=repeats,
    )


# -- (b), (c) persisted transitions --------------------------------------------------------

MOVE_STATES = ("ws_connected", "session_active")  # after connect, after disconnect
IDLE = timedelta(minutes=30)
LIFETIME = timedelta(days=30)


def _ready_session(service: TransitionService) -> uuid.UUID:
    """A session in ``session_active``, created and logged in through the service."""
    iid = service.create("session").id
    service.fire("session", iid, E.AUTHENTICATE, actor="server", facts={"credentials_verified": True})
    service.fire("session", iid, E.ACTIVATE, actor="server", facts={"user_enabled": True, "under_session_cap": True})
    return iid


def service_fire(service: TransitionService, iid: uuid.UUID) -> Callable[[int], float]:
    """The subject: ``TransitionService.fire`` alternating ``connect`` and ``disconnect``."""
    events = MOVES

    position = 0  # the row's state carries over between blocks, so the alternation must too

    def run(n: int) -> float:
        nonlocal position
        fire = service.fire
        start = time.perf_counter()
        for i in range(position, position + n):
            fire("session", iid, events[i % 2], actor=Actor.SERVER)
        position += n
        return time.perf_counter() - start

    return run


@dataclass
class RawSQL:
    select: str
    update: str
    insert: str


def raw_sql(db: Database) -> RawSQL:
    """The service's own statements, as SQLAlchemy compiles them for this dialect."""

    def sql(statement: Any) -> str:
        return str(statement.compile(dialect=db.dialect))

    return RawSQL(
        sql(SESSIONS.select_state(lock=db.is_postgresql)),
        sql(SESSIONS.compare_and_set()),
        sql(history_insert()),
    )


def raw_sqlite_loop(path: Path, statements: RawSQL, iid: uuid.UUID, *, with_select: bool) -> Callable[[int], float]:
    """Baseline: sqlite3, same pragmas, BEGIN IMMEDIATE; [SELECT;] UPDATE ... RETURNING; INSERT; COMMIT."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000", "foreign_keys=ON"):
        connection.execute(f"PRAGMA {pragma}")
    cursor = connection.cursor()
    key = iid.hex  # how SQLAlchemy's Uuid binds on SQLite
    version = cursor.execute("SELECT version FROM sessions WHERE id = ?", (key,)).fetchone()[0]
    lifetime = time.time_ns() // 1000 + LIFETIME // timedelta(microseconds=1)
    idle = IDLE // timedelta(microseconds=1)

    position = 0

    def run(n: int) -> float:
        nonlocal version, position
        start = time.perf_counter()
        for i in range(position, position + n):
            now = time.time_ns() // 1000
            dest, source = MOVE_STATES[i % 2], MOVE_STATES[(i + 1) % 2]
            cursor.execute("BEGIN IMMEDIATE")
            if with_select:
                cursor.execute(statements.select, (key,))
                version = cursor.fetchone()[1]
            cursor.execute(
                statements.update,
                (dest, version + 1, now, None, now + idle, None, None, lifetime, now + idle, key, version),
            )
            if cursor.fetchone() is None:
                raise RuntimeError("compare-and-set lost in a single-writer loop")
            cursor.execute(
                statements.insert,
                ("session", key, version + 1, MOVES[i % 2], source, dest, "server", None, now, None),
            )
            cursor.execute("COMMIT")
            version += 1
        position += n
        return time.perf_counter() - start

    return run


def raw_psycopg_loop(conninfo: str, statements: RawSQL, iid: uuid.UUID, *, with_select: bool) -> Callable[[int], float]:
    """Baseline: one psycopg connection; [SELECT ... FOR UPDATE;] UPDATE ... RETURNING; INSERT; COMMIT."""
    connection = psycopg.connect(conninfo)
    cursor = connection.cursor()
    cursor.execute("SELECT version FROM sessions WHERE id = %s", (iid,))
    row = cursor.fetchone()
    assert row is not None
    version = row[0]
    connection.commit()
    lifetime = datetime.now(UTC) + LIFETIME

    position = 0

    def run(n: int) -> float:
        nonlocal version, position
        start = time.perf_counter()
        for i in range(position, position + n):
            now = datetime.now(UTC)
            dest, source = MOVE_STATES[i % 2], MOVE_STATES[(i + 1) % 2]
            if with_select:
                cursor.execute(statements.select, {"id": iid})
                version = cursor.fetchone()[1]  # type: ignore[index]
            cursor.execute(
                statements.update,
                {
                    "state": dest,
                    "version": version + 1,
                    "updated_at": now,
                    "login_window_due_at": None,
                    "idle_due_at": now + IDLE,
                    "grace_due_at": None,
                    "refresh_window_due_at": None,
                    "lifetime_due_at": lifetime,
                    "next_due_at": now + IDLE,
                    "id": iid,
                    "expected": version,
                },
            )
            if cursor.fetchone() is None:
                raise RuntimeError("compare-and-set lost in a single-writer loop")
            cursor.execute(
                statements.insert,
                {
                    "machine": "session",
                    "instance_id": iid,
                    "seq": version + 1,
                    "event": MOVES[i % 2],
                    "from_state": source,
                    "to_state": dest,
                    "actor": "server",
                    "request_id": None,
                    "at": now,
                    "detail": None,
                },
            )
            connection.commit()
            version += 1
        position += n
        return time.perf_counter() - start

    return run


def persisted_variants(
    service: TransitionService, raw: Callable[[uuid.UUID, bool], Callable[[int], float]], driver: str
) -> list[Variant]:
    base = f"raw {driver}: UPDATE + INSERT (baseline, target)"
    subject = service_fire(service, _ready_session(service))
    return [
        Variant(base, raw(_ready_session(service), False)),
        Variant(f"raw {driver}: SELECT + UPDATE + INSERT (stricter)", raw(_ready_session(service), True)),
        Variant("TransitionService.fire vs UPDATE + INSERT", subject, base, harness.Target(">=", 0.5)),
    ]


def with_stricter(variants: list[Variant]) -> list[Variant]:
    """The subject judged again against the stricter loop (same timings, other baseline)."""
    subject, stricter = variants[2], variants[1]
    label = "TransitionService.fire vs SELECT + UPDATE + INSERT"
    again = Variant(label, subject.run, stricter.label, seconds=subject.seconds)
    return [*variants, again]


def bench_persisted(
    url: str,
    raw: Callable[[RawSQL, uuid.UUID, bool], Callable[[int], float]],
    driver: str,
    title: Callable[[Connection], str],
    n: int,
    repeats: int,
) -> list[Row]:
    """The service against the raw loops of ``driver`` on a fresh schema at ``url``; ``title`` names the table."""
    db = Database.from_url(url)
    try:
        Base.metadata.create_all(db.engine)
        service = TransitionService(db)
        statements = raw_sql(db)
        variants = persisted_variants(service, lambda iid, sel: raw(statements, iid, sel), driver)
        measure(variants, n, repeats)
        with db.engine.connect() as connection:
            heading = title(connection)  # the settings the figures were measured with, read back
        return report(heading, "per second", with_stricter(variants), per_second=True, n=n, repeats=repeats)
    finally:
        db.dispose()


def _sqlite_title(connection: Connection) -> str:
    mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
    sync = connection.exec_driver_sql("PRAGMA synchronous").scalar()
    return f"(b) SQLite persisted transitions (temp file, journal_mode={mode}, synchronous={sync} [1=NORMAL])"


def _postgres_title(connection: Connection) -> str:
    settings = ", ".join(
        f"{name}={connection.exec_driver_sql(f'SHOW {name}').scalar()}"
        for name in ("synchronous_commit", "fsync", "wal_sync_method")
    )
    return f"(c) PostgreSQL persisted transitions (one connection each; {settings})"


def bench_sqlite(n: int, repeats: int) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="sessionflow-bench-") as tmp:
        path = Path(tmp) / "bench.db"

        def loop(statements: RawSQL, iid: uuid.UUID, with_select: bool) -> Callable[[int], float]:
            return raw_sqlite_loop(path, statements, iid, with_select=with_select)

        return bench_persisted(f"sqlite:///{path}", loop, "sqlite3", _sqlite_title, n, repeats)


def bench_postgres(url: str, n: int, repeats: int) -> list[Row]:
    with harness.temporary_postgres(url, loopback_only=False) as bench_url:
        conninfo = make_url(bench_url).set(drivername="postgresql").render_as_string(hide_password=False)

        def loop(statements: RawSQL, iid: uuid.UUID, with_select: bool) -> Callable[[int], float]:
            return raw_psycopg_loop(conninfo, statements, iid, with_select=with_select)

        return bench_persisted(bench_url, loop, "psycopg", _postgres_title, n, repeats)


# -- environment and main ------------------------------------------------------------------


def environment(postgres_url: str | None) -> None:
    harness.print_header("bench/engine.py", OWN_FILES, "to the measured files")
    print(f"  cpus        {os.cpu_count()} (load average {harness.load_average()})")
    print(f"  sqlite      {sqlite3.sqlite_version}")
    print(f"  sqlalchemy  {harness.package_version('sqlalchemy')}")
    print(f"  transitions {harness.package_version('transitions')}")
    print(f"  psycopg     {harness.package_version('psycopg')}")
    if postgres_url is not None:
        print(f"  postgresql  {harness.postgres_version(postgres_url)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer operations and repeats (a smoke run, noisier)")
    parser.add_argument("--repeats", type=int, help="repeats per variant (default 15, quick 5)")
    parser.add_argument(
        "--postgres-url",
        default=harness.DEFAULT_POSTGRES_URL,
        help="server for (c); a temporary database is made there",
    )
    parser.add_argument("--no-postgres", action="store_true", help="skip (c)")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument(
        "--only", choices=("step", "sqlite", "postgres"), action="append", help="run only these parts (repeatable)"
    )
    args = parser.parse_args(argv)
    repeats = args.repeats or (5 if args.quick else 15)
    # Short blocks, many repeats: adjacent blocks see the same machine load, so their ratio is fair.
    step_n, db_n = (4_000, 200) if args.quick else (20_000, 1_000)

    parts = set(args.only or ("step", "sqlite", "postgres"))
    postgres_url = None if args.no_postgres or "postgres" not in parts else args.postgres_url
    environment(postgres_url)
    rows: list[Row] = []
    if "step" in parts:
        rows += bench_step(step_n, repeats)
    if "sqlite" in parts:
        rows += bench_sqlite(db_n, repeats)
    if "postgres" not in parts:
        pass
    elif postgres_url is None:
        print("\n(c) PostgreSQL: skipped (--no-postgres)")
    elif (reason := harness.postgres_unreachable(postgres_url)) is not None:
        print(f"\n(c) PostgreSQL: skipped, server unreachable at {make_url(postgres_url).render_as_string()}: {reason}")
    else:
        rows += bench_postgres(postgres_url, db_n // 2, repeats)

    missed = harness.print_targets((row.label, row.passed) for row in rows)
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
