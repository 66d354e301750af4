"""Registered services authenticate with HTTP Basic: their name and the secret they were given.

The stored hash of each name is kept in memory for a few seconds, so an
introspection costs no extra query; a removed service is refused within
that time.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time

from sessionflow.api.errors import ServiceUnauthorized
from sessionflow.persistence import Database, services

CACHE_SECONDS = 5.0
MAX_CACHED = 1024


class ServiceAuth:
    def __init__(self, db: Database, *, cache_seconds: float = CACHE_SECONDS) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self._hashes: dict[str, tuple[str | None, float]] = {}
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None) -> str:
        """The name of the registered service whose credentials ``authorization`` carries."""
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic" or not encoded.strip() or len(encoded) > 512:
            raise ServiceUnauthorized("send a registered service's credentials: Authorization: Basic name:secret")
        try:
            name, colon, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise ServiceUnauthorized("the Basic credentials cannot be decoded") from None
        stored = self._stored_hash(name) if colon else None
        if stored is None or not services.secret_matches(stored, secret):
            raise ServiceUnauthorized("unknown service or wrong secret")
        return name

    def _stored_hash(self, name: str) -> str | None:
        now = time.monotonic()
        cached = self._hashes.get(name)
        if cached is not None and now - cached[1] < self.cache_seconds:
            return cached[0]
        stored = services.secret_hash(self.db, name) if len(name) <= 64 else None
        with self._lock:
            if len(self._hashes) >= MAX_CACHED:
                self._hashes.clear()
            self._hashes[name] = (stored, now)
        return stored
