"""Bad access tokens as data: every way a bearer credential can be wrong, and the code it must earn.

Each :class:`BadToken` builds its token from a :class:`TokenContext` (the app's
signing keys, the claims of a valid token of a live session, and helpers that
put other sessions into the states a case needs). The HTTP test presents each
on ``GET /api/session/{id}`` and expects ``401`` with the declared problem
``code``; a WebSocket test can present the same tokens on the handshake and map
the code through :data:`EXPECTED_CLOSE_CODE` (docs/protocol.md).

Nothing here is a fixture: the table is importable by any test module.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sessionflow.api.auth.flows import Issued
from sessionflow.api.auth.keys import load_keys
from sessionflow.api.context import AppContext
from sessionflow.lifecycle import Actor
from sessionflow.persistence import users

# What a WebSocket handshake presenting the same credential should be closed with (docs/protocol.md).
EXPECTED_CLOSE_CODE: dict[str, int] = {
    "credentials_missing": 4401,
    "token_malformed": 4401,
    "token_invalid": 4401,
    "token_superseded": 4401,
    "session_unknown": 4401,
    "token_expired": 4419,
    "session_expired": 4419,
    "session_revoked": 4403,
    "session_closed": 4410,
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _with_header(tc: TokenContext, header: dict[str, Any]) -> str:
    """The context's token under another header (so its signature no longer matches)."""
    return _b64(_json(header)) + "." + tc.token.partition(".")[2]


def rsa_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_rsa_keys(directory: Path, key: rsa.RSAPrivateKey | None = None) -> tuple[Path, Path]:
    """PEM files (private, public) of ``key`` (a new RSA key by default) in ``directory``."""
    key = key or rsa_private_key()
    private = directory / "jwt-private.pem"
    public = directory / "jwt-public.pem"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


@dataclass
class TokenContext:
    """A live app and a valid access token of one of its sessions, to derive bad tokens from."""

    app: AppContext
    user_id: uuid.UUID  # owner of ``session_id``
    other_user_id: uuid.UUID  # another existing user
    issued: Issued  # the valid credentials of ``session_id``

    @property
    def session_id(self) -> uuid.UUID:
        return self.issued.session_id

    @property
    def token(self) -> str:
        return self.issued.access_token

    @property
    def claims(self) -> dict[str, Any]:
        """The valid token's claims (a fresh copy each time: cases modify it)."""
        claims: dict[str, Any] = jwt.decode(self.token, options={"verify_signature": False})
        return claims

    @property
    def now(self) -> int:
        return int(self.app.service.clock.now().timestamp())

    def sign(
        self,
        claims: dict[str, Any],
        *,
        key: Any = None,
        algorithm: str | None = None,
        headers: dict[str, Any] | None = None,
    ) -> str:
        """Sign ``claims`` with the app's own key and algorithm, naming its kid, unless told otherwise."""
        current = load_keys(self.app.settings).current
        return jwt.encode(
            claims,
            current.signing_key if key is None else key,
            algorithm=algorithm or current.algorithm,
            headers={"kid": current.kid, **(headers or {})},
        )

    def with_claims(self, **changes: Any) -> str:
        """The valid token's claims with ``changes`` (a value of ``None`` removes the claim), properly signed."""
        claims = self.claims
        for name, value in changes.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return self.sign(claims)

    # -- other sessions, in the states the cases need -----------------------------------

    def new_session(self) -> Issued:
        user = users.by_id(self.app.db, self.user_id)
        assert user is not None
        return self.app.flows.login_user(user)

    def revoked_session_token(self) -> str:
        issued = self.new_session()
        self.app.service.fire("session", issued.session_id, "revoke", actor=Actor.ADMIN, detail={"reason": "test"})
        return issued.access_token

    def logged_out_session_token(self) -> str:
        issued = self.new_session()
        self.app.service.fire("session", issued.session_id, "logout", actor=Actor.CLIENT)
        return issued.access_token

    def expired_session_token(self) -> str:
        """A still-valid token of a session that expired from inactivity."""
        issued = self.new_session()
        self.app.service.fire("session", issued.session_id, "expire", actor=Actor.TIMER)
        return issued.access_token

    def superseded_token(self) -> str:
        """The access token from before a refresh."""
        issued = self.new_session()
        self.app.flows.refresh(issued.refresh_token)
        return issued.access_token

    def upgraded_anonymous_token(self) -> str:
        """An anonymous token whose session has since been logged in."""
        session_id, anonymous = self.app.flows.create_anonymous(request_id=None)
        user = users.by_id(self.app.db, self.user_id)
        assert user is not None
        self.app.flows.login_user(user, session_id=session_id, anonymous_token=anonymous)
        return anonymous


@dataclass(frozen=True)
class BadToken:
    """One bad credential: how to make it, the problem ``code`` it must earn, and how it is presented.

    ``scheme`` is the Authorization scheme (``None``: no header at all).
    ``algorithm`` is the app's signing algorithm the case needs (HS256 or RS256).
    """

    name: str
    code: str
    make: Callable[[TokenContext], str]
    scheme: str | None = "Bearer"
    algorithm: str = "HS256"

    def authorization(self, token: str) -> str | None:
        return None if self.scheme is None else f"{self.scheme} {token}"

    @property
    def close_code(self) -> int:
        return EXPECTED_CLOSE_CODE[self.code]


def _alg_none(tc: TokenContext) -> str:
    return jwt.encode(tc.claims, "", algorithm="none")


