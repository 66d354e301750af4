"""The ``sessionflow`` command line.

    sessionflow migrate [REVISION]          bring the schema to REVISION (default head)
    sessionflow diagrams [--check]          regenerate diagrams/ and the README diagrams, or check drift
    sessionflow sessions list|show|history  inspect sessions
    sessionflow users create NAME           create a user (password from a prompt or --password-stdin)
    sessionflow sweep [--every SECONDS]     fire due timers once, or forever
    sessionflow serve [--host] [--port] [--workers]   migrate, then serve
    sessionflow demo [--check]              a server and the reference client, end to end

Settings come from ``SESSIONFLOW_*`` environment variables (see README).
"""

from __future__ import annotations

import argparse
import getpass
import importlib.metadata
import json
import logging
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from sessionflow.api.settings import Settings, SettingsError

log = logging.getLogger("sessionflow.cli")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("alembic", "transitions"):  # per-plugin and per-callback chatter hides what matters
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
        result: int = args.run(args, settings)
    except SettingsError as exc:
        print(f"sessionflow: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except _Failure as exc:
        print(f"sessionflow: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except SQLAlchemyError as exc:
        # Parameters are hidden by the engine; the statement and the error class are enough here.
        print(
            f"sessionflow: database error: {type(exc).__name__}: {getattr(exc, 'orig', None) or exc}".splitlines()[0],
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return result


class _Failure(Exception):
    """An expected failure reported in one line, without a traceback."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sessionflow", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    version = importlib.metadata.version("sessionflow")
    parser.add_argument("--version", action="version", version=f"sessionflow {version}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    migrate.set_defaults(run=_migrate)

    diagrams = commands.add_parser("diagrams", help="generate lifecycle diagrams from the machine definitions")
    diagrams.add_argument("--check", action="store_true", help="write nothing; exit 1 if a committed diagram differs")
    diagrams.add_argument("--dir", type=Path, default=Path("diagrams"), help="output directory (default: diagrams)")
    diagrams.add_argument("--readme", type=Path, default=Path("README.md"), help="README with diagram markers")
    diagrams.set_defaults(run=_diagrams)

    sessions = commands.add_parser("sessions", help="inspect sessions").add_subparsers(
        title="actions", metavar="ACTION", required=True
    )
    listing = sessions.add_parser("list", help="list sessions")
    listing.add_argument("--state", help="only sessions in this state")
    listing.add_argument("--user", help="only sessions of this username")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.add_argument("--after", type=uuid.UUID, help="page: sessions after this id")
    listing.add_argument("--json", action="store_true", help="print JSON lines")
    listing.set_defaults(run=_sessions_list)
    show = sessions.add_parser("show", help="show one session (due timers fire first)")
    show.add_argument("session_id")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(run=_sessions_show)
    hist = sessions.add_parser("history", help="a session's transitions, oldest first")
    hist.add_argument("session_id")
    hist.add_argument("--after-seq", type=int, default=0, help="only transitions after this seq")
    hist.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    hist.add_argument("--json", action="store_true", help="print JSON lines")
    hist.set_defaults(run=_sessions_history)

    users = commands.add_parser("users", help="manage users").add_subparsers(
        title="actions", metavar="ACTION", required=True
    )
    create = users.add_parser("create", help="create a user; the password is prompted for, never an argument")
    create.add_argument("name")
    create.add_argument("--admin", action="store_true", help="give the user the admin role")
    create.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    create.set_defaults(run=_users_create)

    sweep = commands.add_parser("sweep", help="fire timers that are due")
    sweep.add_argument(
        "--every", type=float, metavar="SECONDS", help="keep sweeping at this interval until interrupted"
    )
    sweep.set_defaults(run=_sweep)

    demo = commands.add_parser("demo", help="run a server and the reference client through a session; draw what passed")
    demo.add_argument("--check", action="store_true", help="write nothing; exit 1 if the committed diagram differs")
    demo.add_argument("--output", type=Path, default=Path("diagrams/demo-sequence.mmd"), help="sequence diagram file")
    demo.set_defaults(run=_demo)

    serve = commands.add_parser("serve", help="migrate, then serve the API with uvicorn")
    serve.add_argument("--host", help="bind address (default SESSIONFLOW_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default SESSIONFLOW_PORT or 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (default SESSIONFLOW_WORKERS or 1)")
    serve.set_defaults(run=_serve)
    return parser


def _database(settings: Settings, *, require_schema: bool = True) -> Any:
    """The configured database; unless told otherwise, refuse one whose schema is not at head."""
    from sessionflow.persistence import migrate
    from sessionflow.persistence.database import Database

    db = Database.from_url(settings.database_url, pool_size=settings.pool_size)
    if require_schema and not migrate.is_at_head(db):
        db.dispose()
        raise _Failure("the database schema is not at the current version; run `sessionflow migrate` first")
    return db


def _service(settings: Settings) -> Any:
    from sessionflow.persistence.service import TransitionService

    return TransitionService(_database(settings), durations=settings.durations())


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from sessionflow.persistence import migrate

    db = _database(settings, require_schema=False)
    try:
        migrate.upgrade(db, args.revision)
        print(f"schema at {migrate.current(db)}")
    finally:
        db.dispose()
    return EXIT_OK


def _diagrams(args: argparse.Namespace, settings: Settings) -> int:
    from sessionflow.lifecycle import MACHINES, diagrams

    definitions = list(MACHINES.values())
    drifted = diagrams.generate(args.dir, definitions, check=args.check)
    readme_drifted = args.readme.exists() and diagrams.sync_readme(args.readme, definitions, check=args.check)
    if not args.check:
        print(f"wrote {len(drifted)} files in {args.dir}" + (f" and updated {args.readme}" if readme_drifted else ""))
        return EXIT_OK
    stale = [str(path) for path in drifted] + ([str(args.readme)] if readme_drifted else [])
    if stale:
        print(
            "diagrams differ from the machine definitions; run `sessionflow diagrams`:",
            *stale,
            sep="\n  ",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    print("diagrams match the machine definitions")
    return EXIT_OK


def _sessions_list(args: argparse.Namespace, settings: Settings) -> int:
    from sessionflow.persistence import queries

    db = _database(settings)
    try:
        user_id = None
        if args.user is not None:
            user_id = queries.user_id_by_name(db, args.user)
            if user_id is None:
                raise _Failure(f"no user named {args.user!r}")
        rows = queries.list_sessions(db, state=args.state, user_id=user_id, after=args.after, limit=args.limit)
    except ValueError as exc:
        raise _Failure(str(exc)) from None
    finally:
        db.dispose()
    for row in rows:
        if args.json:
            print(
                json.dumps(
                    {"session_id": str(row.id), "state": row.state, "version": row.version, "user": row.username}
                )
            )
        else:
            print(f"{row.id}  {row.state:<16} v{row.version:<4} {row.username or '-'}")
    return EXIT_OK


def _sessions_show(args: argparse.Namespace, settings: Settings) -> int:
    from sessionflow.lifecycle import engine
    from sessionflow.persistence.bindings import SESSIONS
    from sessionflow.persistence.errors import PersistenceError

    service = _service(settings)
    try:
        snapshot = service.get("session", args.session_id)
    except PersistenceError as exc:
        raise _Failure(str(exc)) from None
    finally:
        service.db.dispose()
    shown = {
        "session_id": str(snapshot.id),
        "state": snapshot.state,
        "version": snapshot.version,
        "user_id": str(snapshot.row["user_id"]) if snapshot.row.get("user_id") else None,
        "allowed_events": list(engine(SESSIONS.definition).allowed_events(snapshot.state)),
        "timers": {name: due.isoformat() if due else None for name, due in snapshot.timers.items()},
    }
    if args.json:
        print(json.dumps(shown, indent=2))
    else:
        for key, value in shown.items():
            print(f"{key:>15}: {value}")
    return EXIT_OK


def _sessions_history(args: argparse.Namespace, settings: Settings) -> int:
    from sessionflow.persistence import queries

    db = _database(settings)
    try:
        entries = queries.history(db, "session", args.session_id, after_seq=args.after_seq, limit=args.limit)
    except ValueError as exc:
        raise _Failure(str(exc)) from None
    finally:
        db.dispose()
    for e in entries:
        if args.json:
            print(
                json.dumps(
                    {
                        "seq": e.seq,
                        "event": e.event,
                        "from_state": e.from_state,
                        "to_state": e.to_state,
                        "actor": e.actor,
                        "at": e.at.isoformat(),
                    }
                )
            )
        else:
            print(f"{e.seq:>4}  {e.at.isoformat()}  {e.from_state} --{e.event}--> {e.to_state}  ({e.actor})")
    return EXIT_OK


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise _Failure("passwords do not match")
    if not password:
        raise _Failure("empty password")
    return password


def _users_create(args: argparse.Namespace, settings: Settings) -> int:
    from sessionflow.api.passwords import WeakPassword, hash_password
    from sessionflow.lifecycle import SystemClock
    from sessionflow.persistence.errors import PersistenceError
    from sessionflow.persistence.users import create_user, validate_username

    try:
        validate_username(args.name)
        password_hash = hash_password(_read_password(args.password_stdin))
    except (ValueError, WeakPassword) as exc:
        raise _Failure(str(exc)) from None
    db = _database(settings)
    try:
        user = create_user(db, args.name, password_hash, is_admin=args.admin, now=SystemClock().now())
    except PersistenceError as exc:
        raise _Failure(str(exc)) from None
    finally:
        db.dispose()
    print(f"created {'admin ' if user.is_admin else ''}user {user.username} ({user.id})")
    return EXIT_OK


def _sweep(args: argparse.Namespace, settings: Settings) -> int:
    service = _service(settings)
    try:
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
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        service.db.dispose()


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from sessionflow.api import demo

    return demo.run(output=args.output, check=args.check)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from sessionflow.api import server
    from sessionflow.persistence import migrate

    host = args.host or settings.host
    port = args.port or settings.port
    workers = args.workers or settings.workers
    # Migrate once, here, before any worker starts (the advisory lock in the
    # migration environment also protects several hosts starting at once).
    db = _database(settings, require_schema=False)
    try:
        migrate.upgrade(db)
    finally:
        db.dispose()
    server.run(
        app="sessionflow.api.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        # Our access log (method, path, status) replaces uvicorn's, which would print query strings.
        access_log=False,
        # Messages are small JSON; compression state would double the memory of each connection (bench/ws.py).
        ws_per_message_deflate=False,
        # Behind a proxy, per-address rate limits must see the client, not the proxy.
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
