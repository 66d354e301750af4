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
from pathlib import Path
from typing import Any

from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from sessionflow.api.errors import SettingsError
from sessionflow.lifecycle import CONNECTION, SESSION

PREFIX = "SESSIONFLOW_"
_IGNORED_PREFIXES = ("SESSIONFLOW_TEST_",)  # read by the test suite, not by the service
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}
_MAY_BE_ZERO = {"refresh_reuse_window"}  # 0 turns the grace off
FANOUTS = ("auto", "redis", "postgres", "local")

log = logging.getLogger("sessionflow.settings")


def setting(default: Any, doc: str, *, secret: bool = False) -> Any:
    """A settings field: its default, what it means (docs/operations.md is generated from ``doc``), and
    whether its value may be shown (a secret never reaches ``repr`` or the docs)."""
    return field(default=default, repr=not secret, metadata={"doc": doc, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """Every setting, each read from ``SESSIONFLOW_<NAME>``; the docs' settings table is generated from here."""

    database_url: str = setting(
        "sqlite:///sessionflow.db",
        "SQLite file (relative paths are from the working directory), or `postgresql://user@host/db` for "
        "several workers or hosts",
        secret=True,  # may carry a password
    )
    pool_size: int = setting(10, "database connections per worker")
    host: str = setting("127.0.0.1", "where `serve` listens")
    port: int = setting(8000, "the port `serve` listens on")
    workers: int = setting(1, "worker processes of `serve` (several need PostgreSQL)")
    log_level: str = setting("info", "`debug`, `info`, `warning` or `error`")
    sweep_interval: timedelta = setting(timedelta(seconds=5), "how often each worker fires timers that came due")
    session_login_window: timedelta = setting(
        SESSION.timer("login_window").default, "an anonymous or unfinished login session ends after this"
    )
    session_idle_timeout: timedelta = setting(
        SESSION.timer("idle").default, "a session nobody used for this long expires (refreshable)"
    )
    session_reconnect_grace: timedelta = setting(
        SESSION.timer("grace").default, "after the last WebSocket dropped, how long a reconnect keeps the session"
    )
    session_refresh_window: timedelta = setting(
        SESSION.timer("refresh_window").default, "how long an expired session can still be refreshed"
    )
    session_lifetime: timedelta = setting(
        SESSION.timer("lifetime").default, "absolute lifetime of a session, never extended"
    )
    ws_handshake_timeout: timedelta = setting(
        CONNECTION.timer("handshake").default, "a WebSocket must authenticate this soon after its handshake"
    )
    ws_heartbeat_interval: timedelta = setting(
        timedelta(seconds=25), "ping interval; three missed pongs drop a connection (4504)"
    )
    ws_resync_interval: timedelta = setting(
        timedelta(seconds=5),
        "how often each worker checks its live sessions for changes it was not told of (made by another process, "
        "or a lost notification): the bound on their delay to the sockets",
    )
    fanout: str = setting(
        "auto",
        "how committed transitions reach WebSockets held by other workers: `redis` (published after commit to "
        "`REDIS_URL`; for several workers or hosts), `postgres` (NOTIFY inside each transition's transaction: no "
        "other service, but it serialises commits; see Fan-out), `local` (this process only), or `auto`: "
        "`postgres` on PostgreSQL, `local` on SQLite",
    )
    redis_url: str = setting(
        "",
        "the Redis of `FANOUT=redis`, e.g. `redis://127.0.0.1:6379/0`",
        secret=True,  # may carry a password
    )
    redis_channel: str = setting(
        "sessionflow:transitions", "the Redis channel of `FANOUT=redis`; deployments sharing a Redis need their own"
    )
    ws_max_connections_per_session: int = setting(10, "live WebSockets one session may hold (4429 beyond)")
    ws_max_connections_per_address: int = setting(
        200, "live WebSockets per client address, counted in the store across every worker and host (4429)"
    )
    allowed_origins: tuple[str, ...] = setting(
        (),
        "comma-separated origins of the browser apps allowed to use this server: they may open WebSockets "
        "(a handshake from any other `Origin` closes 1008; one without `Origin`, not a browser, is allowed), "
        "call the API cross-origin with credentials (CORS) and refresh with the cookie",
    )
    jwt_algorithm: str = setting(
        "HS256",
        "`HS256` for a single service (its secret is never published), or `EdDSA` (the default for several "
        "services: public keys at `/api/auth/jwks`, rotated with `sessionflow keys rotate`) or `RS256`",
    )
    jwt_secret: str = setting(
        "", "HS256 secret, 32 bytes or more; unset: generated into `JWT_SECRET_FILE`", secret=True
    )
    jwt_secret_file: str = setting(
        "",
        "where the generated HS256 secret is kept (owner-only); default: `sessionflow.secret` beside the "
        "SQLite file, or `$XDG_CONFIG_HOME/sessionflow/` for PostgreSQL",
    )
    jwt_keys_dir: str = setting(
        "",
        "EdDSA or RS256 without key files: the directory of rotated keys (owner-only, generated on first start); "
        "default: `sessionflow.keys/` beside the SQLite file, or `$XDG_CONFIG_HOME/sessionflow/keys/`",
    )
    jwt_private_key_file: str = setting("", "PEM private key for EdDSA or RS256: one fixed key pair, not rotated")
    jwt_public_key_file: str = setting("", "PEM public key for EdDSA or RS256, with the private key file")
    jwt_issuer: str = setting("sessionflow", "`iss` of access tokens")
    jwt_audience: str = setting("sessionflow", "`aud` of access tokens")
    access_token_ttl: timedelta = setting(timedelta(minutes=15), "access token lifetime")
    refresh_token_ttl: timedelta = setting(timedelta(days=7), "refresh token lifetime")
    refresh_reuse_window: timedelta = setting(
        timedelta(seconds=10),
        "a refresh token presented again this soon after its rotation, while it is the current token's immediate "
        "predecessor (tabs racing, a retry after a lost response), gets credentials instead of revoking the session",
    )
    refresh_cookie_secure: bool = setting(
        True,
        "mark the refresh cookie `Secure`; `false` drops the flag for plain-http development on a loopback host "
        "only (browsers already accept `Secure` cookies from http://localhost)",
    )
    ws_ticket_ttl: timedelta = setting(timedelta(seconds=30), "WebSocket ticket lifetime")
    max_sessions_per_user: int = setting(10, "sessions a user may hold at once; login beyond is refused (409)")
    login_limit_per_user: int = setting(
        5,
        "failed logins per username from one client address per window; beyond, that address gets 429 for that "
        "username (the right password too), while the user can still log in from anywhere else",
    )
    login_limit_per_address: int = setting(
        20,
        "failed logins per client address per window, whatever the usernames (429 beyond); successful logins do "
        "not count, so many users behind one NAT address can log in",
    )
    login_limit_window: timedelta = setting(timedelta(minutes=1), "the window of the two limits above")
    login_limit_per_account: int = setting(
        100,
        "failed logins per username from all addresses per `LOGIN_ACCOUNT_WINDOW` (429 beyond): the ceiling on a "
        "guessing attack spread over many addresses (OWASP ASVS: at most 100 failures an hour)",
    )
    login_account_window: timedelta = setting(timedelta(hours=1), "the window of `LOGIN_LIMIT_PER_ACCOUNT`")
    oidc_issuer: str = setting("", "accept ID tokens from this identity provider at login (off while empty)")
    oidc_audience: str = setting("", "the `aud` ID tokens must carry")
    oidc_jwks_url: str = setting("", "where the provider publishes its signing keys")
    oidc_algorithms: tuple[str, ...] = setting(("RS256", "ES256", "EdDSA"), "algorithms accepted on ID tokens")
    oidc_username_claim: str = setting("preferred_username", "the ID-token claim a new user's name comes from")
    inspector: bool = setting(
        True,
        "serve the lifecycle inspector at `/api/inspector`: a page for admins only (every read and its live feed "
        "need an admin's token); `false` serves none of it",
    )
    forwarded_allow_ips: str = setting(
        "",
        "comma-separated addresses (or networks) of your reverse proxies, whose `X-Forwarded-For` gives the client "
        "address; empty: trust none, so no process can pick the address its rate limits count against",
    )
    database_timeout: timedelta = setting(
        timedelta(seconds=2),
        "longest wait for the database at each step (a pooled connection, connecting, one statement); beyond it "
        "a request answers 503 with `Retry-After` and a WebSocket closes 4503, within this plus the larger of this "
        "and 2 s, plus a second",
    )
    header_read_timeout: timedelta = setting(
        timedelta(seconds=10), "a client must send a request's complete head (or a WebSocket handshake) this soon"
    )
    header_limit: int = setting(
        32 * 1024,
        "bytes of request head (request line and headers) read, checked after each read of the socket (so a head "
        "up to about twice this may pass); beyond, 431 and the socket closed",
    )
    body_read_timeout: timedelta = setting(
        timedelta(seconds=10), "a client must send a request's complete body this soon after its head (408 beyond)"
    )

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
        try:
            backend = make_url(self.database_url).get_backend_name()
        except ArgumentError:
            raise SettingsError(f"{PREFIX}DATABASE_URL is not a database URL") from None
        if backend not in {"sqlite", "postgresql"}:
            raise SettingsError(
                f"{PREFIX}DATABASE_URL names a {backend!r} database; sessionflow runs on sqlite or postgresql"
            )
        if self.jwt_algorithm not in {"HS256", "EdDSA", "RS256"}:
            raise SettingsError(f"{PREFIX}JWT_ALGORITHM must be HS256, EdDSA or RS256, not {self.jwt_algorithm!r}")
        if bool(self.jwt_private_key_file) != bool(self.jwt_public_key_file):
            raise SettingsError(f"{PREFIX}JWT_PRIVATE_KEY_FILE and {PREFIX}JWT_PUBLIC_KEY_FILE go together")
        if self.jwt_algorithm == "HS256" and (self.jwt_private_key_file or self.jwt_keys_dir):
            raise SettingsError(
                f"{PREFIX}JWT_ALGORITHM=HS256 uses a secret, not key files: set {PREFIX}JWT_ALGORITHM=EdDSA"
            )
        if self.jwt_secret and len(self.jwt_secret.encode()) < 32:
            raise SettingsError(f"{PREFIX}JWT_SECRET must be at least 32 bytes")
        self._validate_fanout(backend)
        if self.oidc_issuer and not (self.oidc_audience and self.oidc_jwks_url):
            raise SettingsError(f"{PREFIX}OIDC_ISSUER needs {PREFIX}OIDC_AUDIENCE and {PREFIX}OIDC_JWKS_URL")
        for name in (
            "pool_size",
            "port",
            "workers",
            "max_sessions_per_user",
            "login_limit_per_user",
            "login_limit_per_address",
            "login_limit_per_account",
            "ws_max_connections_per_session",
            "ws_max_connections_per_address",
            "header_limit",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"{PREFIX}{name.upper()} must be at least 1")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, timedelta) and (value < timedelta(0) or (not value and f.name not in _MAY_BE_ZERO)):
                raise SettingsError(f"{PREFIX}{f.name.upper()} must be a positive duration")

    def _validate_fanout(self, backend: str) -> None:
        if self.fanout not in FANOUTS:
            raise SettingsError(f"{PREFIX}FANOUT must be one of {', '.join(FANOUTS)}, not {self.fanout!r}")
        if self.fanout == "redis" and not self.redis_url:
            raise SettingsError(f"{PREFIX}FANOUT=redis needs {PREFIX}REDIS_URL")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError(f"{PREFIX}REDIS_URL must start with redis://, rediss:// or unix://")
        if self.fanout == "postgres" and backend != "postgresql":
            raise SettingsError(f"{PREFIX}FANOUT=postgres needs a PostgreSQL {PREFIX}DATABASE_URL")

    def fanout_transport(self) -> str:
        """The fan-out in use: ``FANOUT``, with ``auto`` resolved by the database."""
        if self.fanout != "auto":
            return self.fanout
        return "postgres" if make_url(self.database_url).get_backend_name() == "postgresql" else "local"

    def database_shown(self) -> str:
        """The database as people should read it: a SQLite file's absolute path, never a password."""
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            return f"sqlite:///{Path(url.database).resolve()}"
        return url.render_as_string(hide_password=True)

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
                # A connection is dropped after three missed heartbeat intervals (docs/machines.md).
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
        if kind == "bool":
            return _BOOLEANS[raw.strip().lower()]
        if kind.startswith("tuple"):
            return tuple(item.strip() for item in raw.split(",") if item.strip())
    except KeyError:
        raise SettingsError(f"{key}={raw!r}: expected true or false") from None
    except ValueError as exc:
        raise SettingsError(f"{key}={raw!r}: {exc}") from None
    return raw


def parse_duration(raw: str) -> timedelta:
    """``"90"`` or ``"90s"``, ``"15m"``, ``"12h"``, ``"30d"`` as a timedelta."""
    match = _DURATION.match(raw)
    if match is None:
        raise ValueError("expected seconds or a number with a unit s, m, h or d (e.g. 90s, 15m, 30d)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
