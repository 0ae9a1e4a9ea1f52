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

from collab.auth.keys import UnknownKeyId, parse_jwks
from collab.auth.revocations import RevocationList
from collab.auth.tokens import Identity, Role, TokenVerifier, mint_token
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


@pytest.mark.parametrize("sub", ["", "x" * 257, "u\x00", "u\n1", "\x7f"])
def test_token_with_an_unusable_sub_is_refused(sub: str) -> None:
    """An empty or over-long `sub`, or one with a control character, raises AuthError."""
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
    """A token minted with a ttl further in the past than the clock-skew leeway is refused."""
    settings = hs_settings()
    token = mint_token(settings, sub="u1", workspaces={}, ttl_s=-int(settings.jwt_leeway_s) - 10)
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


# --- keys by kid, leeway, revocation ------------------------------------------------------


def test_keys_by_kid_verify_during_a_rotation() -> None:
    """With COLLAB_JWT_KEYS, tokens of the old and the new kid are both accepted, and a
    token without a kid uses the single COLLAB_JWT_SECRET."""
    settings = hs_settings(jwt_keys=(("old", Secret(OTHER_SECRET)), ("new", Secret(SECRET * 2))))
    verifier = TokenVerifier(settings)
    for kid in ("old", "new"):
        token = mint_token(settings, sub=f"u-{kid}", workspaces={}, kid=kid)
        assert jwt.get_unverified_header(token)["kid"] == kid
        assert verifier.verify(token).user_id == f"u-{kid}"
    assert verifier.verify(hs_token()).user_id == "u1"


def test_unknown_kid_is_refused_with_its_name() -> None:
    """A token naming a kid no key has raises UnknownKeyId, even if its signature would
    match the default key."""
    token = jwt.encode(claims(), SECRET, algorithm="HS256", headers={"kid": "2019"})
    with pytest.raises(UnknownKeyId, match=r"token key id \(kid\) '2019' is unknown"):
        TokenVerifier(hs_settings(jwt_keys=(("2024", Secret(OTHER_SECRET)),))).verify(token)


def test_kid_pointing_at_the_wrong_key_type_is_refused(
    rsa_keys: tuple[str, str], ec_keys: tuple[str, str]
) -> None:
    """With RS256 and ES256 pinned, an ES256 token naming the RSA key's kid is refused as a
    key-type mismatch before any signature check."""
    _, rsa_public = rsa_keys
    ec_private, ec_public = ec_keys
    settings = Settings(
        jwt_algorithms=("RS256", "ES256"),
        jwt_keys=(("rsa", Secret(rsa_public)), ("ec", Secret(ec_public))),
    )
    verifier = TokenVerifier(settings)
    good = jwt.encode(claims(), ec_private, algorithm="ES256", headers={"kid": "ec"})
    assert verifier.verify(good).user_id == "u1"
    bad = jwt.encode(claims(), ec_private, algorithm="ES256", headers={"kid": "rsa"})
    with pytest.raises(AuthError, match="key 'rsa', an RSA key, which cannot verify ES256"):
        verifier.verify(bad)


