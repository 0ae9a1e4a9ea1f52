"""TokenVerifier and mint_token: pinned algorithms, required claims, and clear refusals."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from collab.auth import Identity, Role, TokenVerifier, mint_token
from collab.errors import AuthError, ConfigError, ForbiddenError
from collab.settings import Secret, Settings

SECRET = "unit-test-secret-0123456789-abcdefghijklmnop"
OTHER_SECRET = "another-secret-0123456789-abcdefghijklmnopqr"


def pem_pair(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> tuple[str, str]:
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[str, str]:
    return pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def ec_keys() -> tuple[str, str]:
    return pem_pair(ec.generate_private_key(ec.SECP256R1()))


def hs_settings(**changes: Any) -> Settings:
    return Settings(jwt_secret=Secret(SECRET), **changes)


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "u1",
        "name": "Ada",
        "iat": now,
        "exp": now + 600,
        "workspaces": {"w1": "editor", "w2": "viewer"},
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


def hs_token(key: str = SECRET, algorithm: str = "HS256", **changes: Any) -> str:
    return jwt.encode(claims(**changes), key, algorithm=algorithm)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned_token(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"


# --- valid tokens -------------------------------------------------------------------------


def test_valid_hs256_token_gives_its_identity() -> None:
    """A well-formed HS256 token yields user id, display name and workspace roles."""
    identity = TokenVerifier(hs_settings()).verify(hs_token())
    assert identity == Identity(
        user_id="u1", name="Ada", workspaces={"w1": Role.EDITOR, "w2": Role.VIEWER}
    )


def test_valid_rs256_token_gives_its_identity(rsa_keys: tuple[str, str]) -> None:
    """An RS256 token signed with the private key is accepted with the public key."""
    private_pem, public_pem = rsa_keys
    settings = Settings(jwt_algorithms=("RS256",), jwt_public_key=Secret(public_pem))
    token = jwt.encode(claims(), private_pem, algorithm="RS256")
    identity = TokenVerifier(settings).verify(token)
    assert identity.user_id == "u1"
    assert identity.workspaces == {"w1": Role.EDITOR, "w2": Role.VIEWER}


def test_valid_es256_token_gives_its_identity(ec_keys: tuple[str, str]) -> None:
    """An ES256 token signed with the private key is accepted with the public key."""
    private_pem, public_pem = ec_keys
    settings = Settings(jwt_algorithms=("ES256",), jwt_public_key=Secret(public_pem))
    token = jwt.encode(claims(sub="u9", name=None), private_pem, algorithm="ES256")
    identity = TokenVerifier(settings).verify(token)
    assert identity == Identity(
        user_id="u9", name=None, workspaces={"w1": Role.EDITOR, "w2": Role.VIEWER}
    )


def test_token_without_workspaces_grants_nothing() -> None:
    """A token with no `workspaces` claim is valid but grants no role."""
    identity = TokenVerifier(hs_settings()).verify(hs_token(workspaces=None))
    assert identity.workspaces == {}
    with pytest.raises(ForbiddenError):
        identity.role_in("w1")


# --- refused tokens -----------------------------------------------------------------------


def test_missing_token_is_refused() -> None:
    """An empty token raises AuthError explaining where to pass one."""
    with pytest.raises(AuthError, match="missing token"):
        TokenVerifier(hs_settings()).verify("")


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "not.a.jwt.at.all", "e30.e30"])
def test_garbage_token_is_refused(token: str) -> None:
    """A string that is not a JWT raises AuthError."""
    with pytest.raises(AuthError, match="token is invalid"):
        TokenVerifier(hs_settings()).verify(token)


def test_oversized_token_is_refused_before_decoding() -> None:
    """A token over 8 KiB raises AuthError without being parsed."""
    with pytest.raises(AuthError, match="longer than"):
        TokenVerifier(hs_settings()).verify("x" * (8 * 1024 + 1))


def test_expired_token_is_refused() -> None:
    """A token whose `exp` has passed raises AuthError saying it expired."""
    now = int(time.time())
    with pytest.raises(AuthError, match="token expired"):
        TokenVerifier(hs_settings()).verify(hs_token(iat=now - 120, exp=now - 60))


@pytest.mark.parametrize("claim", ["exp", "sub"])
def test_token_without_a_required_claim_is_refused(claim: str) -> None:
    """A token without `exp` or `sub` raises AuthError naming the claim."""
    with pytest.raises(AuthError, match=f"lacks the required claim '{claim}'"):
        TokenVerifier(hs_settings()).verify(hs_token(**{claim: None}))


@pytest.mark.parametrize("sub", ["", "x" * 257])
def test_token_with_an_unusable_sub_is_refused(sub: str) -> None:
    """An empty or over-long `sub` raises AuthError."""
    with pytest.raises(AuthError, match="'sub'"):
        TokenVerifier(hs_settings()).verify(hs_token(sub=sub))


def test_token_with_a_non_string_sub_is_refused() -> None:
    """A numeric `sub` raises AuthError."""
    with pytest.raises(AuthError):
        TokenVerifier(hs_settings()).verify(hs_token(sub=42))


def test_alg_none_token_is_refused() -> None:
    """An unsigned `alg: none` token raises AuthError (the algorithm is not allowed)."""
    token = unsigned_token({"alg": "none", "typ": "JWT"}, claims()) + "."
    with pytest.raises(AuthError, match="algorithm is not allowed"):
        TokenVerifier(hs_settings()).verify(token)


def test_hs256_token_signed_with_the_public_key_is_refused_by_rs256(
    rsa_keys: tuple[str, str],
) -> None:
    """Algorithm confusion: HS256 keyed with the RSA public key PEM is refused by RS256."""
    _, public_pem = rsa_keys
    signing_input = unsigned_token({"alg": "HS256", "typ": "JWT"}, claims())
    signature = hmac.new(public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64url(signature)}"
    settings = Settings(jwt_algorithms=("RS256",), jwt_public_key=Secret(public_pem))
    with pytest.raises(AuthError, match="algorithm is not allowed"):
        TokenVerifier(settings).verify(token)


def test_rs256_token_is_refused_by_an_hs256_verifier(rsa_keys: tuple[str, str]) -> None:
    """A verifier pinned to HS256 refuses an RS256 token whatever its signature."""
    private_pem, _ = rsa_keys
    token = jwt.encode(claims(), private_pem, algorithm="RS256")
    with pytest.raises(AuthError, match="algorithm is not allowed"):
        TokenVerifier(hs_settings()).verify(token)


def test_wrong_hmac_signature_is_refused() -> None:
    """A token signed with another secret raises AuthError (signature invalid)."""
    with pytest.raises(AuthError, match="signature is invalid"):
        TokenVerifier(hs_settings()).verify(hs_token(key=OTHER_SECRET))


def test_wrong_rsa_signature_is_refused(rsa_keys: tuple[str, str]) -> None:
    """An RS256 token signed by another key raises AuthError (signature invalid)."""
    _, public_pem = rsa_keys
    other_private, _ = pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    token = jwt.encode(claims(), other_private, algorithm="RS256")
    settings = Settings(jwt_algorithms=("RS256",), jwt_public_key=Secret(public_pem))
    with pytest.raises(AuthError, match="signature is invalid"):
        TokenVerifier(settings).verify(token)


def test_tampered_payload_is_refused() -> None:
    """Changing the payload of a signed token breaks its signature."""
    header, _, signature = hs_token().split(".")
    forged = b64url(json.dumps(claims(workspaces={"w1": "owner"})).encode())
    with pytest.raises(AuthError, match="signature is invalid"):
        TokenVerifier(hs_settings()).verify(f"{header}.{forged}.{signature}")


def test_audience_is_enforced_when_configured() -> None:
    """With an audience set, the right `aud` passes; a wrong or missing one is refused."""
    verifier = TokenVerifier(hs_settings(jwt_audience="collab"))
    assert verifier.verify(hs_token(aud="collab")).user_id == "u1"
    with pytest.raises(AuthError, match="audience"):
        verifier.verify(hs_token(aud="other-app"))
    with pytest.raises(AuthError, match="'aud'"):
        verifier.verify(hs_token())


def test_audience_is_ignored_when_not_configured() -> None:
    """Without a configured audience, any `aud` in the token is accepted."""
    assert TokenVerifier(hs_settings()).verify(hs_token(aud="whatever")).user_id == "u1"


def test_issuer_is_enforced_when_configured() -> None:
    """With an issuer set, the right `iss` passes; a wrong or missing one is refused."""
    verifier = TokenVerifier(hs_settings(jwt_issuer="https://idp.example.com"))
    assert verifier.verify(hs_token(iss="https://idp.example.com")).user_id == "u1"
    with pytest.raises(AuthError, match="issuer"):
        verifier.verify(hs_token(iss="https://evil.example.com"))
    with pytest.raises(AuthError, match="'iss'"):
        verifier.verify(hs_token())


def test_issuer_is_ignored_when_not_configured() -> None:
    """Without a configured issuer, any `iss` in the token is accepted."""
    assert TokenVerifier(hs_settings()).verify(hs_token(iss="anyone")).user_id == "u1"


def test_token_not_valid_yet_is_refused() -> None:
    """A token whose `nbf` is in the future raises AuthError saying it is not valid yet."""
    with pytest.raises(AuthError, match="not valid yet"):
        TokenVerifier(hs_settings()).verify(hs_token(nbf=int(time.time()) + 3600))


def test_unknown_role_is_refused() -> None:
    """A role other than owner/editor/viewer raises AuthError naming it and the workspace."""
    with pytest.raises(AuthError, match="unknown role 'admin' in workspace 'w1'"):
        TokenVerifier(hs_settings()).verify(hs_token(workspaces={"w1": "admin"}))


@pytest.mark.parametrize("workspaces", [["w1"], "w1", 3, True])
def test_workspaces_that_are_not_an_object_are_refused(workspaces: object) -> None:
    """A `workspaces` claim that is not a JSON object raises AuthError."""
    with pytest.raises(AuthError, match="'workspaces' must be an object"):
        TokenVerifier(hs_settings()).verify(hs_token(workspaces=workspaces))


def test_over_long_name_is_refused() -> None:
    """A `name` over 256 characters raises AuthError."""
    with pytest.raises(AuthError, match="'name'"):
        TokenVerifier(hs_settings()).verify(hs_token(name="n" * 257))


def test_verifier_without_a_key_is_a_config_error() -> None:
    """A verifier for HMAC with no secret cannot be built."""
    with pytest.raises(ConfigError, match="no verification key"):
        TokenVerifier(Settings())


# --- identity and minting -----------------------------------------------------------------


def test_role_in_returns_the_granted_role() -> None:
    """`role_in` returns the role a token grants in a workspace."""
    identity = Identity("u1", None, {"w1": Role.OWNER})
    assert identity.role_in("w1") is Role.OWNER


def test_role_in_without_a_role_is_forbidden() -> None:
    """`role_in` raises ForbiddenError (an AuthError) for a workspace the token omits."""
    identity = Identity("u1", None, {"w1": Role.OWNER})
    with pytest.raises(ForbiddenError, match="no role in workspace 'w2'") as caught:
        identity.role_in("w2")
    assert isinstance(caught.value, AuthError)


def test_only_viewers_cannot_write() -> None:
    """Owners and editors can write; viewers cannot."""
    assert [role.can_write for role in Role] == [True, True, False]


def test_minted_hs256_token_round_trips() -> None:
    """`mint_token` makes a token the same settings verify to the same identity."""
    settings = hs_settings(jwt_audience="collab", jwt_issuer="https://idp.example.com")
    grants = {"w1": Role.OWNER, "w2": Role.VIEWER}
    token = mint_token(settings, sub="u7", workspaces=grants, name="Grace", ttl_s=60)
    assert TokenVerifier(settings).verify(token) == Identity("u7", "Grace", grants)
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["exp"] - payload["iat"] == 60
    assert payload["aud"] == "collab"
    assert payload["iss"] == "https://idp.example.com"


def test_minted_token_with_negative_ttl_is_expired() -> None:
    """A token minted with a ttl in the past is refused as expired."""
    settings = hs_settings()
    token = mint_token(settings, sub="u1", workspaces={}, ttl_s=-10)
    with pytest.raises(AuthError, match="expired"):
        TokenVerifier(settings).verify(token)


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_minted_public_key_token_round_trips(
    algorithm: str, rsa_keys: tuple[str, str], ec_keys: tuple[str, str]
) -> None:
    """`mint_token` signs RS256/ES256 with a private key; the public key verifies it."""
    private_pem, public_pem = rsa_keys if algorithm == "RS256" else ec_keys
    settings = Settings(jwt_algorithms=(algorithm,), jwt_public_key=Secret(public_pem))
    token = mint_token(settings, sub="u1", workspaces={"w1": Role.EDITOR}, private_key=private_pem)
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    assert TokenVerifier(settings).verify(token) == Identity("u1", None, {"w1": Role.EDITOR})


def test_minting_rs256_without_a_private_key_is_a_config_error(rsa_keys: tuple[str, str]) -> None:
    """Public-key algorithms need a private key to mint: ConfigError otherwise."""
    _, public_pem = rsa_keys
    settings = Settings(jwt_algorithms=("RS256",), jwt_public_key=Secret(public_pem))
    with pytest.raises(ConfigError, match="RS256 tokens need a PEM key"):
        mint_token(settings, sub="u1", workspaces={})


def test_minting_hs256_without_a_secret_is_a_config_error() -> None:
    """HMAC minting without a configured secret raises ConfigError."""
    with pytest.raises(ConfigError, match="no secret"):
        mint_token(Settings(), sub="u1", workspaces={})


def test_secrets_never_appear_in_repr_or_str(rsa_keys: tuple[str, str]) -> None:
    """Neither the HMAC secret nor a key shows in repr/str of settings or the verifier."""
    _, public_pem = rsa_keys
    settings = hs_settings()
    key_settings = Settings(jwt_algorithms=("RS256",), jwt_public_key=Secret(public_pem))
    shown = " ".join(
        [repr(settings), str(settings), repr(key_settings), repr(TokenVerifier(settings))]
    )
    assert SECRET not in shown
    assert "BEGIN PUBLIC KEY" not in shown
    assert "**********" in repr(settings)
