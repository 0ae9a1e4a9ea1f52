"""WebSocket close codes the server sends, and what a client should do about each."""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    NORMAL = 1000
    """The server ends the session on purpose; nothing went wrong."""
    GOING_AWAY = 1001
    """The peer went away."""
    UNSUPPORTED_DATA = 1003
    """A text frame or an unknown message type; a stock client never sends these."""
    INVALID_PAYLOAD = 1007
    """A message that does not decode or applies to nothing (corrupt update, bad awareness)."""
    POLICY_VIOLATION = 1008
    """A rule was broken (e.g. too many awareness ids, disallowed origin)."""
    MESSAGE_TOO_BIG = 1009
    """A message above COLLAB_MAX_MESSAGE_BYTES."""
    INTERNAL_ERROR = 1011
    """The server failed; reconnecting is safe."""
    SERVICE_RESTART = 1012
    """The instance is shutting down; reconnect (to another instance)."""
    TRY_AGAIN_LATER = 1013
    """The client fell too far behind (slow consumer) or the room is unavailable; reconnect."""
    TOKEN_EXPIRED = 4401
    """The connection's token expired (or a refreshed one was invalid); reconnect with a
    fresh token, or refresh it in-band before `exp` to stay connected."""
    FORBIDDEN = 4403
    """Access was revoked by an operator, or a refreshed token no longer grants a role here
    (or names another user); do not reconnect with the same credentials."""
