"""The platform's other services: ``keys rotate|list`` and ``services add|list|remove`` (docs/services.md)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from sessionflow.api.auth import keydir
from sessionflow.api.auth.keys import PREFIX_HINT, VERIFY_LEEWAY, keys_dir, uses_key_directory
from sessionflow.api.cli.common import database, moment, table
from sessionflow.api.errors import CommandFailed
from sessionflow.api.settings import Settings
from sessionflow.persistence import InvalidInput, ServiceExists, services

EXIT_OK = 0


def add_commands(commands: Any) -> None:
    keys = commands.add_parser("keys", help="the asymmetric signing keys of access tokens").add_subparsers(
        title="actions", metavar="ACTION", required=True
    )
    keys.add_parser(
        "rotate",
        help="add a key that signs from now on; older keys verify until their tokens expired, then are deleted",
    ).set_defaults(run=_keys_rotate)
    keys.add_parser("list", help="the keys that verify, the signing key last").set_defaults(run=_keys_list)

    service = commands.add_parser(
        "services", help="services allowed to introspect tokens and receive revocations"
    ).add_subparsers(title="actions", metavar="ACTION", required=True)
    add = service.add_parser("add", help="register a service; its secret is printed once, never stored")
    add.add_argument("name")
    add.set_defaults(run=_services_add)
    service.add_parser("list", help="registered services").set_defaults(run=_services_list)
    remove = service.add_parser("remove", help="unregister a service (refused within seconds)")
    remove.add_argument("name")
    remove.set_defaults(run=_services_remove)


def _directory_or_fail(settings: Settings) -> Any:
    if not uses_key_directory(settings):
        raise CommandFailed(f"{PREFIX_HINT}; keys rotate only with EdDSA or RS256 and no key files")
    return keys_dir(settings)


def _keys_rotate(args: argparse.Namespace, settings: Settings) -> int:
    directory = _directory_or_fail(settings)
    now = datetime.now(UTC)
    lifetime = settings.access_token_ttl + VERIFY_LEEWAY
    kid = keydir.add(directory, settings.jwt_algorithm, now=now)
    gone = keydir.prune(directory, now=now, lifetime=lifetime)
    print(f"new signing key {kid} in {directory}; running servers sign with it within seconds")
    if gone:
        print(f"deleted keys whose tokens have all expired: {', '.join(gone)}")
    return EXIT_OK


def _keys_list(args: argparse.Namespace, settings: Settings) -> int:
    directory = _directory_or_fail(settings)
    lifetime = settings.access_token_ttl + VERIFY_LEEWAY
    rows = [
        (key.kid, moment(key.created), "signs" if key.superseded is None else moment(key.superseded + lifetime))
        for key in keydir.read(directory, now=datetime.now(UTC), lifetime=lifetime)
    ]
    table(("KID", "CREATED", "VERIFIES UNTIL"), rows)
    return EXIT_OK


def _services_add(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings) as db:
        try:
            secret = services.register(db, args.name, now=datetime.now(UTC))
        except (ServiceExists, InvalidInput) as exc:
            raise CommandFailed(str(exc)) from None
    print(f"registered {args.name}; its secret, shown this once (HTTP Basic {args.name}:<secret>):")
    print(secret)
    return EXIT_OK


def _services_list(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings) as db:
        table(("NAME", "REGISTERED"), [(record.name, moment(record.created_at)) for record in services.listing(db)])
    return EXIT_OK


def _services_remove(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings) as db:
        if not services.remove(db, args.name):
            raise CommandFailed(f"no service named {args.name!r}")
    print(f"removed {args.name}")
    return EXIT_OK
