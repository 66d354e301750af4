"""The rotated key directory: the newest key signs, a superseded one verifies for one token lifetime more."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sessionflow.api.auth import keydir

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LIFETIME = timedelta(minutes=15)


def test_a_superseded_key_verifies_for_one_lifetime_then_rotation_deletes_it(tmp_path: Path) -> None:
    first = keydir.add(tmp_path, "EdDSA", now=T0)
    second = keydir.add(tmp_path, "EdDSA", now=T0 + timedelta(hours=1))
    during = keydir.read(tmp_path, now=T0 + timedelta(hours=1, minutes=14), lifetime=LIFETIME)
    assert [key.kid for key in during] == [first, second]
    assert during[0].superseded == T0 + timedelta(hours=1)
    assert during[1].superseded is None
    after = T0 + timedelta(hours=1, minutes=16)
    assert [key.kid for key in keydir.read(tmp_path, now=after, lifetime=LIFETIME)] == [second]
    assert keydir.prune(tmp_path, now=after, lifetime=LIFETIME) == [first]
    assert sorted(path.stem for path in tmp_path.iterdir()) == [second]


def test_two_rotations_in_one_second_still_sort_by_age(tmp_path: Path) -> None:
    kids = [keydir.add(tmp_path, "EdDSA", now=T0) for _ in range(3)]
    assert sorted(kids) == kids
    assert [key.kid for key in keydir.read(tmp_path, now=T0, lifetime=LIFETIME)][-1] == kids[-1]
