"""Errors the reference client raises.

::

    ClientError     an operation the client machine refuses now, or that failed; ``stopped`` when the client stopped
    Refused         an HTTP refusal no retry fixes (internal: the client stops with it)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sessionflow.client.records import Stopped
    from sessionflow.lifecycle import EventRefused


class ClientError(Exception):
    """An operation the machine refuses now, or that failed; ``stopped`` is set when the client stopped."""

    def __init__(self, message: str, *, stopped: Stopped | None = None, refused: EventRefused | None = None) -> None:
        super().__init__(message)
        self.stopped = stopped
        self.refused = refused


class Refused(Exception):
    """An HTTP refusal no retry fixes."""

    def __init__(self, stopped: Stopped) -> None:
        super().__init__(stopped.reason)
        self.stopped = stopped
