"""Server-to-client WebSocket frames (RFC 6455 section 5.2), built once per message.

A broadcast sends the same message to every peer of a room. Framing it once and handing the
same bytes to each socket saves the per-peer header, copy and coroutine of a generic send.
Server frames are never masked, so the bytes are identical for every receiver.
"""

from __future__ import annotations

import struct

OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_PING = 0x9
_FIN = 0x80
_LEN16 = struct.Struct("!BBH")
_LEN64 = struct.Struct("!BBQ")


def encode_frame(payload: bytes, opcode: int = OPCODE_BINARY) -> bytes:
    """One final, unmasked, uncompressed frame carrying `payload`."""
    first = _FIN | opcode
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 1 << 16:
        return _LEN16.pack(first, 126, size) + payload
    return _LEN64.pack(first, 127, size) + payload


class OutgoingFrame:
    """A message on its way to one or more peers, with its wire frame built once.

    Built up front rather than on first use: reading a plain attribute for every delivery is
    cheaper than a property, and building costs one copy of the payload, also for the rare
    peers (permessage-deflate) that send the payload instead."""

    __slots__ = ("opcode", "payload", "wire")

    def __init__(self, payload: bytes, *, opcode: int = OPCODE_BINARY) -> None:
        self.payload = payload
        self.opcode = opcode
        self.wire = encode_frame(payload, opcode)
