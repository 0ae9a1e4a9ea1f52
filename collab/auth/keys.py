"""Verification keys: the single default key, keys by `kid`, and the JWKS-fetched set.

A token without a `kid` header is verified with the single configured key
(`COLLAB_JWT_SECRET` or `COLLAB_JWT_PUBLIC_KEY`); a token with a `kid` with the key of that
id from `COLLAB_JWT_KEYS`, else from the last good JWKS. Algorithms stay pinned by
configuration: a key is used only for a configured algorithm of its own family, so neither
the token's `alg` nor a JWKS entry can turn an RSA public key into an HMAC secret.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from collab.errors import AuthError, ConfigError
from collab.settings import HMAC_ALGORITHMS, Secret, Settings

# The algorithms each kind of key can verify.
_FAMILIES: dict[str, frozenset[str]] = {
    "HMAC": HMAC_ALGORITHMS,
    "RSA": frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}),
    "EC": frozenset({"ES256", "ES384", "ES512"}),
    "OKP": frozenset({"EdDSA"}),
}
MAX_JWKS_KEYS = 100

VerificationKey = Any
"""A `str` HMAC secret or a `cryptography` public key object."""


class UnknownKeyId(AuthError):
    """The token names a `kid` no configured or fetched key has."""

    def __init__(self, kid: str) -> None:
        super().__init__(f"token key id (kid) {kid[:64]!r} is unknown")
        self.kid = kid


def key_family(key: VerificationKey) -> str:
    """`HMAC`, `RSA`, `EC` or `OKP`. Raises `ValueError` for any other kind of key."""
    if isinstance(key, str | bytes):
        return "HMAC"
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC"
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "OKP"
    raise ValueError(f"unsupported key type {type(key).__name__}")


def _load(secret: Secret, hmac: bool) -> VerificationKey:
    if hmac:
        return secret.reveal()
    return load_pem_public_key(secret.reveal().encode())


def static_keys(settings: Settings) -> tuple[VerificationKey | None, dict[str, VerificationKey]]:
    """The default key and the keys by `kid` of `settings`, loaded and checked against the
    pinned algorithms. Raises `ConfigError` naming each unusable key."""
    algorithms = set(settings.jwt_algorithms)
    hmac = bool(algorithms & HMAC_ALGORITHMS)
    problems = []
    named: list[tuple[str, str, Secret | None]] = [
        (
            "COLLAB_JWT_SECRET" if hmac else "COLLAB_JWT_PUBLIC_KEY",
            "",
            settings.jwt_secret if hmac else settings.jwt_public_key,
        ),
    ]
    named += [(f"COLLAB_JWT_KEYS[{kid!r}]", kid, key) for kid, key in settings.jwt_keys]
    default: VerificationKey | None = None
    by_kid: dict[str, VerificationKey] = {}
    for source, kid, secret in named:
        if secret is None:
            continue
        try:
            key = _load(secret, hmac)
            family = key_family(key)
        except ValueError as error:
            problems.append(f"{source}: not a usable public key: {error}")
            continue
        if not _FAMILIES[family] & algorithms:
            problems.append(
                f"{source}: an {family} key cannot verify COLLAB_JWT_ALGORITHMS="
                + ",".join(settings.jwt_algorithms)
            )
            continue
        if kid:
            by_kid[kid] = key
        else:
            default = key
    if problems:
        raise ConfigError(problems)
    return default, by_kid


def parse_jwks(document: object, algorithms: Iterable[str]) -> tuple[dict[str, Any], list[str]]:
    """The keys of a JWKS document usable with `algorithms`, by `kid`, and one note per key
    left out. Raises `ValueError` if `document` is not a JWKS at all."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('not a JWKS: expected an object with a "keys" array')
    entries: list[object] = document["keys"]
    if len(entries) > MAX_JWKS_KEYS:
        raise ValueError(f"the JWKS has {len(entries)} keys; at most {MAX_JWKS_KEYS} are read")
    allowed = set(algorithms)
    keys: dict[str, Any] = {}
    skipped: list[str] = []
    for entry in entries:
        if not isinstance(entry, dict):
            skipped.append("an entry that is not an object")
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid:
            # Selection is by kid only: a key without one could never be chosen.
            skipped.append("a key without a kid")
            continue
        if entry.get("use", "sig") != "sig":
            skipped.append(f"key {kid!r}: not a signing key (use={entry.get('use')!r})")
            continue
        try:
            key = jwt.PyJWK(entry).key
            family = key_family(key)
        except (jwt.PyJWTError, ValueError) as error:
            skipped.append(f"key {kid!r}: unusable: {error}")
            continue
        # Kept even when its family fits no pinned algorithm, so that a token naming it is
        # refused as "wrong key type", which says more than "unknown kid".
        keys[kid] = key
        if not _FAMILIES[family] & allowed:
            skipped.append(f"key {kid!r}: an {family} key, unusable with the pinned algorithms")
    return keys, skipped


class KeyRing:
    """Chooses the key that verifies a token, from its header; never from its claims."""

    def __init__(
        self,
        algorithms: Sequence[str],
        default: VerificationKey | None,
        by_kid: Mapping[str, VerificationKey],
    ) -> None:
        self._algorithms = tuple(algorithms)
        self._default = default
        self._static = dict(by_kid)
        self._fetched: dict[str, VerificationKey] = {}

    def replace_fetched(self, keys: Mapping[str, VerificationKey]) -> None:
        """Use `keys` (a newly fetched JWKS) instead of the previous fetched set."""
        self._fetched = dict(keys)

    def knows(self, kid: str) -> bool:
        return kid in self._static or kid in self._fetched

    def key_for(self, header: Mapping[str, Any]) -> VerificationKey:
        """The key for a token with this (unverified) header. Raises `AuthError` saying why
        there is none (`UnknownKeyId` for a `kid` no key has)."""
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise AuthError(
                f"token algorithm is not allowed: {str(alg)[:20]!r} "
                f"(pinned: {', '.join(self._algorithms)})"
            )
        kid = header.get("kid")
        if kid is None:
            if self._default is None:
                raise AuthError(
                    "token has no key id (kid) and no default key is configured; "
                    "the issuer must set a kid"
                )
            key, name = self._default, "the default key"
        elif not isinstance(kid, str) or not kid:
            raise AuthError("token key id (kid) must be a non-empty string")
        else:
            key = self._static.get(kid)
            if key is None:
                key = self._fetched.get(kid)
            if key is None:
                raise UnknownKeyId(kid)
            name = f"key {kid[:64]!r}"
        family = key_family(key)
        if alg not in _FAMILIES[family]:
            raise AuthError(f"token names {name}, an {family} key, which cannot verify {alg}")
        return key
