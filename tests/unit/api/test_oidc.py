"""ID token checks, username derivation and settings, with the JWKS held in memory (no network, no database)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, cast

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from sessionflow.api.auth.oidc import (
    LEEWAY,
    IdentityProviderUnavailable,
    IdTokenVerifier,
    derive_username,
    from_settings,
    pinned_algorithms,
    username_candidates,
)
from sessionflow.api.errors import InvalidCredentials, SettingsError
from sessionflow.api.settings import Settings
from sessionflow.lifecycle import ManualClock
from sessionflow.persistence.database import Database
from sessionflow.persistence.users import MAX_USERNAME, validate_username

ISSUER = "https://login.example.test:8443/realms/main"
AUDIENCE = "sessionflow-web"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
JWKS = {
    "keys": [
        {**RSAAlgorithm.to_jwk(RSA_KEY.public_key(), as_dict=True), "kid": "rsa"},
        {**ECAlgorithm.to_jwk(EC_KEY.public_key(), as_dict=True), "kid": "ec"},
        {**json.loads(OKPAlgorithm.to_jwk(ED_KEY.public_key())), "kid": "ed"},
    ]
}
NO_DB = cast(Database, None)  # from_settings only stores the database; these tests never reach it


class MemoryJWKS(jwt.PyJWKClient):
    """pyjwt's client with its key-set cache, fetching from memory; an exception as payload is raised."""

    def __init__(self, payload: object) -> None:
        super().__init__("https://login.example.test/jwks", cooldown_duration=0)
        self.payload = payload
        self.fetches = 0

    def fetch_data(self) -> Any:
        self.fetches += 1
        if isinstance(self.payload, BaseException):
            raise self.payload
        return self.payload


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def verifier(clock: ManualClock, payload: object = JWKS) -> IdTokenVerifier:
    return IdTokenVerifier(
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks=MemoryJWKS(payload),
        algorithms=("RS256", "ES256", "EdDSA"),
        username_claim="preferred_username",
        clock=clock,
    )


def token(clock: ManualClock, *, alg: str = "RS256", **changes: Any) -> str:
    now = clock.now().timestamp()
    claims: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": "s-1", "iat": int(now), "exp": int(now) + 300}
    claims.update(changes)
    claims = {name: value for name, value in claims.items() if value is not None}
    keys: dict[str, tuple[Any, str]] = {"RS256": (RSA_KEY, "rsa"), "ES256": (EC_KEY, "ec"), "EdDSA": (ED_KEY, "ed")}
    key, kid = keys[alg]
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def refused(check: IdTokenVerifier, id_token: str) -> str:
    with pytest.raises(InvalidCredentials) as raised:
        check.verify(id_token)
    assert raised.value.code == "id_token_invalid"
    assert len(id_token) < 8 or id_token not in raised.value.detail
    return raised.value.detail


# -- verification -------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_each_pinned_algorithm_verifies_with_its_published_key(clock: ManualClock, alg: str) -> None:
    """RSA, P-256 and Ed25519 keys from the JWKS each verify tokens of their algorithm."""
    claims = verifier(clock).verify(token(clock, alg=alg, preferred_username="bob"))
    assert (claims.issuer, claims.subject, claims.username) == (ISSUER, "s-1", "bob")


def test_expiry_is_checked_against_the_injected_clock_with_a_small_leeway(clock: ManualClock) -> None:
    """A token expires by the service's clock, give or take the leeway, whatever the wall clock says."""
    check = verifier(clock)
    id_token = token(clock)
    clock.advance(timedelta(seconds=300) + LEEWAY - timedelta(seconds=1))
    assert check.verify(id_token).subject == "s-1"
    clock.advance(timedelta(seconds=1))
    assert "expired" in refused(check, id_token)


def test_a_token_from_slightly_ahead_of_our_clock_is_accepted(clock: ManualClock) -> None:
    """iat and nbf up to the leeway in the future are clock skew, beyond it they are refused."""
    now = int(clock.now().timestamp())
    skew = int(LEEWAY.total_seconds())
    check = verifier(clock)
    assert check.verify(token(clock, iat=now + skew, nbf=now + skew)).subject == "s-1"
    assert "not valid yet" in refused(check, token(clock, iat=now + skew + 1))
    assert "not valid yet" in refused(check, token(clock, nbf=now + skew + 1))