def _hs256_with_public_key(tc: TokenContext) -> str:
    """Algorithm confusion: an HS256 MAC keyed with the server's RS256 public key (which anyone may hold)."""
    public_pem = Path(tc.app.settings.jwt_public_key_file).read_bytes()
    signing_input = f"{_b64(_json({'alg': 'HS256', 'typ': 'JWT'}))}.{_b64(_json(tc.claims))}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _tampered(tc: TokenContext) -> str:
    """The valid signature over a payload edited afterwards (sub changed to another user)."""
    header, _, signature = tc.token.split(".")
    claims = tc.claims | {"sub": str(tc.other_user_id)}
    return f"{header}.{_b64(_json(claims))}.{signature}"


def _anonymous_claims_as_access(tc: TokenContext) -> str:
    session_id, _ = tc.app.flows.create_anonymous(request_id=None)
    return tc.with_claims(sid=str(session_id), sub="anonymous", gen=0)


BAD_TOKENS: tuple[BadToken, ...] = (
    # -- not a usable credential at all
    BadToken("no_authorization_header", "credentials_missing", lambda tc: "", scheme=None),
    BadToken("empty_bearer", "credentials_missing", lambda tc: ""),
    BadToken("wrong_scheme", "credentials_missing", lambda tc: tc.token, scheme="Basic"),
    BadToken("garbage", "token_malformed", lambda tc: "not-a-token"),
    BadToken("oversize", "token_malformed", lambda tc: tc.token + "A" * 5000),
    BadToken("four_segments", "token_malformed", lambda tc: tc.token + ".AAAA"),
    BadToken("refresh_token_as_bearer", "token_malformed", lambda tc: tc.issued.refresh_token),
    # -- forged or not ours
    BadToken("alg_none", "token_invalid", _alg_none),
    BadToken("header_not_base64url", "token_invalid", lambda tc: "eyJ!!!!." + tc.token.partition(".")[2]),
    BadToken("header_not_json", "token_invalid", lambda tc: _b64(b"{kid:") + "." + tc.token.partition(".")[2]),
    BadToken("header_not_an_object", "token_invalid", lambda tc: _b64(b"[]") + "." + tc.token.partition(".")[2]),
    BadToken("header_kid_not_a_string", "token_invalid", lambda tc: _with_header(tc, {"alg": "HS256", "kid": 7})),
    BadToken("hs256_keyed_with_rs256_public_key", "token_invalid", _hs256_with_public_key, algorithm="RS256"),
    BadToken(
        "rs256_signed_with_another_key",
        "token_invalid",
        lambda tc: tc.sign(tc.claims, key=rsa_private_key()),
        algorithm="RS256",
    ),
    BadToken("hs256_wrong_key", "token_invalid", lambda tc: tc.sign(tc.claims, key=b"another-secret-" + b"x" * 32)),
    BadToken("hs512_with_the_right_key", "token_invalid", lambda tc: tc.sign(tc.claims, algorithm="HS512")),
    BadToken(
        "rs256_to_an_hs256_server",
        "token_invalid",
        lambda tc: tc.sign(tc.claims, key=rsa_private_key(), algorithm="RS256"),
    ),
    BadToken("tampered_payload", "token_invalid", _tampered),
    # -- signed by us, but the claims are wrong
    BadToken(
        "expired", "token_expired", lambda tc: tc.with_claims(iat=tc.now - 3600, nbf=tc.now - 3600, exp=tc.now - 60)
    ),
    BadToken("nbf_in_the_future", "token_invalid", lambda tc: tc.with_claims(nbf=tc.now + 3600, exp=tc.now + 7200)),
    BadToken("iat_in_the_future", "token_invalid", lambda tc: tc.with_claims(iat=tc.now + 3600, exp=tc.now + 7200)),
    BadToken("wrong_audience", "token_invalid", lambda tc: tc.with_claims(aud="someone-else")),
    BadToken("wrong_issuer", "token_invalid", lambda tc: tc.with_claims(iss="https://evil.example")),
    BadToken("wrong_typ", "token_invalid", lambda tc: tc.with_claims(typ="refresh")),
    BadToken("missing_sid", "token_invalid", lambda tc: tc.with_claims(sid=None)),
    BadToken("missing_exp", "token_invalid", lambda tc: tc.with_claims(exp=None)),
    BadToken("missing_gen", "token_invalid", lambda tc: tc.with_claims(gen=None)),
    BadToken("gen_not_an_integer", "token_invalid", lambda tc: tc.with_claims(gen="1")),
    BadToken("gen_a_boolean", "token_invalid", lambda tc: tc.with_claims(gen=True)),
    BadToken("sid_not_a_uuid", "token_invalid", lambda tc: tc.with_claims(sid="../../etc/passwd")),
    BadToken("sub_of_another_user", "token_invalid", lambda tc: tc.with_claims(sub=str(tc.other_user_id))),
    BadToken("anonymous_session_with_access_typ", "token_invalid", _anonymous_claims_as_access),
    # -- well formed and signed, but the session says no
    BadToken("unknown_sid", "session_unknown", lambda tc: tc.with_claims(sid=str(uuid.uuid4()))),
    BadToken("revoked_session", "session_revoked", lambda tc: tc.revoked_session_token()),
    BadToken("logged_out_session", "session_closed", lambda tc: tc.logged_out_session_token()),
    BadToken("idle_expired_session", "session_expired", lambda tc: tc.expired_session_token()),
    BadToken("old_generation_after_refresh", "token_superseded", lambda tc: tc.superseded_token()),
    BadToken("future_generation", "token_superseded", lambda tc: tc.with_claims(gen=tc.claims["gen"] + 1)),
    BadToken("anonymous_token_after_login", "token_superseded", lambda tc: tc.upgraded_anonymous_token()),
)

BY_NAME = {case.name: case for case in BAD_TOKENS}
assert len(BY_NAME) == len(BAD_TOKENS), "case names must be unique"
