"""The ``sessionflow`` command line.

    sessionflow migrate [REVISION]            bring the schema to REVISION (default head)
    sessionflow serve [--host] [--port] [--workers]   migrate, then serve
    sessionflow users create|list|enable|disable       manage users
    sessionflow sessions list|show|history    inspect sessions
    sessionflow sweep [--every SECONDS]       fire due timers once, or forever
    sessionflow keys rotate|list               rotate the EdDSA/RS256 signing keys, with no downtime
    sessionflow services add|list|remove       services that may introspect tokens
    sessionflow diagrams [--check]            regenerate diagrams/ and the generated blocks of the docs
    sessionflow demo [--check]                a server and the reference client, end to end

Settings come from ``SESSIONFLOW_*`` environment variables, the server's
as well (README, Settings). Every command that opens the database says which
one on stderr. Expected failures are one line on stderr and exit 1 (2 for
usage and configuration errors); a traceback is a bug.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from sessionflow.api.cli import admin, ops, services
from sessionflow.api.errors import CommandFailed, DiagramError, SettingsError
from sessionflow.api.settings import Settings

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
    except (CommandFailed, DiagramError) as exc:
        print(f"sessionflow: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except SQLAlchemyError as exc:
        # Parameters are hidden by the engine; the error class and the driver's first line are enough here.
        first = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        print(f"sessionflow: database error: {type(exc).__name__}: {first}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sessionflow", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    version = importlib.metadata.version("sessionflow")
    parser.add_argument("--version", action="version", version=f"sessionflow {version}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    ops.add_commands(commands)
    admin.add_commands(commands)
    services.add_commands(commands)
    return parser
