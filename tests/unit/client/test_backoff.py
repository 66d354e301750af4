"""Full-jitter exponential backoff: 0.5 s doubling to a 30 s cap, driven by an injected random source and clock."""

from __future__ import annotations

import random

import pytest

from sessionflow.client import Backoff


class Clock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fixed(value: float) -> Backoff:
    """A backoff whose random source always answers ``value`` (in [0, 1))."""
    return Backoff(random=lambda: value, clock=Clock())


def test_the_ceiling_doubles_from_half_a_second_up_to_the_thirty_second_cap() -> None:
    """Attempt n may wait up to min(30, 0.5 * 2**n); the cap holds however far the count goes."""
    backoff = Backoff()
    assert [backoff.ceiling(n) for n in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert backoff.ceiling(10_000) == 30


def test_each_wait_is_the_random_fraction_of_its_ceiling_and_the_attempts_grow() -> None:
    """Full jitter: the wait is random() * ceiling, and every wait counts one more attempt."""
    backoff = fixed(0.5)
    delays = [backoff.next() for _ in range(8)]
    assert [d.attempt for d in delays] == list(range(8))
    assert [d.ceiling for d in delays] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert [d.seconds for d in delays] == [0.25, 0.5, 1, 2, 4, 8, 15, 15]
    assert backoff.attempt == 8


@pytest.mark.parametrize("seed", range(5))
def test_jitter_stays_within_zero_and_the_ceiling(seed: int) -> None:
    """Over many draws from a seeded source, every wait lies in [0, ceiling] and the draws actually spread."""
    source = random.Random(seed)
    backoff = Backoff(random=source.random, clock=Clock())
    delays = [backoff.next() for _ in range(200)]
    assert all(0 <= d.seconds <= d.ceiling for d in delays)
    capped = [d.seconds for d in delays if d.ceiling == 30]
    assert min(capped) < 5
    assert max(capped) > 25


def test_the_extremes_of_the_random_source_give_zero_and_almost_the_ceiling() -> None:
    """random() = 0 waits not at all; random() just under 1 waits just under the ceiling."""
    assert fixed(0.0).next().seconds == 0
    assert fixed(0.999999).next().seconds == pytest.approx(0.5, abs=1e-6)


def test_retry_after_is_a_floor_and_the_attempt_still_counts() -> None:
    """The wait is max(retry_after, jitter): the server's figure unless the backoff has grown past it."""
    backoff = fixed(0.99)
    first = backoff.next(retry_after=5)
    assert (first.seconds, first.retry_after, first.attempt) == (5, 5, 0)
    for _ in range(5):
        backoff.next()
    later = backoff.next(retry_after=5)
    assert later.attempt == 6
    assert later.seconds == pytest.approx(0.99 * 30)


def test_the_count_resets_once_a_connection_stayed_up_long_enough() -> None:
    """After connected(), the next wait starts from attempt 0 if stable_after seconds passed, else the count goes on."""
    clock = Clock()
    backoff = Backoff(random=lambda: 0.5, clock=clock, stable_after=5)
    for _ in range(4):
        backoff.next()
    backoff.connected()
    clock.now += 4.9  # dropped again before it settled: no reset
    assert backoff.next().attempt == 4
    backoff.connected()
    clock.now += 5
    assert backoff.next().attempt == 0


def test_stable_after_zero_resets_on_every_successful_connect() -> None:
    backoff = Backoff(random=lambda: 0.5, clock=Clock(), stable_after=0)
    backoff.next()
    backoff.next()
    backoff.connected()
    assert backoff.attempt == 0
    assert backoff.next().ceiling == 0.5


def test_reset_starts_over() -> None:
    backoff = fixed(0.5)
    backoff.next()
    backoff.next()
    backoff.reset()
    assert backoff.next().attempt == 0


def test_each_delay_is_due_from_the_clock_reading_when_it_was_decided() -> None:
    clock = Clock()
    backoff = Backoff(random=lambda: 0.5, clock=clock)
    clock.now = 250.0
    delay = backoff.next()
    assert (delay.start, delay.due) == (250.0, 250.25)


@pytest.mark.parametrize("arguments", [{"base": 0}, {"base": -1}, {"base": 2, "cap": 1}, {"stable_after": -1}], ids=str)
def test_nonsense_parameters_are_refused(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff needs"):
        Backoff(**arguments)
