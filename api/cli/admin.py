"""Administering users and sessions: ``users create|list|enable|disable`` and ``sessions list|show|history``.

Human output is plain text with a header; ``--json`` prints JSON (one object
per line for lists) for scripts. Times are UTC.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import uuid
from typing import Any

from sessionflow.api.cli.common import database, moment, table
from sessionflow.api.errors import CommandFailed, WeakPassword
from sessionflow.api.settings import Settings
from sessionflow.lifecycle import SESSION, Actor, SystemClock, engine
from sessionflow.persistence import Database, PersistenceError, TransitionService, queries, sessions, users

EXIT_OK = 0


def add_commands(commands: Any) -> None:
    user = commands.add_parser("users", help="manage users").add_subparsers(
        title="actions", metavar="ACTION", required=True
    )
    create = user.add_parser("create", help="create a user; the password is prompted for, never an argument")
    create.add_argument("name")
    create.add_argument("--admin", action="store_true", help="give the user the admin role")
    create.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    create.set_defaults(run=_users_create)
    listing = user.add_parser("list", help="list users with their role, status and open sessions")
    listing.add_argument("--json", action="store_true", help="print JSON lines")
    listing.set_defaults(run=_users_list)
    for action, help_text in (
        ("disable", "disable a user and revoke every session of theirs"),
        ("enable", "let a disabled user log in again"),
    ):
        command = user.add_parser(action, help=help_text)
        command.add_argument("name")
        command.set_defaults(run=_users_enable if action == "enable" else _users_disable)

    session = commands.add_parser("sessions", help="inspect sessions").add_subparsers(
        title="actions", metavar="ACTION", required=True
    )
    listing = session.add_parser("list", help="list sessions, newest first")
    listing.add_argument("--state", help="only sessions in this state")
    listing.add_argument("--user", help="only sessions of this username")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.add_argument("--after", type=uuid.UUID, help="the next page: sessions older than this one")
    listing.add_argument("--json", action="store_true", help="print JSON lines")
    listing.set_defaults(run=_sessions_list)
    show = session.add_parser("show", help="show one session (due timers fire first)")
    show.add_argument("session_id")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(run=_sessions_show)
    history = session.add_parser("history", help="a session's transitions, oldest first")
    history.add_argument("session_id")
    history.add_argument("--after-seq", type=int, default=0, help="only transitions after this seq")
    history.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    history.add_argument("--json", action="store_true", help="print JSON lines")
    history.set_defaults(run=_sessions_history)


# -- users --------------------------------------------------------------------------------------


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif not sys.stdin.isatty():
        raise CommandFailed("standard input is not a terminal: pass --password-stdin to read the password from it")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise CommandFailed("passwords do not match")
    if not password:
        raise CommandFailed("empty password")
    return password


def _users_create(args: argparse.Namespace, settings: Settings) -> int:
    from sessionflow.api.passwords import hash_password

    try:
        users.validate_username(args.name)
        password_hash = hash_password(_read_password(args.password_stdin))
    except (ValueError, WeakPassword) as exc:
        raise CommandFailed(str(exc)) from None
    with database(settings) as db:
        try:
            created = users.create_user(db, args.name, password_hash, is_admin=args.admin, now=SystemClock().now())
        except PersistenceError as exc:
            raise CommandFailed(str(exc)) from None
    print(f"created {'admin ' if created.is_admin else ''}user {created.username} ({created.id})")
    return EXIT_OK


def _users_list(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings) as db:
        found = users.listing(db)
    if args.json:
        for u in found:
            shown = {
                "user_id": str(u.id),
                "username": u.username,
                "admin": u.is_admin,
                "enabled": u.enabled,
                "identity_provider": u.identity_provider,
                "created_at": u.created_at.isoformat(),
                "open_sessions": u.open_sessions,
            }
            print(json.dumps(shown))
        return EXIT_OK
    rows = [
        (
            u.username,
            "admin" if u.is_admin else "user",
            "enabled" if u.enabled else "disabled",
            u.identity_provider or "password",
            moment(u.created_at),
            u.open_sessions,
            u.id,
        )
        for u in found
    ]
    table(("USER", "ROLE", "STATUS", "LOGIN", "CREATED", "OPEN SESSIONS", "ID"), rows)
    return EXIT_OK


def _named_user(db: Database, name: str) -> users.UserRecord:
    found = users.by_name(db, name)
    if found is None:
        raise CommandFailed(f"no user named {name!r}")
    return found


def _users_disable(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings) as db:
        user = _named_user(db, args.name)
        with TransitionService(db, durations=settings.durations()).transaction() as tx:
            users.set_enabled(tx, user.id, False)
            revoked = sessions.revoke_all_of(tx, user.id, actor=Actor.ADMIN, reason="user_disabled")
    print(f"disabled user {user.username}; revoked {len(revoked)} open sessions")
    return EXIT_OK


def _users_enable(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings) as db:
        user = _named_user(db, args.name)
        with TransitionService(db).transaction() as tx:
            users.set_enabled(tx, user.id, True)
    print(f"enabled user {user.username}")
    return EXIT_OK


# -- sessions -----------------------------------------------------------------------------------


def _sessions_list(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings) as db:
        user_id = _named_user(db, args.user).id if args.user is not None else None
        try:
            rows = queries.list_sessions(db, state=args.state, user_id=user_id, after=args.after, limit=args.limit)
        except PersistenceError as exc:
            raise CommandFailed(str(exc)) from None
    if args.json:
        for row in rows:
            shown = {
                "session_id": str(row.id),
                "state": row.state,
                "version": row.version,
                "user": row.username,
                "created_at": row.created_at.isoformat(),
                "updated_at": row.updated_at.isoformat(),
            }
            print(json.dumps(shown))
        return EXIT_OK
    table(
        ("SESSION", "STATE", "VERSION", "USER", "CREATED", "UPDATED"),
        [(r.id, r.state, r.version, r.username or "-", moment(r.created_at), moment(r.updated_at)) for r in rows],
    )
    return EXIT_OK


def _sessions_show(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings) as db:
        service = TransitionService(db, durations=settings.durations())
        try:
            snapshot = service.get(SESSION.name, args.session_id)
            connections = queries.live_connections(db, snapshot.id)
        except PersistenceError as exc:
            raise CommandFailed(str(exc)) from None
        owner = users.by_id(db, snapshot.row["user_id"]) if snapshot.row.get("user_id") else None
    allowed = {str(actor): list(_allowed(snapshot.state, actor)) for actor in (Actor.CLIENT, Actor.ADMIN)}
    shown: dict[str, Any] = {
        "session_id": str(snapshot.id),
        "state": snapshot.state,
        "version": snapshot.version,
        "user": owner.username if owner else None,
        "user_id": str(owner.id) if owner else None,
        "created_at": snapshot.row["created_at"].isoformat(),
        "updated_at": snapshot.row["updated_at"].isoformat(),
        "timers": {name: due.isoformat() if due else None for name, due in snapshot.timers.items()},
        "allowed_events": allowed,
        "connections": [str(c) for c in connections],
    }
    if args.json:
        print(json.dumps(shown, indent=2))
        return EXIT_OK
    lines = [
        ("session", shown["session_id"]),
        ("state", snapshot.state),
        ("version", snapshot.version),
        ("user", f"{owner.username} ({owner.id})" if owner else "- (anonymous)"),
        ("created", moment(snapshot.row["created_at"])),
        ("updated", moment(snapshot.row["updated_at"])),
        *((f"timer {name}", moment(due) if due else "not armed") for name, due in snapshot.timers.items()),
        *((f"{actor} may fire", ", ".join(events) or "nothing") for actor, events in allowed.items()),
        ("open connections", ", ".join(shown["connections"]) or "none"),
    ]
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        print(f"{label:<{width}}  {value}")
    return EXIT_OK


def _allowed(state: str, actor: Actor) -> tuple[str, ...]:
    return engine(SESSION).allowed_events(state, actor)


def _sessions_history(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings) as db:
        try:
            entries = queries.history(db, SESSION.name, args.session_id, after_seq=args.after_seq, limit=args.limit)
        except PersistenceError as exc:
            raise CommandFailed(str(exc)) from None
    if args.json:
        for e in entries:
            shown = {
                "seq": e.seq,
                "event": e.event,
                "from_state": e.from_state,
                "to_state": e.to_state,
                "actor": e.actor,
                "at": e.at.isoformat(),
                "request_id": e.request_id,
            }
            print(json.dumps(shown))
        return EXIT_OK
    table(
        ("SEQ", "AT", "ACTOR", "TRANSITION"),
        [(e.seq, moment(e.at), e.actor, f"{e.from_state} --{e.event}--> {e.to_state}") for e in entries],
    )
    return EXIT_OK
