"""A pooled PostgreSQL connection is checked at checkout without a round trip, unless it looks closed.

SQLAlchemy's ``pool_pre_ping`` asks the server on every checkout: one round trip per request, a
wait in the worker thread and a fight for the GIL when the answer comes. A server that stops,
restarts or ends a backend closes its end of the socket (after a last error message), and the kernel
then reports the socket readable. An idle pooled connection has nothing else to read: it listens to
no channel, and the server sends nothing unasked. So at checkout the socket is polled without waiting:

- nothing to read: the connection is handed out as it is;
- something to read, or the connection is closed or broken: the server is pinged as before, and if
  that fails every pooled connection is dropped and a new one made, as a failed pre-ping did
  (``InvalidatePoolError``, a ``DisconnectionError`` raised in SQLAlchemy's documented checkout hook).

What the poll cannot see, a silent network partition or a host gone without a word, a pre-ping could
not tell either until its bounded wait ran out: the request's first statement now waits that bound
instead (persistence/bounded.py), and fails as the ping would have.
"""

from __future__ import annotations

import select
from typing import Any

from sqlalchemy import Engine, event, exc


def ping_only_when_closed(engine: Engine) -> None:
    """Check ``engine``'s connections at checkout as this module says (instead of ``pool_pre_ping``)."""

    @event.listens_for(engine, "checkout")
    def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if looks_open(dbapi_connection):
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception:  # noqa: BLE001 - whatever the ping met, the connection is not to be used
            alive = False
        if not alive:
            raise exc.InvalidatePoolError("the database closed the connection")


def looks_open(connection: Any) -> bool:
    """Whether a psycopg connection is open at both ends as far as this host can tell without asking."""
    if connection.closed or connection.broken:
        return False
    poll = select.poll()  # not select.select: a worker holding thousands of sockets has descriptors past 1024
    try:
        poll.register(connection.fileno(), select.POLLIN)
        return not poll.poll(0)
    except (OSError, ValueError):  # no descriptor any more
        return False
