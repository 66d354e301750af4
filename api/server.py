"""Running the app under uvicorn, with a shutdown that closes WebSockets as docs/protocol.md says.

uvicorn closes open WebSockets with 1012 as soon as it starts shutting down,
before the application's lifespan hears of it. This server first lets each
app close its connections with 1001 ("server going away", reconnect with
backoff) and record them, then shuts down as usual.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess, multiprocess

from sessionflow.api import app as app_module

_QUERY = re.compile(r"(/[^\s?\"]*)\?[^\s\"]*")


class RedactQueryStrings(logging.Filter):
    """uvicorn logs WebSocket handshakes with their query string, where tickets travel: cut it off."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(_QUERY.sub(r"\1?…", a) if isinstance(a, str) else a for a in record.args)
        record.msg = _QUERY.sub(r"\1?…", str(record.msg))
        return True


class Server(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logging.getLogger(name).addFilter(RedactQueryStrings())
        await super().startup(sockets=sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for drain in list(app_module.DRAINS):
            with contextlib.suppress(Exception):  # shutting down regardless
                await drain()
        await super().shutdown(sockets=sockets)


class _WorkerProcess(multiprocess.Process):
    """A uvicorn worker process that runs :class:`Server` instead of uvicorn's own."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = Server(config=self.config)
        return self._server


def run(**options: Any) -> None:
    """Like ``uvicorn.run``, with :class:`Server`, in one process or several workers."""
    config = uvicorn.Config(**options)
    if config.workers > 1:
        # uvicorn's supervisor builds each worker's server itself; point it at ours.
        multiprocess.Process = _WorkerProcess  # type: ignore[misc]
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        Server(config=config).run()
