"""Webhook secrets sealed in the database: `SecretSealer` (`COLLAB_WEBHOOK_SECRET_KEYS`).

A webhook secret must be kept to sign with, so it cannot be stored hashed. With keys
configured it is stored sealed, and one who reads the database alone (a leaked dump or
backup) cannot sign as the server:

    sealed:v1:<key id>:<base64 of a 12-byte nonce and the AES-256-GCM ciphertext>

The AES key is HKDF-SHA256 of a configured key (any string of 32 bytes or more); the key id
is another HKDF output of it, so it names the key without revealing it. The endpoint's id
is the associated data: a sealed secret copied to another endpoint's row does not unseal.
The first configured key seals; every configured key unseals, so keys can be replaced
without a moment where a secret cannot be read. Without keys, secrets are stored as shown
(`whsec_…`), as before there were keys.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from collab.errors import CollabError

SEALED_PREFIX = "sealed:v1:"
NONCE_BYTES = 12
KEY_ID_BYTES = 6
_SEALING_INFO = b"collab webhook secret sealing v1"
_KEY_ID_INFO = b"collab webhook secret key id v1"


class SealError(CollabError):
    """A stored secret cannot be unsealed with the configured keys; says which and why."""


class SecretSealer:
    """Seals and unseals webhook secrets with `keys` (the first seals, all unseal); with no
    keys, secrets are stored as they are."""

    def __init__(self, keys: Sequence[str] = ()) -> None:
        self._ciphers: dict[str, AESGCM] = {}
        self._sealing_id: str | None = None
        for key in keys:
            key_id = _derive(key, _KEY_ID_INFO, KEY_ID_BYTES).hex()
            self._ciphers[key_id] = AESGCM(_derive(key, _SEALING_INFO, 32))
            self._sealing_id = self._sealing_id or key_id

    def seal(self, secret: str, endpoint_id: str) -> str:
        """`secret` as the store keeps it for `endpoint_id`."""
        if self._sealing_id is None:
            return secret
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._sealing_id].encrypt(
            nonce, secret.encode(), endpoint_id.encode()
        )
        return f"{SEALED_PREFIX}{self._sealing_id}:{base64.b64encode(nonce + sealed).decode()}"

    def unseal(self, stored: str, endpoint_id: str) -> str:
        """The secret `stored` holds for `endpoint_id`. Raises `SealError` when it is sealed
        with no configured key, or does not unseal (altered, or another endpoint's)."""
        if not stored.startswith(SEALED_PREFIX):
            return stored
        key_id, _, payload = stored.removeprefix(SEALED_PREFIX).partition(":")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            if not self._ciphers:
                raise SealError(
                    "its secret is sealed and COLLAB_WEBHOOK_SECRET_KEYS is not set; set the "
                    "keys it was sealed with"
                )
            raise SealError(
                f"its secret is sealed with a key that is not in COLLAB_WEBHOOK_SECRET_KEYS "
                f"(key id {key_id[: 2 * KEY_ID_BYTES]!r}); add that key"
            )
        try:
            raw = base64.b64decode(payload, validate=True)
            return cipher.decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], endpoint_id.encode()
            ).decode()
        except (binascii.Error, InvalidTag, ValueError):
            raise SealError(
                "its sealed secret does not unseal: it was altered or belongs to another "
                "endpoint; rotate the secret"
            ) from None

    def is_current(self, stored: str) -> bool:
        """Whether `stored` is kept as this sealer keeps new secrets: sealed with the first
        key, or, without keys, as it is."""
        if self._sealing_id is None:
            return not stored.startswith(SEALED_PREFIX)
        return stored.startswith(f"{SEALED_PREFIX}{self._sealing_id}:")


def _derive(key: str, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(key.encode())
