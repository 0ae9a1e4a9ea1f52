"""Signatures as Standard Webhooks defines them.

A secret is `whsec_` and the base64 of a random key. Each attempt is signed over
`{webhook-id}.{webhook-timestamp}.{body}` with HMAC-SHA256 under that key; the
`webhook-signature` header is `v1,` and the base64 of the MAC, one such signature per secret
the attempt is signed with, separated by spaces (the current secret first, then the one a
rotation replaced while it still signs): a receiver accepts a request that one of them
verifies, so it can switch secrets without refusing anything.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
SIGNATURE_VERSION = "v1"


def new_secret() -> str:
    """A fresh signing secret: `whsec_` and the base64 of `SECRET_BYTES` random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The key a secret stands for; raise `ValueError` for a string that is no secret."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX}")
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"a webhook secret is base64 after {SECRET_PREFIX}: {exc}") from None


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value of one attempt."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    mac = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(mac).decode()}"


def signed_headers(
    secrets: tuple[str, ...], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The headers of one attempt signed with each of `secrets`: the JSON body's type and the
    three Standard Webhooks headers."""
    if not secrets:
        raise ValueError("an attempt is signed with at least one secret")
    return {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            sign(secret, message_id, timestamp, body) for secret in secrets
        ),
    }