def test_hs256_token_naming_an_rsa_kid_is_refused(rsa_keys: tuple[str, str]) -> None:
    """Algorithm confusion through a kid: HS256 keyed with the RSA PEM is refused by RS256."""
    _, public_pem = rsa_keys
    signing_input = unsigned_token({"alg": "HS256", "kid": "rsa"}, claims())
    signature = hmac.new(public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    settings = Settings(jwt_algorithms=("RS256",), jwt_keys=(("rsa", Secret(public_pem)),))
    with pytest.raises(AuthError, match="algorithm is not allowed"):
        TokenVerifier(settings).verify(f"{signing_input}.{b64url(signature)}")


def test_token_without_kid_needs_a_default_key(rsa_keys: tuple[str, str]) -> None:
    """With only keys by kid configured, a token without a kid is refused, saying so."""
    private_pem, public_pem = rsa_keys
    settings = Settings(jwt_algorithms=("RS256",), jwt_keys=(("rsa", Secret(public_pem)),))
    token = jwt.encode(claims(), private_pem, algorithm="RS256")
    with pytest.raises(AuthError, match="no key id \\(kid\\) and no default key"):
        TokenVerifier(settings).verify(token)


def test_a_public_key_of_the_wrong_family_is_a_config_error(ec_keys: tuple[str, str]) -> None:
    """An EC key among the keys while only RS256 is pinned is refused at start."""
    settings = Settings(jwt_algorithms=("RS256",), jwt_keys=(("ec", Secret(ec_keys[1])),))
    with pytest.raises(ConfigError, match=r"COLLAB_JWT_KEYS\['ec'\]: an EC key cannot verify"):
        TokenVerifier(settings)


@pytest.mark.parametrize(("leeway_s", "accepted"), [(30.0, True), (0.0, False)])
def test_expiry_tolerates_the_configured_leeway(leeway_s: float, accepted: bool) -> None:
    """A token that expired 10 s ago passes with a 30 s leeway and fails with none."""
    token = hs_token(exp=int(time.time()) - 10)
    verifier = TokenVerifier(hs_settings(jwt_leeway_s=leeway_s))
    if accepted:
        assert verifier.verify(token).user_id == "u1"
    else:
        with pytest.raises(AuthError, match="token expired"):
            verifier.verify(token)


def test_nbf_beyond_the_leeway_is_refused() -> None:
    """A token not valid for another minute is refused even with the default leeway."""
    with pytest.raises(AuthError, match="not valid yet"):
        TokenVerifier(hs_settings()).verify(hs_token(nbf=int(time.time()) + 90))


def test_identity_carries_the_token_expiry() -> None:
    """The identity holds `exp`, which open sockets are closed at."""
    exp = int(time.time()) + 600
    assert TokenVerifier(hs_settings()).verify(hs_token(exp=exp)).expires_at == exp


def test_fractional_exp_is_accepted_as_a_number() -> None:
    """A JSON float is a valid NumericDate: the identity keeps it exactly."""
    exp = time.time() + 600.5
    assert TokenVerifier(hs_settings()).verify(hs_token(exp=exp)).expires_at == exp


@pytest.mark.parametrize(
    ("claim", "value"),
    [("exp", str(int(time.time()) + 3600)), ("nbf", "1"), ("iat", "1")],
)
def test_numeric_string_time_claims_are_refused(claim: str, value: str) -> None:
    """`exp`, `nbf` or `iat` as a numeric string (which PyJWT passes) raises AuthError."""
    with pytest.raises(AuthError, match=f"token claim '{claim}' must be a JSON number.*string"):
        TokenVerifier(hs_settings()).verify(hs_token(**{claim: value}))


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_boolean_time_claims_are_refused(claim: str) -> None:
    """`true` as `nbf` or `iat` (PyJWT reads it as 1) raises AuthError."""
    with pytest.raises(AuthError, match=f"token claim '{claim}' must be a JSON number.*boolean"):
        TokenVerifier(hs_settings()).verify(hs_token(**{claim: True}))


@pytest.mark.parametrize("exp", [True, "soon", [1999999999], {"at": 1999999999}, 10**400])
def test_exp_that_is_not_a_usable_number_is_refused(exp: object) -> None:
    """Any `exp` but a finite JSON number raises AuthError, never another exception."""
    with pytest.raises(AuthError):
        TokenVerifier(hs_settings()).verify(hs_token(exp=exp))


def test_time_claim_refusals_do_not_quote_the_claim() -> None:
    """The message names the claim and its JSON type, not its value (refusals are logged)."""
    with pytest.raises(AuthError) as caught:
        TokenVerifier(hs_settings()).verify(hs_token(exp="1999999999"))
    assert "1999999999" not in str(caught.value)


def test_revoked_user_is_forbidden_until_the_revocation_ends() -> None:
    """An active revocation refuses the user's valid token with ForbiddenError; one that
    ended does not."""
    revocations = RevocationList()
    verifier = TokenVerifier(hs_settings(), revocations=revocations)
    revocations.set("u1", time.time() + 60)
    with pytest.raises(ForbiddenError, match="access revoked until"):
        verifier.verify(hs_token())
    assert verifier.verify(hs_token(sub="u2")).user_id == "u2"
    revocations.set("u1", time.time() - 1)
    assert verifier.verify(hs_token()).user_id == "u1"


def test_jwks_parsing_keeps_signing_keys_with_kids(rsa_keys: tuple[str, str]) -> None:
    """`parse_jwks` keeps keys with a kid and `use: sig` and notes each key it left out."""
    public = serialization.load_pem_public_key(rsa_keys[1].encode())
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
    document = {
        "keys": [
            {**jwk, "kid": "k1"},
            jwk,
            {**jwk, "kid": "enc", "use": "enc"},
            {"kty": "nope", "kid": "k3"},
            "junk",
        ]
    }
    keys, skipped = parse_jwks(document, ["RS256"])
    assert list(keys) == ["k1"]
    assert len(skipped) == 4


@pytest.mark.parametrize("document", [[], {"keys": {}}, {"nokeys": []}, "x"])
def test_jwks_that_is_not_a_key_set_is_refused(document: object) -> None:
    """A document without a `keys` array raises ValueError."""
    with pytest.raises(ValueError, match="not a JWKS"):
        parse_jwks(document, ["RS256"])


# --- the email claim ----------------------------------------------------------------------


def test_the_email_claim_is_the_identitys_address() -> None:
    """An `email` claim gives the identity its address; without one it has none."""
    verifier = TokenVerifier(hs_settings())
    assert verifier.verify(hs_token(email="ada@example.com")).email == "ada@example.com"
    assert verifier.verify(hs_token()).email is None
    assert verifier.verify(hs_token(email="ada@example.com", email_verified=True)).email == (
        "ada@example.com"
    )


def test_an_address_the_provider_did_not_verify_is_ignored() -> None:
    """`email_verified: false` (OpenID Connect) leaves the identity without an address."""
    token = hs_token(email="ada@example.com", email_verified=False)
    assert TokenVerifier(hs_settings()).verify(token).email is None


@pytest.mark.parametrize(
    "email",
    [
        7,
        True,
        ["a@example.com"],
        "",
        "ada",
        "ada@",
        "a b@example.com",
        "a@exa mple.com",
        "Ada <ada@example.com>",
        "ada@example.com\r\nBcc: x@example.com",
        "a" * 250 + "@example.com",
        # An RFC 2047 encoded word, which Python's email package decodes into a header.
        "=?utf-8?q?a=3E=2C_eve=40corp.example=2C_b?=@evil.example",
    ],
)
def test_an_email_claim_that_is_not_an_address_is_refused(email: object) -> None:
    """An `email` claim must be a plain address of at most 254 characters (AuthError)."""
    with pytest.raises(AuthError, match="token claim 'email' must be an address"):
        TokenVerifier(hs_settings()).verify(hs_token(email=email))


def test_minted_tokens_carry_an_email_when_given() -> None:
    """`mint_token(email=…)` puts the claim in the token."""
    settings = hs_settings()
    token = mint_token(settings, sub="u1", workspaces={}, email="ada@example.com")
    assert TokenVerifier(settings).verify(token).email == "ada@example.com"
