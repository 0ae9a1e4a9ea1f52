"""Signed one-click unsubscribe tokens of email digests (RFC 8058): no login needed.

    token = "v1." base64url(user_id) "." base64url(HMAC-SHA256(key, "v1." base64url(user_id)))

The key is derived from the server's JWT secret (`UnsubscribeSigner.from_secret`), so every
instance signing with the same secret accepts every other's links, and a JWT is never an
unsubscribe token or the other way round. Tokens do not expire: a link in an old email keeps
working. Tampering (another user id, a changed or truncated signature) fails `user_of`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

from collab.settings import Secret

VERSION = "v1"
MAX_TOKEN_CHARS = 1500
_DERIVATION_LABEL = b"collab email unsubscribe v1"
# base64url without padding; a SHA-256 MAC is 43 characters of it.
_TOKEN = re.compile(r"v1\.[A-Za-z0-9_-]{2,1400}\.[A-Za-z0-9_-]{43}")


class UnsubscribeSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def from_secret(cls, secret: Secret) -> UnsubscribeSigner:
        key = hmac.new(secret.reveal().encode(), _DERIVATION_LABEL, hashlib.sha256).digest()
        return cls(key)

    def __repr__(self) -> str:
        return "UnsubscribeSigner(key=**********)"

    def token_for(self, user_id: str) -> str:
        signed = f"{VERSION}.{_encode(user_id.encode())}"
        return f"{signed}.{_encode(self._mac(signed))}"

    def user_of(self, token: str) -> str | None:
        """The user id `token` was made for; None when it was not made with this key (or
        is not a token at all)."""
        if len(token) > MAX_TOKEN_CHARS or _TOKEN.fullmatch(token) is None:
            return None
        signed, _, signature = token.rpartition(".")
        # Compared as text: only the one encoding of the MAC is accepted.
        if not hmac.compare_digest(signature, _encode(self._mac(signed))):
            return None
        try:
            return _decode(signed.partition(".")[2]).decode() or None
        except UnicodeDecodeError:
            return None

    def _mac(self, signed: str) -> bytes:
        return hmac.new(self._key, signed.encode(), hashlib.sha256).digest()


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decode(text: str) -> bytes:
    """Base64url without padding, of the characters `_TOKEN` admits."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        return b""  # a length no encoding has: it matches no MAC and names no user
