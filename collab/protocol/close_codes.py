"""WebSocket close codes: those the server sends, and what a client should do about each;
and the other codes of RFC 6455 section 7.4, which the server only reads or reports."""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    NORMAL = 1000
    """The server ends the session on purpose; nothing went wrong."""
    GOING_AWAY = 1001
    """The peer went away."""
    PROTOCOL_ERROR = 1002
    """A frame that breaks RFC 6455 (unmasked, unknown opcode, bad fragmentation, a bad
    close frame); the client is broken."""
    UNSUPPORTED_DATA = 1003
    """A text frame or an unknown message type; a stock client never sends these."""
    NO_STATUS_RECEIVED = 1005
    """Never sent: stands for a close frame that carried no code."""
    ABNORMAL_CLOSURE = 1006
    """Never sent: stands for a connection lost without a close frame."""
    INVALID_PAYLOAD = 1007
    """A message that does not decode or applies to nothing (corrupt update, bad awareness)."""
    POLICY_VIOLATION = 1008
    """A rule was broken (e.g. too many awareness ids, disallowed origin)."""
    MESSAGE_TOO_BIG = 1009
    """A message above COLLAB_MAX_MESSAGE_BYTES."""
    MANDATORY_EXTENSION = 1010
    """Sent by clients only: the server did not agree to an extension the client needs."""
    INTERNAL_ERROR = 1011
    """The server failed; reconnecting is safe."""
    SERVICE_RESTART = 1012
    """The instance is shutting down; reconnect (to another instance)."""
    TRY_AGAIN_LATER = 1013
    """The client fell too far behind (slow consumer) or the room is unavailable; reconnect."""
    BAD_GATEWAY = 1014
    """Sent by gateways only, never by this server: the server behind it answered badly."""
    TOKEN_EXPIRED = 4401
    """The connection's token expired (or a refreshed one was invalid); reconnect with a
    fresh token, or refresh it in-band before `exp` to stay connected."""
    FORBIDDEN = 4403
    """Access was revoked by an operator, or a refreshed token no longer grants a role here
    (or names another user); do not reconnect with the same credentials."""
    NOTE_DELETED = 4404
    """The note was moved to the trash or purged; do not reconnect (the upgrade answers 404
    `note_trashed` or 410 `note_purged`) unless it is restored."""
