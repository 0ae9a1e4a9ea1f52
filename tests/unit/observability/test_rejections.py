"""Auth failure reasons: each refusal the verifier and the handlers produce maps to its label."""

from __future__ import annotations

import time

import jwt
import pytest

from collab.auth.tokens import TokenVerifier, mint_token
from collab.errors import AuthError, ForbiddenError
from collab.settings import Secret, Settings
from collab.web.http.metrics import AUTH_FAILURE_REASONS
from collab.web.http.rejections import auth_failure_reason

SECRET = "unit-test-secret-0123456789-abcdefghijklmnop"
OTHER_SECRET = "another-secret-0123456789-abcdefghijklmnopqr"
SETTINGS = Settings(jwt_secret=Secret(SECRET), jwt_audience="collab", jwt_issuer="idp")


def _token(secret: str = SECRET, **claims: object) -> str:
    # Minted when the module is collected: valid for longer than any run of the suite, so a
    # slow machine reaching these tests late still sees only the refusal each one is about.
    now = int(time.time())
    base: dict[str, object] = {"sub": "u1", "exp": now + 7 * 86400, "aud": "collab", "iss": "idp"}
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, secret, "HS256")


REFUSED_TOKENS: list[tuple[str, str]] = [
    ("", "missing_token"),
    ("x" * 9000, "token_too_long"),
    (_token(exp=int(time.time()) - 3600), "expired"),
    (_token(nbf=int(time.time()) + 3600), "not_yet_valid"),
    (_token(aud="elsewhere"), "wrong_audience"),
    (_token(iss="someone"), "wrong_issuer"),
    (_token(exp=None), "missing_claim"),
    (_token(OTHER_SECRET), "bad_signature"),
    (jwt.encode({"sub": "u1"}, SECRET + "x" * 20, "HS512"), "algorithm_not_allowed"),
    (_token(workspaces={"w1": "admin"}), "invalid_claims"),
    (_token(sub=""), "invalid_claims"),
    ("not.a.token", "invalid_token"),
]


@pytest.mark.parametrize(("token", "reason"), REFUSED_TOKENS)
def test_each_verifier_refusal_has_its_reason(token: str, reason: str) -> None:
    """The reason comes from the refusal's kind, from a fixed set, never from the token."""
    with pytest.raises(AuthError) as caught:
        TokenVerifier(SETTINGS).verify(token)
    assert auth_failure_reason(caught.value) == reason
    assert reason in AUTH_FAILURE_REASONS


def test_forbidden_refusals_have_their_reasons() -> None:
    """No role, a disallowed origin and a read-only role each have a label."""
    identity = TokenVerifier(SETTINGS).verify(
        mint_token(SETTINGS, sub="u1", workspaces={}, ttl_s=60)
    )
    with pytest.raises(ForbiddenError) as caught:
        identity.role_in("w1")
    cases = [
        (caught.value, "no_role"),
        (ForbiddenError("origin 'https://evil.example' is not allowed"), "origin_not_allowed"),
        (ForbiddenError("role 'viewer' cannot change documents"), "read_only"),
        (ForbiddenError("something new"), "forbidden"),
    ]
    for error, reason in cases:
        assert auth_failure_reason(error) == reason
        assert reason in AUTH_FAILURE_REASONS


def test_an_error_may_name_its_own_reason() -> None:
    """A `reason` attribute on the error wins over its message."""

    class KeyServerDown(AuthError):
        reason = "unknown_key"

    assert auth_failure_reason(KeyServerDown("token expired")) == "unknown_key"
