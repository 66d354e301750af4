"""Typed settings read from ``SESSIONFLOW_*`` environment variables.

Every setting has a default that works on a fresh machine: the database is a
SQLite file, ``sessionflow.db``, in the working directory. Durations accept a
number of seconds or a number with a unit: ``90``, ``90s``, ``15m``, ``12h``, ``30d``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from lifecycle import CONNECTION, SESSION

PREFIX = "SESSIONFLOW_"
_IGNORED_PREFIXES = ("SESSIONFLOW_TEST_",)  # read by the test suite, not by the service
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

log = logging.getLogger("sessionflow.settings")


class SettingsError(ValueError):
    """A ``SESSIONFLOW_*`` variable has a value that cannot be used; the message names it."""


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///sessionflow.db"
    pool_size: int = 10
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_level: str = "info"
    sweep_interval: timedelta = timedelta(seconds=5)
    session_login_window: timedelta = SESSION.timer("login_window").default
    session_idle_timeout: timedelta = SESSION.timer("idle").default
    session_reconnect_grace: timedelta = SESSION.timer("grace").default
    session_refresh_window: timedelta = SESSION.timer("refresh_window").default
    session_lifetime: timedelta = SESSION.timer("lifetime").default
    ws_handshake_timeout: timedelta = CONNECTION.timer("handshake").default
    ws_heartbeat_interval: timedelta = timedelta(seconds=25)
    allowed_origins: tuple[str, ...] = field(default=())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``environ`` (default: the process environment), then ``overrides``."""
        environ = os.environ if environ is None else environ
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in environ.items():
            if not key.startswith(PREFIX) or key.startswith(_IGNORED_PREFIXES):
                continue
            name = key[len(PREFIX) :].lower()
            if name not in fields:
                log.warning("ignoring unknown setting %s", key)
                continue
            values[name] = _parse(key, raw, fields[name].type)
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        for name in ("pool_size", "port", "workers"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{PREFIX}{name.upper()} must be at least 1")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, timedelta) and value <= timedelta(0):
                raise SettingsError(f"{PREFIX}{f.name.upper()} must be a positive duration")

    def durations(self) -> dict[str, dict[str, timedelta]]:
        """Timer durations for the transition service, keyed by machine and timer name."""
        return {
            SESSION.name: {
                "login_window": self.session_login_window,
                "idle": self.session_idle_timeout,
                "grace": self.session_reconnect_grace,
                "refresh_window": self.session_refresh_window,
                "lifetime": self.session_lifetime,
            },
            CONNECTION.name: {
                "handshake": self.ws_handshake_timeout,
                # A connection is dropped after three missed heartbeat intervals (DESIGN 3).
                "heartbeat": 3 * self.ws_heartbeat_interval,
            },
        }


def _parse(key: str, raw: str, kind: Any) -> Any:
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    try:
        if kind == "int":
            return int(raw)
        if kind == "timedelta":
            return parse_duration(raw)
        if kind.startswith("tuple"):
            return tuple(item.strip() for item in raw.split(",") if item.strip())
    except ValueError as exc:
        raise SettingsError(f"{key}={raw!r}: {exc}") from None
    return raw


def parse_duration(raw: str) -> timedelta:
    """``"90"`` or ``"90s"``, ``"15m"``, ``"12h"``, ``"30d"`` as a timedelta."""
    match = _DURATION.match(raw)
    if match is None:
        raise ValueError("expected seconds or a number with a unit s, m, h or d (e.g. 90s, 15m, 30d)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
