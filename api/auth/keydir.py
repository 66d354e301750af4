"""A directory of rotated asymmetric signing keys: ``<kid>.pem``, owner-only, newest signs.

A key id is the UTC time the key was made and a random suffix
(``20261130T211200Z-3f9a1c``), so the names sort by age and every key knows
when the next one superseded it. A superseded key keeps verifying for one
access-token lifetime (plus the verification leeway) after that moment: the
tokens it signed are expired by then. ``sessionflow keys rotate`` adds a key
and deletes the keys past that point; running servers notice the directory
changed and sign with the new key, with nothing restarted (docs/services.md).
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from sessionflow.api.errors import SettingsError

_KID = re.compile(r"^(\d{8}T\d{6}Z)-[0-9a-f]{6}$")
_STAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class StoredKey:
    kid: str
    private_pem: bytes
    created: datetime
    superseded: datetime | None  # when the next key was made; None for the newest, which signs


def new_private_key(algorithm: str) -> PrivateKeyTypes:
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise SettingsError(f"cannot generate keys for {algorithm}")


def read(directory: Path, *, now: datetime, lifetime: timedelta) -> list[StoredKey]:
    """The keys of ``directory`` that still verify, oldest first (the last one signs)."""
    keys = _all(directory)
    return [key for key in keys if key.superseded is None or key.superseded + lifetime > now]


def add(directory: Path, algorithm: str, *, now: datetime) -> str:
    """Write a new key (owner-only, atomically), which from now on signs; its kid."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    newest = max((key.created for key in _all(directory)), default=None)
    if newest is not None and now <= newest:
        now = newest + timedelta(seconds=1)  # names must sort by age, even for two rotations in one second
    kid = f"{now.strftime(_STAMP)}-{secrets.token_hex(3)}"
    pem = new_private_key(algorithm).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    partial = directory / f".{kid}.tmp"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    partial.rename(directory / f"{kid}.pem")
    return kid


def prune(directory: Path, *, now: datetime, lifetime: timedelta) -> list[str]:
    """Delete the keys whose tokens have all expired; their kids."""
    alive = {key.kid for key in read(directory, now=now, lifetime=lifetime)}
    gone = [key.kid for key in _all(directory) if key.kid not in alive]
    for kid in gone:
        (directory / f"{kid}.pem").unlink(missing_ok=True)
    return gone


def _all(directory: Path) -> list[StoredKey]:
    try:
        paths = sorted(path for path in directory.iterdir() if _KID.match(path.stem) and path.suffix == ".pem")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise SettingsError(f"cannot read the key directory {directory}: {exc.strerror}") from None
    stamps = [datetime.strptime(_KID.match(path.stem).group(1), _STAMP).replace(tzinfo=UTC) for path in paths]  # type: ignore[union-attr]
    keys = []
    for index, path in enumerate(paths):
        try:
            pem = path.read_bytes()
        except FileNotFoundError:  # pruned by a rotation running now
            continue
        superseded = stamps[index + 1] if index + 1 < len(stamps) else None
        keys.append(StoredKey(path.stem, pem, stamps[index], superseded))
    return keys
