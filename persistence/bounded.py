"""Bounded waits on PostgreSQL: no step of a conversation with the server waits longer than the timeout.

A partitioned network, or a proxy that keeps the link open but forwards nothing, never answers:
libpq would wait for ever on a statement, a commit or the pool's ping, and so would every
request touching the store. Each psycopg connection made here gives up on any single wait after
``timeout`` seconds and closes itself (its protocol state is unknown from then on); the error is an
``OperationalError``, which :class:`~sessionflow.persistence.database.Database` reports as
:class:`~sessionflow.persistence.errors.StoreUnavailable`. Connecting is bounded by libpq's own
``connect_timeout``, and the server also cancels a statement running longer (``statement_timeout``).
"""

from __future__ import annotations

import math
from typing import Any

import psycopg
from psycopg.errors import _WaitTimeout  # psycopg's own wait timeout: an OperationalError
from sqlalchemy import Engine, event

from sessionflow.persistence import onloop


class BoundedConnection(psycopg.Connection[Any]):
    """A psycopg connection whose every wait on the server ends within :attr:`wait_timeout` seconds."""

    wait_timeout: float | None = None

    def rollback(self) -> None:
        """Roll back, unless the connection is already gone: then there is nothing to roll back, and the
        pool's checkout check replaces it (persistence/liveness.py), instead of logging the failed reset as
        an error with a traceback."""
        if self.closed:
            return
        super().rollback()

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        """Wait for ``gen`` within the bound: in this thread, or awaited on the event loop inside
        :func:`sessionflow.persistence.onloop.run`."""
        bound = timeout if timeout is not None else self.wait_timeout
        try:
            if onloop.active():
                return onloop.wait(gen, self.pgconn.socket, interval=interval, timeout=bound)
            return super().wait(gen, interval=interval, timeout=bound)
        except _WaitTimeout:
            self.close()  # mid-conversation: nothing more can be read or sent on it safely
            raise psycopg.OperationalError(f"no answer from the database within {self.wait_timeout} s") from None


def bound_waits(engine: Engine, timeout: float | None) -> None:
    """Make every connection ``engine`` opens a :class:`BoundedConnection`: one that gives up on the server
    after ``timeout`` seconds at each step (None: waits as long as it takes), and that can wait on the event
    loop (persistence/onloop.py)."""

    @event.listens_for(engine, "do_connect")
    def connect(_dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> BoundedConnection:
        if timeout is not None:
            cparams.setdefault("connect_timeout", max(2, math.ceil(timeout)))  # libpq's minimum is 2 s
            cparams.setdefault("options", f"-c statement_timeout={round(timeout * 1000)}")
        if onloop.active():  # on the event loop a new connection is made in a worker thread: it waits for the server
            connection = onloop.in_thread(BoundedConnection.connect, *cargs, **cparams)
        else:
            connection = BoundedConnection.connect(*cargs, **cparams)
        connection.wait_timeout = timeout
        return connection