def test_fractional_times_are_accepted_and_non_numbers_refused(clock: ManualClock) -> None:
    """Time claims are JSON numbers; booleans and strings are not."""
    now = clock.now().timestamp()
    check = verifier(clock)
    assert check.verify(token(clock, iat=now + 0.5, exp=now + 60.25)).subject == "s-1"
    assert "malformed time" in refused(check, token(clock, iat=True))
    assert "malformed time" in refused(check, token(clock, nbf="soon"))


@pytest.mark.parametrize("missing", ["iss", "aud", "sub", "exp", "iat"])
def test_every_required_claim_is_required(clock: ManualClock, missing: str) -> None:
    changes: dict[str, Any] = {missing: None}
    refused(verifier(clock), token(clock, **changes))


def test_a_token_signed_with_the_key_of_another_kid_is_refused(clock: ManualClock) -> None:
    """The key is the one the header names, and its algorithm is bound to it: an ES256 kid cannot carry RS256."""
    header = {"kid": "ec"}
    assert "not allowed" in refused(
        verifier(clock), jwt.encode({"sub": "s"}, RSA_KEY, algorithm="RS256", headers=header)
    )


def test_a_known_key_set_is_fetched_once_and_unknown_kids_refetch_it(clock: ManualClock) -> None:
    """The key set is cached; a kid not in it makes the client fetch once more before refusing."""
    check = verifier(clock)
    jwks = cast(MemoryJWKS, check._jwks)
    check.verify(token(clock))
    check.verify(token(clock, alg="ES256"))
    assert jwks.fetches == 1
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode({"sub": "s"}, other, algorithm="RS256", headers={"kid": "rotated"})
    assert "does not publish" in refused(check, forged)
    assert jwks.fetches == 2


@pytest.mark.parametrize(
    "payload",
    [
        ConnectionRefusedError(),
        jwt.PyJWKClientConnectionError("Fail to fetch data from the url"),
        json.JSONDecodeError("Expecting value", "<html>", 0),
        ["not", "an", "object"],
        {"keys": []},
        {"keys": [{"kty": "RSA", "kid": "broken"}]},
        {"keys": [{**JWKS["keys"][0], "use": "enc"}]},
    ],
    ids=["refused", "connection", "not json", "not an object", "no keys", "unusable key", "no signing key"],
)
def test_a_jwks_that_cannot_be_fetched_or_used_means_the_provider_is_unavailable(
    clock: ManualClock, payload: object
) -> None:
    """Provider trouble is IdentityProviderUnavailable (503), never a refused token nor an unmapped error."""
    with pytest.raises(IdentityProviderUnavailable) as raised:
        verifier(clock, payload).verify(token(clock))
    assert raised.value.code == "identity_provider_unavailable"


@pytest.mark.parametrize("id_token", ["", "x", "a.b", "a.b.c", "a.b.c.d", "." * 2, "e30.e30.e30" + "A" * 20000])
def test_malformed_tokens_are_refused_before_any_fetch(clock: ManualClock, id_token: str) -> None:
    check = verifier(clock, ConnectionRefusedError())
    refused(check, id_token)
    assert cast(MemoryJWKS, check._jwks).fetches == 0


def test_disallowed_algorithms_are_refused_before_any_fetch(clock: ManualClock) -> None:
    check = verifier(clock, ConnectionRefusedError())
    for forged in (
        jwt.encode({"sub": "s"}, "", algorithm="none", headers={"kid": "rsa"}),
        jwt.encode({"sub": "s"}, "k" * 32, algorithm="HS256", headers={"kid": "rsa"}),
        jwt.encode({"sub": "s"}, RSA_KEY, algorithm="PS256", headers={"kid": "rsa"}),
    ):
        assert "not allowed" in refused(check, forged)
    assert cast(MemoryJWKS, check._jwks).fetches == 0


