"""Signing keys for access tokens.

HS256 by default. Without a configured secret, one is generated on first
start and kept in a file readable by its owner only, so restarts do not log
everyone out: ``sessionflow.secret`` beside the SQLite database, or, for
PostgreSQL, in ``$XDG_CONFIG_HOME/sessionflow/`` (``~/.config/sessionflow/``),
never in whatever directory the server happened to start in.
``SESSIONFLOW_JWT_SECRET_FILE`` names another place. Several hosts sharing a
PostgreSQL store must share the secret: set ``SESSIONFLOW_JWT_SECRET`` or
use EdDSA/RS256 key files.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from sqlalchemy import make_url

from sessionflow.api.errors import SettingsError
from sessionflow.api.settings import Settings

log = logging.getLogger("sessionflow.keys")

SECRET_FILENAME = "sessionflow.secret"


@dataclass(frozen=True)
class SigningKeys:
    algorithm: str
    signing_key: Any = field(repr=False)
    verifying_key: Any = field(repr=False)


def secret_path(settings: Settings, environ: Mapping[str, str] = os.environ) -> Path:
    """Where the generated HS256 secret lives (module docstring)."""
    if settings.jwt_secret_file:
        return Path(settings.jwt_secret_file)
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent / SECRET_FILENAME
    config = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "sessionflow" / SECRET_FILENAME


def load_keys(settings: Settings) -> SigningKeys:
    if settings.jwt_algorithm == "HS256":
        secret = settings.jwt_secret.encode() if settings.jwt_secret else _secret_file(secret_path(settings))
        return SigningKeys("HS256", secret, secret)
    try:
        private_pem = Path(settings.jwt_private_key_file).read_bytes()
        public_pem = Path(settings.jwt_public_key_file).read_bytes()
    except OSError as exc:
        raise SettingsError(f"cannot read the {settings.jwt_algorithm} key files: {exc.strerror}") from None
    algorithm: Any = {
        "RS256": RSAAlgorithm(RSAAlgorithm.SHA256),
        "EdDSA": OKPAlgorithm(),
        "ES256": ECAlgorithm(ECAlgorithm.SHA256),
    }[settings.jwt_algorithm]
    try:
        return SigningKeys(
            settings.jwt_algorithm, algorithm.prepare_key(private_pem), algorithm.prepare_key(public_pem)
        )
    except Exception as exc:  # noqa: BLE001 - any parse failure is a configuration error; the key is not shown
        raise SettingsError(
            f"the {settings.jwt_algorithm} key files are not valid PEM keys: {type(exc).__name__}"
        ) from None


def _secret_file(path: Path) -> bytes:
    """Read the secret file, creating it (owner-only, atomically) if it does not exist yet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("signing secret %s is readable by others (mode %o); run chmod 600", path, stat.S_IMODE(mode))
        secret = path.read_bytes().strip()
        if len(secret) < 32:
            raise SettingsError(f"signing secret file {path} holds fewer than 32 bytes") from None
        return secret
    secret = secrets.token_urlsafe(48).encode()
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret + b"\n")
    log.warning(
        "generated a new access-token signing secret in %s (owner-only). Keep it to survive restarts; "
        "hosts sharing a database must share it (or set SESSIONFLOW_JWT_SECRET)",
        path,
    )
    return secret
