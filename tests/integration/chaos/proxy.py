"""A small TCP proxy the chaos tests own, to make a database refuse connections or go silent.

``pass`` forwards both ways. ``refuse`` resets every open connection and stops listening, so new
connections are refused at once (a stopped database). ``partition`` keeps every connection open and
accepts new ones, but forwards nothing and drops what arrives (a network that lost its route: the
peer never answers, nothing says so). ``heal`` goes back to ``pass``.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading


class Proxy:
    """Listens on 127.0.0.1:``port`` and forwards to ``upstream`` as its mode allows."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.mode = "pass"
        self._listener = self._listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._lock = threading.Lock()
        self._stopped = False
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
        return listener

    def refuse(self) -> None:
        self.mode = "refuse"
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            pairs, self._pairs = self._pairs, set()
        for pair in pairs:
            for sock in pair:
                _reset(sock)

    def partition(self) -> None:
        self.mode = "partition"

    def heal(self) -> None:
        if self.mode == "refuse":
            self._listener = self._listen(self.port)
            threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()
        self.mode = "pass"

    def close(self) -> None:
        self._stopped = True
        self.refuse()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopped:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # refused or closed: a new listener takes over on heal
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _reset(client)
                continue
            pair = (client, server)
            with self._lock:
                self._pairs.add(pair)
            threading.Thread(target=self._pump, args=(pair,), daemon=True).start()

    def _pump(self, pair: tuple[socket.socket, socket.socket]) -> None:
        client, server = pair
        peer = {client: server, server: client}
        try:
            while True:
                readable, _, _ = select.select([client, server], [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    self.seen(pair, data, from_client=sock is client)
                    if self.mode == "pass":
                        peer[sock].sendall(data)
                    # partition: dropped, and nobody is told
        except (OSError, ValueError):
            # OSError: the peer went away. ValueError: refuse() closed a socket of this pair
            # while select() was about to look at it (its descriptor is already -1).
            return
        finally:
            with self._lock:
                self._pairs.discard(pair)
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.close()

    def seen(self, pair: tuple[socket.socket, socket.socket], data: bytes, *, from_client: bool) -> None:
        """``data`` arrived on ``pair`` from its client or its server (before it is forwarded); a subclass may
        look at it. Called on the pair's own thread, in the order the data arrived."""


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset, as a crashed server's host would answer."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
