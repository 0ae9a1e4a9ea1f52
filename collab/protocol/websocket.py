"""Server-to-client WebSocket frames (RFC 6455 section 5.2), built once per message.

A broadcast sends the same message to every peer of a room. Framing it once and handing the
same bytes to each socket saves the per-peer header, copy and coroutine of a generic send.
Server frames are never masked, so the bytes are identical for every receiver.
"""

from __future__ import annotations

import struct

OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
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
    """A message on its way to one or more peers; its wire frame is built on first use only,
    so peers that cannot take pre-framed bytes (permessage-deflate) cost nothing extra."""

    __slots__ = ("_wire", "opcode", "payload")

    def __init__(self, payload: bytes, *, opcode: int = OPCODE_BINARY) -> None:
        self.payload = payload
        self.opcode = opcode
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            self._wire = encode_frame(self.payload, self.opcode)
        return self._wire
