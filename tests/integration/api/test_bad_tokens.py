"""Every bad access token of :mod:`tests.bad_tokens` is refused with 401 and the code it declares."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sessionflow.api.auth.authenticate import Purpose
from sessionflow.api.errors import InvalidCredentials
from tests.bad_tokens import BAD_TOKENS, EXPECTED_CLOSE_CODE, BadToken, TokenContext, write_rsa_keys
from tests.integration.api.conftest import Api, assert_problem


@pytest.fixture(scope="session")
def rsa_key_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_rsa_keys(tmp_path_factory.mktemp("rsa"))


@pytest.fixture
def token_context(
    request: pytest.FixtureRequest, make_api: Callable[..., Api], rsa_key_files: tuple[Path, Path]
) -> tuple[Api, TokenContext]:
    """An app signing with the case's algorithm, and a valid session of alice's to derive the bad token from."""
    case: BadToken = request.param
    overrides = {}
    if case.algorithm == "RS256":
        private, public = rsa_key_files
        overrides = {"jwt_algorithm": "RS256", "jwt_private_key_file": str(private), "jwt_public_key_file": str(public)}
    api = make_api(**overrides)
    return api, TokenContext(api.ctx, api.alice.id, api.admin.id, api.issue(api.alice))


@pytest.mark.parametrize("token_context", BAD_TOKENS, ids=[c.name for c in BAD_TOKENS], indirect=True)
def test_bad_token_is_refused_with_its_code(
    token_context: tuple[Api, TokenContext], request: pytest.FixtureRequest
) -> None:
    """GET /api/session/{id}: 401 problem details with the declared code and a WWW-Authenticate challenge.

    The one authenticator gives the WebSocket purpose the same code, for which docs/protocol.md has a close code.
    """
    api, tc = token_context
    case: BadToken = request.node.callspec.params["token_context"]
    header = case.authorization(case.make(tc))
    response = api.client.get(
        f"/api/session/{tc.session_id}", headers={} if header is None else {"Authorization": header}
    )
    body = assert_problem(response, 401, case.code)
    assert body["detail"]
    assert response.headers["www-authenticate"] == f'Bearer error="invalid_token", error_description="{case.code}"'
    if header is not None and len(header) > len("Bearer "):
        assert header.partition(" ")[2] not in response.text  # the credential is never echoed

    with pytest.raises(InvalidCredentials) as refused:
        api.ctx.auth.bearer(header, Purpose.CONNECT)
    assert refused.value.code == case.code
    assert case.close_code in {4401, 4403, 4410, 4419}

    # Only the forged credential was refused: the context's own token still works.
    assert (
        api.client.get(f"/api/session/{tc.session_id}", headers={"Authorization": f"Bearer {tc.token}"}).status_code
        == 200
    )


def test_the_table_covers_every_way_the_design_names() -> None:
    """At least the cases the design and the issue list, each with a code the API defines."""
    names = {c.name for c in BAD_TOKENS}
    required = {
        "alg_none",
        "hs256_keyed_with_rs256_public_key",
        "hs256_wrong_key",
        "expired",
        "nbf_in_the_future",
        "wrong_audience",
        "wrong_issuer",
        "wrong_typ",
        "tampered_payload",
        "missing_sid",
        "unknown_sid",
        "revoked_session",
        "old_generation_after_refresh",
        "garbage",
        "oversize",
    }
    assert required <= names
    assert len(BAD_TOKENS) >= 15
    assert {c.code for c in BAD_TOKENS} <= set(EXPECTED_CLOSE_CODE)
