"""What the commands share: finding and opening the database as the server does, and printing."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from sqlalchemy import make_url

from sessionflow.api.errors import CommandFailed
from sessionflow.api.settings import PREFIX, Settings
from sessionflow.persistence import Database, migrate


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return Path(parsed.database).resolve()
    return None


@contextmanager
def database(
    settings: Settings, *, create: bool = False, require_schema: bool = True, bounded: bool = False
) -> Iterator[Database]:
    """The database the server would use, from the same settings; said on stderr, then disposed of.

    With ``bounded``, every wait on it is bounded by ``SESSIONFLOW_DATABASE_TIMEOUT``, as in the server.
    Unless ``create``, a SQLite file that does not exist is an error instead
    of a new empty database: the server's database is elsewhere. Unless told
    otherwise, a schema that is not at head is an error too.
    """
    path = _sqlite_file(settings.database_url)
    print(f"sessionflow: database {settings.database_shown()}", file=sys.stderr)
    if path is not None and not create and not path.exists():
        raise CommandFailed(
            f"no database at {path}. The server uses {PREFIX}DATABASE_URL (default: sessionflow.db in the "
            "directory it was started from): run this there or set the variable; `sessionflow migrate` creates one"
        )
    timeout = settings.database_timeout.total_seconds() if bounded else None  # migrations take what they need
    db = Database.from_url(settings.database_url, pool_size=min(settings.pool_size, 2), timeout=timeout)
    try:
        if require_schema and not migrate.is_at_head(db):
            raise CommandFailed("the database schema is not at the current version; run `sessionflow migrate` first")
        yield db
    finally:
        db.dispose()


def moment(value: datetime | None) -> str:
    """An instant as people read it: UTC, to the second (``2026-11-30 17:04:05Z``), or ``-``."""
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else "-"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print ``rows`` under ``header`` in aligned columns (the last one is not padded)."""
    cells = [[str(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        print("  ".join([*padded, row[-1]]))
