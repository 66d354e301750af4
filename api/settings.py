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

from sessionflow.lifecycle import CONNECTION, SESSION

PREFIX = "SESSIONFLOW_"
_IGNORED_PREFIXES = ("SESSIONFLOW_TEST_",)  # read by the test suite, not by the service
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

log = logging.getLogger("sessionflow.settings")


class SettingsError(ValueError):
    """A ``SESSIONFLOW_*`` variable has a value that cannot be used; the message names it."""


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default="sqlite:///sessionflow.db", repr=False)  # may carry a password
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
    ws_max_connections_per_session: int = 10
    ws_max_connections_per_address: int = 200
    allowed_origins: tuple[str, ...] = field(default=())
    # Tokens (DESIGN 5)
    jwt_algorithm: str = "HS256"
    jwt_secret: str = field(default="", repr=False)  # HS256; empty: read or generate the secret file
    jwt_secret_file: str = ""  # default: sessionflow.secret beside the SQLite file, else in the working directory
    jwt_private_key_file: str = ""  # EdDSA / RS256, PEM
    jwt_public_key_file: str = ""
    jwt_issuer: str = "sessionflow"
    jwt_audience: str = "sessionflow"
    access_token_ttl: timedelta = timedelta(minutes=15)
    refresh_token_ttl: timedelta = timedelta(days=7)
    ws_ticket_ttl: timedelta = timedelta(seconds=30)
    max_sessions_per_user: int = 10
    # Login rate limits: attempts per window, per username and per client address, shared by all workers
    login_limit_per_user: int = 5
    login_limit_per_address: int = 20
    login_limit_window: timedelta = timedelta(minutes=1)
    # External identity provider (OIDC ID tokens); disabled while oidc_issuer is empty
    oidc_issuer: str = ""
    oidc_audience: str = ""
    oidc_jwks_url: str = ""
    oidc_algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    oidc_username_claim: str = "preferred_username"
    # Comma-separated proxy addresses whose X-Forwarded-For is trusted (uvicorn --forwarded-allow-ips)
    forwarded_allow_ips: str = "127.0.0.1"

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
        if self.jwt_algorithm not in {"HS256", "EdDSA", "RS256"}:
            raise SettingsError(f"{PREFIX}JWT_ALGORITHM must be HS256, EdDSA or RS256, not {self.jwt_algorithm!r}")
        if self.jwt_algorithm != "HS256" and not (self.jwt_private_key_file and self.jwt_public_key_file):
            raise SettingsError(
                f"{PREFIX}JWT_ALGORITHM={self.jwt_algorithm} needs "
                f"{PREFIX}JWT_PRIVATE_KEY_FILE and {PREFIX}JWT_PUBLIC_KEY_FILE"
            )
        if self.jwt_secret and len(self.jwt_secret.encode()) < 32:
            raise SettingsError(f"{PREFIX}JWT_SECRET must be at least 32 bytes")
        if self.oidc_issuer and not (self.oidc_audience and self.oidc_jwks_url):
            raise SettingsError(f"{PREFIX}OIDC_ISSUER needs {PREFIX}OIDC_AUDIENCE and {PREFIX}OIDC_JWKS_URL")
        for name in (
            "pool_size",
            "port",
            "workers",
            "max_sessions_per_user",
            "login_limit_per_user",
            "login_limit_per_address",
            "ws_max_connections_per_session",
            "ws_max_connections_per_address",
        ):
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
