"""A strict reader for the lib0 encodings used by y-protocols.

pycrdt's own `Decoder` trusts its input (it indexes past the end, truncates silently and
asserts), which is fine for bytes a trusted peer produced but not for bytes off the network.
This reader checks every bound and raises `ProtocolError` on anything malformed. Encoding is
left to pycrdt (`write_var_uint`, `create_*_message`). Yjs updates, read on every edit, have
their own readers by position (`collab.protocol.updates.encoding`).
"""

from __future__ import annotations

from collab.errors import ProtocolError

# lib0 writes JavaScript numbers; anything above 2**53 cannot come from a real client.
MAX_VAR_UINT = 2**53 - 1
MAX_VAR_UINT_BYTES = 8


class Reader:
    """Reads lib0 var-uints, var-byte-arrays and var-strings from a buffer, checking bounds."""

    __slots__ = ("_buffer", "_position")

    def __init__(self, buffer: bytes) -> None:
        self._buffer = buffer
        self._position = 0

    @property
    def at_end(self) -> bool:
        return self._position >= len(self._buffer)

    @property
    def remaining(self) -> int:
        return len(self._buffer) - self._position

    def read_var_uint(self) -> int:
        result = 0
        shift = 0
        for _ in range(MAX_VAR_UINT_BYTES):
            if self._position >= len(self._buffer):
                raise ProtocolError("truncated message: a variable-length integer is cut off")
            byte = self._buffer[self._position]
            self._position += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                if result > MAX_VAR_UINT:
                    raise ProtocolError("variable-length integer out of range")
                return result
            shift += 7
        raise ProtocolError("variable-length integer is too long")

    def read_var_bytes(self) -> bytes:
        length = self.read_var_uint()
        if length > self.remaining:
            raise ProtocolError(
                f"truncated message: a field announces {length} bytes but {self.remaining} remain"
            )
        start = self._position
        self._position += length
        return self._buffer[start : self._position]

    def read_var_string(self) -> str:
        raw = self.read_var_bytes()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ProtocolError("a string field is not valid UTF-8") from error

    def expect_end(self, what: str) -> None:
        if not self.at_end:
            raise ProtocolError(f"{self.remaining} unexpected trailing bytes after {what}")
