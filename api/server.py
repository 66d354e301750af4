"""Running the app under granian, with the read limits and the shutdown docs/protocol.md and docs/operations.md state.

granian was chosen by measurement (``bench/stack.py``, docs/performance.md): the fastest of the stacks
tried, and the one that bounds what a client may hold. It reads request headers within
``header_read_timeout`` and at most ``header_limit`` bytes (a slow or oversized client gets its socket
closed, or 431); the application bounds the body and the WebSocket handshake (api/limits.py).

On shutdown each worker first lets its app close its WebSockets with 1001 ("server going away",
reconnect with backoff) and record them, then stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import granian._signals
from granian.constants import HTTPModes, Interfaces, Loops
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server import Server
from litestar.types import ASGIApp

from sessionflow.api import app as app_module

APP = "sessionflow.api.server:worker_app"
DRAIN_TIMEOUT = 10.0  # seconds the apps of a worker get to close and record their WebSockets

log = logging.getLogger("sessionflow.server")


@dataclass(frozen=True)
class Limits:
    """What the server itself enforces on every connection, before the application sees a request."""

    header_read_timeout: float  # seconds to send the complete request head
    header_limit: int  # bytes of request head (request line and headers)


def worker_app() -> ASGIApp:
    """The factory each worker calls: the app from the environment, drained before the worker stops."""
    _drain_before_stopping()
    return app_module.app_from_env()


def _drain_before_stopping() -> None:
    """On SIGINT or SIGTERM, close this worker's WebSockets with 1001 before granian stops serving.

    granian drops open WebSockets without a close frame as soon as a worker is told to stop, and runs
    the lifespan shutdown only afterwards. Its worker registers its stop signal through
    ``granian._signals.set_loop_signals`` after loading this factory; the handler installed here runs
    the drains first (bounded by :data:`DRAIN_TIMEOUT`), then passes the signal on.
    """
    original = granian._signals.set_loop_signals

    def set_loop_signals(loop: asyncio.AbstractEventLoop) -> Any:
        stop = original(loop)  # type: ignore[no-untyped-call]  # granian's internals are untyped

        async def drain_then_stop() -> None:
            drains = [drain() for drain in list(app_module.DRAINS)]
            with contextlib.suppress(Exception):  # stopping regardless
                await asyncio.wait_for(asyncio.gather(*drains, return_exceptions=True), DRAIN_TIMEOUT)
            stop.set()

        def on_signal(*_: Any) -> None:
            loop.create_task(drain_then_stop())

        for signal in granian._signals._get_signals():  # type: ignore[no-untyped-call]
            loop.add_signal_handler(signal, on_signal, signal, None)
        return stop

    granian._signals.set_loop_signals = set_loop_signals


def run(*, host: str, port: int, workers: int, log_level: str, limits: Limits, target: str = APP) -> None:
    """Serve ``target`` (a factory) on ``host:port`` with ``workers`` processes until SIGINT or SIGTERM."""
    server = Server(
        target,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=workers,
        loop=Loops.uvloop,
        # HTTP/1 only (WebSockets need it; TLS and HTTP/2 end at the proxy). granian's "auto" mode first waits
        # for a client's opening bytes to tell HTTP/1 from HTTP/2, with no time limit: a client that connects
        # and sends nothing would hold its socket for ever. HTTP/1 alone bounds that wait by the head timeout.
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(
            header_read_timeout=max(1, round(limits.header_read_timeout * 1000)),
            # granian counts the whole read buffer; hyper refuses less than 8 KiB.
            max_buffer_size=max(8192, limits.header_limit),
        ),
        log_level=LogLevels(log_level.lower()),
        log_access=False,  # our access log (method, path, status) is written by the app
        workers_kill_timeout=30,
    )
    server.serve()
