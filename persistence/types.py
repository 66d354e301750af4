"""Column types shared by the models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class UTCDateTime(TypeDecorator[datetime]):
    """An instant: ``timestamptz`` on PostgreSQL, integer microseconds since the epoch on SQLite.

    SQLite has no date type; its text timestamps compare correctly only when
    every writer uses one format and zone, and converting them costs more than
    the rest of a transition. An integer is exact, orders correctly and is
    cheap. Values always come back timezone-aware in UTC; naive datetimes are
    refused on the way in rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: sessionflow stores instants, pass an aware datetime")
        if dialect.name == "sqlite":
            return (value - _EPOCH) // _MICROSECOND
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, int):
            return _EPOCH + timedelta(microseconds=value)
        assert isinstance(value, datetime)
        return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
