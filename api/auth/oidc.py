"""Login with an ID token from an external OpenID Connect identity provider.

An ID token is accepted only if it is signed by a key in the configured
issuer's JWKS with one of the pinned asymmetric algorithms (never ``none``,
never ``HS*``), names the configured issuer and audience, carries ``iss``,
``aud``, ``sub``, ``exp`` and ``iat``, and is current by the service's clock.
The user is found by ``(issuer, sub)``, never by name; the first login creates
one with no password hash, so it can only ever log in through the provider.

::

    InvalidCredentials (401, api.errors)        ``id_token_invalid``: any token we cannot accept;
                                                ``login_failed``: a disabled user (as password logins)
    IdentityProviderUnavailable (503)           the JWKS could not be fetched or read; retry later

Out of scope: ``nonce`` (the client runs the authorization flow, so the
server holds no login state to bind it to), ``azp`` for multi-audience
tokens, ``at_hash``, discovery documents, and mapping claims to admin rights.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import jwt

from sessionflow.api.errors import IdentityProviderUnavailable, InvalidCredentials, SettingsError
from sessionflow.api.settings import PREFIX, Settings
from sessionflow.lifecycle import Clock
from sessionflow.persistence import Database, UserRecord, users

log = logging.getLogger("sessionflow.oidc")

INVALID = "id_token_invalid"
REQUIRED = ("iss", "aud", "sub", "exp", "iat")
# Asymmetric only: with HS* the "secret" would be the provider's public key, which anyone can read.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES256K", "ES384", "ES512", "EdDSA"}
)
MAX_TOKEN_LENGTH = 16 * 1024
MAX_SUBJECT = 255  # users.oidc_subject and users.oidc_issuer are VARCHAR(255)
# The provider's clock is not ours: allow a little more skew than for our own access tokens.
LEEWAY = timedelta(seconds=30)
JWKS_TIMEOUT = 5.0  # seconds; a login waits at most this long for the provider
JWKS_LIFESPAN = 300.0  # seconds the fetched key set is reused before it is fetched again
USERNAME_ATTEMPTS = 12


@dataclass(frozen=True, slots=True)
class IdTokenClaims:
    """What a verified ID token tells us: who the provider says this is."""

    issuer: str
    subject: str
    username: str  # a valid, not necessarily free, username derived from the token


class IdTokenVerifier:
    """Checks ID tokens; knows nothing of users. The JWKS is fetched lazily and cached by ``jwks``."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks: jwt.PyJWKClient,
        algorithms: Sequence[str],
        username_claim: str,
        clock: Clock,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.algorithms = tuple(pinned_algorithms(algorithms))
        self.username_claim = username_claim
        self._jwks = jwks
        self._clock = clock

    def verify(self, id_token: str) -> IdTokenClaims:
        """The token's identity, or :class:`InvalidCredentials` (``id_token_invalid``) saying why not."""
        if not isinstance(id_token, str) or not 0 < len(id_token) <= MAX_TOKEN_LENGTH or id_token.count(".") != 2:
            raise _invalid("is malformed")
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.InvalidTokenError:
            raise _invalid("cannot be decoded") from None
        if header.get("alg") not in self.algorithms:
            raise _invalid("uses an algorithm that is not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _invalid("names no signing key")
        key = self._signing_key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key,
                algorithms=list(self.algorithms),
                audience=self.audience,
                issuer=self.issuer,
                # Time claims are checked below against the service's clock, not the wall clock.
                options={"require": list(REQUIRED), "verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except jwt.InvalidTokenError as exc:
            raise _invalid(_reason(exc)) from None
        self._check_times(claims)
        subject = claims["sub"]
        if not isinstance(subject, str) or not 1 <= len(subject) <= MAX_SUBJECT:
            raise _invalid("has a malformed subject")
        return IdTokenClaims(self.issuer, subject, derive_username(claims, self.username_claim, self.issuer))

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._clock.now().timestamp()
        leeway = LEEWAY.total_seconds()
        times = {name: claims[name] for name in ("exp", "iat", "nbf") if name in claims}
        if not all(isinstance(value, int | float) and not isinstance(value, bool) for value in times.values()):
            raise _invalid("has malformed time claims")
        if times["exp"] <= now - leeway:
            raise _invalid("has expired")
        if times["iat"] > now + leeway or times.get("nbf", now) > now + leeway:
            raise _invalid("is not valid yet")

    def _signing_key(self, kid: str) -> jwt.PyJWK:
        """The provider's key ``kid``. A key not in the cached set forces one refetch (rate limited by pyjwt)."""
        try:
            keys = self._jwks.get_signing_keys()
        except (jwt.PyJWTError, ValueError, OSError) as exc:  # unreachable, timed out, not JSON, no usable keys
            log.warning("cannot fetch the identity provider's JWKS: %s", type(exc).__name__)
            raise IdentityProviderUnavailable from None
        key = self._jwks.match_kid(keys, kid)
        if key is not None:
            return key
        try:
            return self._jwks.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            log.warning("cannot refetch the identity provider's JWKS: %s", type(exc).__name__)
            raise IdentityProviderUnavailable from None
        except jwt.PyJWKClientError:
            raise _invalid("is signed by a key the identity provider does not publish") from None
        except (jwt.PyJWTError, ValueError, OSError) as exc:
            log.warning("cannot read the identity provider's JWKS: %s", type(exc).__name__)
            raise IdentityProviderUnavailable from None


class OidcVerifier:
    """Turns an ID token into the user it belongs to, creating that user on first login."""

    def __init__(self, tokens: IdTokenVerifier, db: Database, clock: Clock) -> None:
        self.tokens = tokens
        self._db = db
        self._clock = clock

    def user_for(self, id_token: str) -> UserRecord:
        """The enabled user for this token; :class:`InvalidCredentials` if there is none to log in."""
        claims = self.tokens.verify(id_token)
        user, created = users.find_or_create_oidc_user(
            self._db, claims.issuer, claims.subject, username_candidates(claims.username), now=self._clock.now()
        )
        if created:
            log.info("created user %s for a first login through %s", user.username, claims.issuer)
        if not user.enabled:
            raise InvalidCredentials("login failed", code="login_failed")
        return user


def from_settings(settings: Settings, db: Database, clock: Clock) -> OidcVerifier | None:
    """The verifier the settings describe, or ``None`` when no issuer is configured."""
    if not settings.oidc_issuer:
        return None
    try:
        jwks = jwt.PyJWKClient(settings.oidc_jwks_url, cache_jwk_set=True, lifespan=JWKS_LIFESPAN, timeout=JWKS_TIMEOUT)
    except jwt.PyJWKClientError as exc:
        raise SettingsError(f"{PREFIX}OIDC_JWKS_URL: {exc}") from None
    url = urlsplit(settings.oidc_jwks_url)
    if url.scheme == "http" and url.hostname not in {"localhost", "127.0.0.1", "::1"}:
        log.warning("%sOIDC_JWKS_URL uses plain http: whoever can alter that traffic can forge logins", PREFIX)
    tokens = IdTokenVerifier(
        issuer=settings.oidc_issuer,
        audience=settings.oidc_audience,
        jwks=jwks,
        algorithms=settings.oidc_algorithms,
        username_claim=settings.oidc_username_claim,
        clock=clock,
    )
    return OidcVerifier(tokens, db, clock)


def pinned_algorithms(algorithms: Sequence[str]) -> list[str]:
    """``algorithms`` if every one is an asymmetric signature algorithm; :class:`SettingsError` otherwise."""
    refused = [alg for alg in algorithms if alg not in ASYMMETRIC_ALGORITHMS]
    if refused or not algorithms:
        allowed = ", ".join(sorted(ASYMMETRIC_ALGORITHMS))
        refusing = ", ".join(refused) or "an empty list"
        raise SettingsError(f"{PREFIX}OIDC_ALGORITHMS must be some of {allowed}; refused: {refusing}")
    return list(algorithms)


def derive_username(claims: Mapping[str, Any], claim: str, issuer: str) -> str:
    """The configured claim if it makes a username, else ``sub@issuer-host``; always a valid username.

    Spaces and control characters become ``_`` and the result is cut to the maximum length.
    Whether the name is free is decided at insert time (:func:`username_candidates`).
    """
    wanted = claims.get(claim)
    if isinstance(wanted, str) and (name := _clean(wanted)):
        return name
    host = urlsplit(issuer).hostname or issuer
    return _clean(f"{claims.get('sub', '')}@{host}") or "oidc-user"


def username_candidates(base: str, attempts: int = USERNAME_ATTEMPTS) -> Iterator[str]:
    """``base``, then ``base-2`` ... ``base-9``, then ``base-<random>``: names to try until one is free."""
    yield base
    for n in range(2, attempts + 1):
        suffix = f"-{n}" if n < 10 else f"-{secrets.token_hex(4)}"
        yield base[: users.MAX_USERNAME - len(suffix)] + suffix


def _clean(name: str) -> str:
    cleaned = "".join(ch if ch.isprintable() and not ch.isspace() else "_" for ch in name.strip())
    return cleaned[: users.MAX_USERNAME]


def _invalid(why: str) -> InvalidCredentials:
    return InvalidCredentials(f"the ID token {why}", code=INVALID)


def _reason(exc: jwt.InvalidTokenError) -> str:
    """A short, token-free reason (pyjwt's messages never include the token itself)."""
    return {
        jwt.InvalidSignatureError: "has a bad signature",
        jwt.InvalidAudienceError: "is for another audience",
        jwt.InvalidIssuerError: "is from another issuer",
        jwt.MissingRequiredClaimError: "lacks a required claim",
        jwt.InvalidAlgorithmError: "uses an algorithm that is not allowed",
        jwt.DecodeError: "cannot be decoded",
    }.get(type(exc), "is not valid")
