"""Running the service: ``migrate``, ``serve``, ``sweep``, ``diagrams`` and ``demo``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from alembic.util import CommandError

from sessionflow.api.cli.common import database
from sessionflow.api.errors import CommandFailed
from sessionflow.api.settings import Settings

EXIT_OK, EXIT_FAILURE = 0, 1


def add_commands(commands: Any) -> None:
    migrate = commands.add_parser("migrate", help="apply database migrations (creates a SQLite file if needed)")
    migrate.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    migrate.set_defaults(run=_migrate)

    serve = commands.add_parser("serve", help="migrate, then serve the API")
    serve.add_argument("--host", help="bind address (default SESSIONFLOW_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default SESSIONFLOW_PORT or 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (default SESSIONFLOW_WORKERS or 1)")
    serve.set_defaults(run=_serve)

    sweep = commands.add_parser("sweep", help="fire timers that are due")
    sweep.add_argument("--every", type=float, metavar="SECONDS", help="keep sweeping at this interval until stopped")
    sweep.set_defaults(run=_sweep)

    diagrams = commands.add_parser(
        "diagrams", help="regenerate diagrams/ and the generated blocks of README.md and docs/ from the definitions"
    )
    diagrams.add_argument("--check", action="store_true", help="write nothing; exit 1 if anything generated differs")
    diagrams.add_argument("--root", type=Path, default=Path(), help="the repository checkout (default: here)")
    diagrams.set_defaults(run=_diagrams)

    demo = commands.add_parser("demo", help="run a server and the reference client through a session; draw what passed")
    demo.add_argument("--check", action="store_true", help="write nothing; exit 1 if the committed diagram differs")
    demo.add_argument("--output", type=Path, default=Path("diagrams/demo-sequence.mmd"), help="sequence diagram file")
    demo.set_defaults(run=_demo)


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from sessionflow.persistence import migrate

    with database(settings, create=True, require_schema=False) as db:
        try:
            migrate.upgrade(db, args.revision)
        except CommandError as exc:
            raise CommandFailed(f"cannot migrate to {args.revision!r}: {exc}") from None
        print(f"schema at {migrate.current(db)}")
    return EXIT_OK


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from sessionflow.api import server
    from sessionflow.persistence import migrate

    host = args.host or settings.host
    port = args.port or settings.port
    workers = args.workers or settings.workers
    if workers < 1:
        raise CommandFailed("--workers must be at least 1")
    # Migrate once, here, before any worker starts (the advisory lock in the
    # migration environment also protects several hosts starting at once).
    with database(settings, create=True, require_schema=False) as db:
        if workers > 1 and db.is_sqlite:
            print(
                f"sessionflow: warning: {workers} workers on SQLite take turns on its single write lock, and "
                "live notifications reach only the connections of the worker that made the change; "
                "use PostgreSQL (SESSIONFLOW_DATABASE_URL=postgresql://...) for several workers",
                file=sys.stderr,
            )
        migrate.upgrade(db)
    server.run(
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        limits=server.Limits(
            header_read_timeout=settings.header_read_timeout.total_seconds(), header_limit=settings.header_limit
        ),
    )
    return EXIT_OK


def _sweep(args: argparse.Namespace, settings: Settings) -> int:
    from sessionflow.persistence import TransitionService

    with database(settings) as db:
        service = TransitionService(db, durations=settings.durations())
        while True:
            fired = service.sweep()
            for applied in fired:
                print(
                    f"{applied.machine} {applied.instance_id}: "
                    f"{applied.from_state} --{applied.event}--> {applied.to_state}"
                )
            if args.every is None:
                print(f"fired {len(fired)} timer events")
                return EXIT_OK
            time.sleep(args.every)


def _diagrams(args: argparse.Namespace, settings: Settings) -> int:
    from sessionflow.api import reference

    root: Path = args.root
    if not (root / "README.md").is_file() or not (root / "diagrams").is_dir():
        raise CommandFailed(f"{root.resolve()} is not a sessionflow checkout (no README.md and diagrams/); use --root")
    drifted = reference.generate(root, check=args.check)
    if not args.check:
        print(f"regenerated {len(drifted)} files" if drifted else "everything generated was already current")
        return EXIT_OK
    if drifted:
        print(
            "these differ from the definitions; run `sessionflow diagrams`:",
            *(str(path) for path in drifted),
            sep="\n  ",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    print("diagrams and generated blocks match the definitions")
    return EXIT_OK


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from sessionflow.api import demo

    return demo.run(output=args.output, check=args.check)
