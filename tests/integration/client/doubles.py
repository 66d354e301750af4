"""Clients that break the protocol on purpose, to see the server's close codes and the client's reaction."""

from __future__ import annotations

from typing import Any

from sessionflow.client import Client


class SilentClient(Client):
    """Never answers a ping: the server drops it with 4504 after three heartbeat intervals."""

    def _pong(self) -> dict[str, Any] | None:
        return None


class MalformedClient(Client):
    """Answers pings with a message type the protocol does not know: 4400."""

    def _pong(self) -> dict[str, Any] | None:
        return {"type": "pnog"}


class OversizedClient(Client):
    """Answers pings with more than 16 KiB of text: 1009."""

    def _pong(self) -> dict[str, Any] | None:
        return {"type": "pong", "padding": "x" * 20_000}