# -- usernames ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"sub": "s-1", "preferred_username": "jane"}, "jane"),
        ({"sub": "s-1", "preferred_username": "Jane Doe"}, "Jane_Doe"),
        ({"sub": "s-1", "preferred_username": " jane\n"}, "jane"),
        ({"sub": "s-1", "preferred_username": "a\x00b"}, "a_b"),
        ({"sub": "s-1", "preferred_username": "x" * 400}, "x" * MAX_USERNAME),
        ({"sub": "s-1"}, "s-1@login.example.test"),
        ({"sub": "s-1", "preferred_username": ""}, "s-1@login.example.test"),
        ({"sub": "s-1", "preferred_username": "   "}, "s-1@login.example.test"),
        ({"sub": "s-1", "preferred_username": 42}, "s-1@login.example.test"),
        ({"sub": "s-1", "preferred_username": ["jane"]}, "s-1@login.example.test"),
        ({"sub": "a b" * 100}, ("a_b" * 100)[:MAX_USERNAME]),
    ],
)
def test_username_comes_from_the_claim_else_subject_at_issuer_host(claims: dict[str, Any], expected: str) -> None:
    """The configured claim, cleaned, if it yields a name; otherwise sub@issuer-host. Always a valid username."""
    name = derive_username(claims, "preferred_username", ISSUER)
    assert name == expected
    assert validate_username(name) == name


def test_username_claim_is_configurable() -> None:
    assert derive_username({"sub": "s", "email": "j@x.test", "preferred_username": "p"}, "email", ISSUER) == "j@x.test"


def test_issuer_without_a_url_host_falls_back_to_the_issuer_itself() -> None:
    assert derive_username({"sub": "s"}, "preferred_username", "corp-idp") == "s@corp-idp"


def test_username_candidates_add_a_suffix_and_stay_valid() -> None:
    """After the name itself come -2 ... -9, then random suffixes, all within the length limit."""
    names = list(username_candidates("x" * MAX_USERNAME))
    assert names[0] == "x" * MAX_USERNAME
    assert names[1].endswith("-2")
    assert names[8].endswith("-9")
    assert len(set(names)) == len(names) == 12
    assert all(validate_username(name) == name for name in names)
    assert list(username_candidates("bob"))[:3] == ["bob", "bob-2", "bob-3"]


# -- settings -----------------------------------------------------------------------------


def oidc_settings(**overrides: Any) -> Settings:
    values = {"oidc_issuer": ISSUER, "oidc_audience": AUDIENCE, "oidc_jwks_url": "https://login.example.test/jwks"}
    return Settings.from_env({}, **(values | overrides))


def test_no_issuer_means_no_verifier(clock: ManualClock) -> None:
    assert from_settings(Settings.from_env({}), NO_DB, clock) is None


def test_from_settings_builds_a_verifier_with_a_timeout_and_the_key_set_cache(clock: ManualClock) -> None:
    oidc = from_settings(oidc_settings(), NO_DB, clock)
    assert oidc is not None
    assert oidc.tokens.algorithms == ("RS256", "ES256", "EdDSA")
    jwks = oidc.tokens._jwks
    assert 0 < jwks.timeout <= 10
    assert jwks.jwk_set_cache is not None


@pytest.mark.parametrize("algorithms", [("none",), ("HS256",), ("RS256", "HS512"), ("RS256", "bogus"), ()])
def test_symmetric_and_unknown_algorithms_are_a_settings_error(clock: ManualClock, algorithms: tuple[str, ...]) -> None:
    """Only asymmetric signatures: with HS* the provider's public key would be the secret."""
    with pytest.raises(SettingsError, match="OIDC_ALGORITHMS"):
        from_settings(oidc_settings(oidc_algorithms=algorithms), NO_DB, clock)
    with pytest.raises(SettingsError):
        pinned_algorithms(algorithms)


def test_a_jwks_url_that_is_not_http_is_a_settings_error(clock: ManualClock) -> None:
    with pytest.raises(SettingsError, match="OIDC_JWKS_URL"):
        from_settings(oidc_settings(oidc_jwks_url="file:///etc/passwd"), NO_DB, clock)
