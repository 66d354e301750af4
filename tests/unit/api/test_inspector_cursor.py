"""The feed's cursor: ids in order pass at once; a gap is waited for, then passed over."""

from __future__ import annotations

from sessionflow.api.inspector.feed import Cursor


def test_contiguous_ids_are_all_taken() -> None:
    cursor = Cursor(10, gap_wait=1.0)
    assert cursor.take([11, 12, 13], now=0.0) == 3
    assert cursor.after == 13


def test_a_gap_holds_back_what_follows_it_until_it_fills() -> None:
    """Id 12 committed before id 11 (PostgreSQL): 12 waits, then both pass in order."""
    cursor = Cursor(10, gap_wait=1.0)
    assert cursor.take([12], now=0.0) == 0
    assert cursor.after == 10
    assert cursor.take([11, 12], now=0.5) == 2
    assert cursor.after == 12


def test_a_gap_that_never_fills_is_passed_over_after_the_wait() -> None:
    cursor = Cursor(10, gap_wait=1.0)
    assert cursor.take([12, 13], now=0.0) == 0
    assert cursor.take([12, 13], now=0.99) == 0
    assert cursor.take([12, 13], now=1.0) == 2
    assert cursor.after == 13


def test_without_a_wait_gaps_pass_at_once() -> None:
    """SQLite commits in id order: a gap there is a deleted row, never one still to come."""
    cursor = Cursor(0, gap_wait=0.0)
    assert cursor.take([5, 9], now=0.0) == 2
    assert cursor.after == 9
