"""Signing keys for access tokens, each with a ``kid`` that every token carries in its header.

Three sources, by ``SESSIONFLOW_JWT_ALGORITHM`` and the key-file settings:

- HS256 (one service): a shared secret, never published. Without a
  configured secret, one is generated on first start and kept in a file
  readable by its owner only, so restarts do not log everyone out:
  ``sessionflow.secret`` beside the SQLite database, or, for PostgreSQL, in
  ``$XDG_CONFIG_HOME/sessionflow/`` (``~/.config/sessionflow/``), never in
  whatever directory the server happened to start in.
  ``SESSIONFLOW_JWT_SECRET_FILE`` names another place.
- EdDSA or RS256 with ``SESSIONFLOW_JWT_PRIVATE_KEY_FILE`` and
  ``..._PUBLIC_KEY_FILE``: one fixed key pair; its kid is the RFC 7638 thumbprint.
- EdDSA or RS256 without key files (the default for several services): a
  directory of rotated keys (:mod:`sessionflow.api.auth.keydir`), generated on
  first start, ``sessionflow.keys/`` beside the SQLite database or
  ``$XDG_CONFIG_HOME/sessionflow/keys/``; ``SESSIONFLOW_JWT_KEYS_DIR`` names
  another. The keyring re-reads it when it changes, so ``sessionflow keys
  rotate`` takes effect with nothing restarted.

Public keys of the asymmetric algorithms are published at ``GET /api/auth/jwks``.
Hosts sharing a database must share the secret or the key directory.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jwt.algorithms import OKPAlgorithm, RSAAlgorithm
from sqlalchemy import make_url

from sessionflow.api.auth import keydir
from sessionflow.api.errors import SettingsError
from sessionflow.api.settings import Settings

log = logging.getLogger("sessionflow.keys")

SECRET_FILENAME = "sessionflow.secret"
KEYS_DIRNAME = "sessionflow.keys"
RECHECK_SECONDS = 1.0  # how often the keyring looks at its directory for a rotation
VERIFY_LEEWAY = timedelta(seconds=5)  # clock skew allowed on time claims; a retired key verifies this much longer

_ALGORITHMS: dict[str, Any] = {"RS256": RSAAlgorithm(RSAAlgorithm.SHA256), "EdDSA": OKPAlgorithm()}
_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}


@dataclass(frozen=True)
class Key:
    """One signing key. ``public_jwk`` is None for HS256, whose secret is never published."""

    kid: str
    algorithm: str
    signing_key: Any = field(repr=False)
    verifying_key: Any = field(repr=False)
    public_jwk: dict[str, str] | None = field(default=None, repr=False)
    valid_until: float | None = None  # epoch seconds after which a retired key no longer verifies


def _asymmetric(kid: str | None, algorithm: str, private_pem: bytes, public_pem: bytes | None) -> Key:
    implementation = _ALGORITHMS[algorithm]
    try:
        private = implementation.prepare_key(private_pem)
        public = implementation.prepare_key(public_pem) if public_pem is not None else private.public_key()
    except Exception as exc:  # noqa: BLE001 - any parse failure is a configuration error; the key is not shown
        raise SettingsError(f"the {algorithm} keys are not valid PEM keys: {type(exc).__name__}") from None
    jwk: dict[str, str] = implementation.to_jwk(public, as_dict=True)
    kid = kid or thumbprint(jwk)
    return Key(kid, algorithm, private, public, {**jwk, "kid": kid, "alg": algorithm, "use": "sig"})


def thumbprint(jwk: Mapping[str, str]) -> str:
    """The RFC 7638 thumbprint of a public JWK (SHA-256, base64url)."""
    members = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Keyring:
    """The keys tokens are signed and verified with: the newest signs, each verifies the tokens of its kid.

    ``load`` reads the keys (oldest first); it runs again when ``changed``
    says the source changed, looked at no more than once a second.
    """

    def __init__(self, load: Callable[[], list[Key]], changed: Callable[[], object] = lambda: None) -> None:
        self._load = load
        self._changed = changed
        self._lock = threading.Lock()
        self._stamp = changed()
        self._keys = self._checked(load())
        self._checked_at = time.monotonic()

    @property
    def algorithm(self) -> str:
        return self.current.algorithm

    @property
    def current(self) -> Key:
        self._recheck()
        return self._keys[-1]

    @property
    def signing_key(self) -> Any:
        return self.current.signing_key

    def find(self, kid: str | None) -> Key | None:
        """The key that verifies tokens of ``kid`` (a token without one, from before kids: the current key)."""
        self._recheck()
        if kid is None:
            return self._keys[-1]
        key = next((key for key in self._keys if key.kid == kid), None)
        if key is None:
            self._recheck(force=True)  # a rotation by another process this very second
            key = next((key for key in self._keys if key.kid == kid), None)
        if key is not None and key.valid_until is not None and key.valid_until < time.time():
            return None
        return key

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The published key set: public keys only, the signing key last."""
        self._recheck()
        return {"keys": [key.public_jwk for key in self._keys if key.public_jwk is not None]}

    def _recheck(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._checked_at < RECHECK_SECONDS:
            return
        with self._lock:
            self._checked_at = time.monotonic()
            stamp = self._changed()
            if stamp == self._stamp and not force:
                return
            try:
                self._keys = self._checked(self._load())
                self._stamp = stamp
            except SettingsError as exc:
                log.error("keeping the signing keys in use: cannot reload them (%s)", exc)

    @staticmethod
    def _checked(keys: list[Key]) -> list[Key]:
        if not keys:
            raise SettingsError("no signing key")
        return keys


def secret_path(settings: Settings, environ: Mapping[str, str] = os.environ) -> Path:
    """Where the generated HS256 secret lives (module docstring)."""
    if settings.jwt_secret_file:
        return Path(settings.jwt_secret_file)
    return _beside_database(settings, environ) / SECRET_FILENAME


def keys_dir(settings: Settings, environ: Mapping[str, str] = os.environ) -> Path:
    """Where the rotated asymmetric keys live (module docstring)."""
    if settings.jwt_keys_dir:
        return Path(settings.jwt_keys_dir)
    base = _beside_database(settings, environ)
    return base / (KEYS_DIRNAME if base.name != "sessionflow" else "keys")


def _beside_database(settings: Settings, environ: Mapping[str, str]) -> Path:
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent
    config = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "sessionflow"


PREFIX_HINT = "the keys come from SESSIONFLOW_JWT_SECRET or the key files"


def uses_key_directory(settings: Settings) -> bool:
    return settings.jwt_algorithm != "HS256" and not settings.jwt_private_key_file


def load_keys(settings: Settings) -> Keyring:
    if settings.jwt_algorithm == "HS256":
        secret = settings.jwt_secret.encode() if settings.jwt_secret else _secret_file(secret_path(settings))
        kid = "hs-" + hashlib.sha256(b"sessionflow key id\0" + secret).hexdigest()[:16]
        key = Key(kid, "HS256", secret, secret)
        return Keyring(lambda: [key])
    if not uses_key_directory(settings):
        try:
            private_pem = Path(settings.jwt_private_key_file).read_bytes()
            public_pem = Path(settings.jwt_public_key_file).read_bytes()
        except OSError as exc:
            raise SettingsError(f"cannot read the {settings.jwt_algorithm} key files: {exc.strerror}") from None
        fixed = _asymmetric(None, settings.jwt_algorithm, private_pem, public_pem)
        return Keyring(lambda: [fixed])
    directory = keys_dir(settings)
    lifetime = settings.access_token_ttl + VERIFY_LEEWAY
    if not keydir.read(directory, now=datetime.now(UTC), lifetime=lifetime):
        kid = keydir.add(directory, settings.jwt_algorithm, now=datetime.now(UTC))
        log.warning("generated a new %s signing key %s in %s (owner-only)", settings.jwt_algorithm, kid, directory)

    def load() -> list[Key]:
        keys = []
        for stored in keydir.read(directory, now=datetime.now(UTC), lifetime=lifetime):
            key = _asymmetric(stored.kid, settings.jwt_algorithm, stored.private_pem, None)
            if stored.superseded is not None:
                key = dataclasses.replace(key, valid_until=(stored.superseded + lifetime).timestamp())
            keys.append(key)
        return keys

    def changed() -> object:
        try:
            return directory.stat().st_mtime_ns
        except OSError:
            return None

    return Keyring(load, changed)


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
