"""Exponential backoff with full jitter (docs/protocol.md): 0.5 s doubling to a 30 s cap, never a give-up count.

Pure: the random source and the clock are injected, nothing sleeps here. The
client asks for a delay each time it has to wait and reports each successful
connect; tests drive both with a fixed random source and a manual clock.
"""

from __future__ import annotations

import random as _random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Delay:
    """One wait: ``seconds`` from the clock reading ``start`` until ``due``; ``ceiling`` bounded the jitter."""

    attempt: int
    ceiling: float
    seconds: float
    start: float
    retry_after: float | None = None

    @property
    def due(self) -> float:
        return self.start + self.seconds


@dataclass
class Backoff:
    """Full-jitter backoff: the n-th wait (from 0) is ``uniform(0, min(cap, base * 2**n))``.

    ``retry_after`` from the server is a floor: the wait is
    ``max(retry_after, jitter)``, and the attempt still counts, so repeated
    refusals keep growing past it. The attempt count goes back to 0 once a
    connection has stayed up for ``stable_after`` seconds: a server that
    accepts and drops at once cannot make the client hammer it at the
    shortest delay. ``stable_after=0`` resets on every successful connect.
    """

    base: float = 0.5
    cap: float = 30.0
    stable_after: float = 5.0
    random: Callable[[], float] = field(default=_random.random, repr=False)  # uniform in [0, 1)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    attempt: int = 0
    _connected_at: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base or self.stable_after < 0:
            raise ValueError("backoff needs 0 < base <= cap and stable_after >= 0")

    def ceiling(self, attempt: int) -> float:
        """The largest wait of ``attempt`` (0-based): ``min(cap, base * 2**attempt)``."""
        if attempt >= 64:  # 2**64 * base is far past any cap; avoid building huge integers
            return self.cap
        return min(self.cap, self.base * float(2**attempt))

    def next(self, retry_after: float | None = None) -> Delay:
        """The next wait; counts one more attempt."""
        now = self.clock()
        if self._connected_at is not None:
            if now - self._connected_at >= self.stable_after:
                self.attempt = 0
            self._connected_at = None
        ceiling = self.ceiling(self.attempt)
        seconds = self.random() * ceiling
        if retry_after is not None:
            seconds = max(seconds, retry_after)
        delay = Delay(self.attempt, ceiling, seconds, now, retry_after)
        self.attempt += 1
        return delay

    def connected(self) -> None:
        """A connection was established; the count resets if it lasts ``stable_after`` (see :meth:`next`)."""
        self._connected_at = self.clock()
        if self.stable_after == 0:
            self.attempt = 0

    def reset(self) -> None:
        self.attempt = 0
        self._connected_at = None
