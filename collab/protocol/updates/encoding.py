"""The encoding of Yjs v1 updates: the numbers that tag their parts (content kinds, info
flags, `any` tags) and their lib0 fields, read by position.

Each reader takes the buffer and a position, returns (value, next position) and raises
`InvalidUpdate`: a typing update is read in a few microseconds only without objects or method
calls per field. `collab.protocol.lib0.Reader` reads the same encodings, with the same limits,
in y-protocols messages (a few fields each), and raises their error, `ProtocolError`.
"""

from __future__ import annotations

import functools
import re

from collab.protocol.lib0 import MAX_VAR_UINT, MAX_VAR_UINT_BYTES
from collab.protocol.updates.shape import _fail

_CONTENT_DELETED = 1
_CONTENT_JSON = 2
_CONTENT_BINARY = 3
_CONTENT_STRING = 4
_CONTENT_EMBED = 5
_CONTENT_FORMAT = 6
_CONTENT_TYPE = 7
_CONTENT_ANY = 8
_CONTENT_DOC = 9
_SKIP = 10
_TYPE_XML_ELEMENT = 3
_TYPE_XML_HOOK = 5
_MAX_TYPE_REF = 6
_HAS_ORIGIN = 0x80
_HAS_RIGHT_ORIGIN = 0x40
_HAS_PARENT_SUB = 0x20
_ANY_OBJECT = 118
_ANY_STRING = 119


def _uint(buf: bytes, pos: int) -> tuple[int, int]:
    """A lib0 var_uint at `pos`."""
    try:
        byte = buf[pos]
        if byte < 0x80:
            return byte, pos + 1
        # Unrolled to five bytes: random 32-bit client ids (yjs) take five, in every struct,
        # reference and delete set.
        result = byte & 0x7F
        byte = buf[pos + 1]
        if byte < 0x80:
            return result | byte << 7, pos + 2
        result |= (byte & 0x7F) << 7
        byte = buf[pos + 2]
        if byte < 0x80:
            return result | byte << 14, pos + 3
        result |= (byte & 0x7F) << 14
        byte = buf[pos + 3]
        if byte < 0x80:
            return result | byte << 21, pos + 4
        result |= (byte & 0x7F) << 21
        byte = buf[pos + 4]
        if byte < 0x80:
            return result | byte << 28, pos + 5
    except IndexError:
        raise _fail("truncated: a variable-length integer is cut off") from None
    return _uint_long(buf, pos)


# Up to eight bytes with the continuation bit, ending with one without (lib0 writes at most 8
# for a JavaScript integer).
_LONG_VAR_UINT = re.compile(rb"[\x80-\xff]{0,7}[\x00-\x7f]")


def _uint_long(buf: bytes, pos: int) -> tuple[int, int]:
    """A var_uint of six bytes or more: pycrdt's client ids (random 53-bit) in every struct,
    reference and delete set. The same few recur in every update of a room, so their values
    are kept (`_var_uint_value`) rather than decoded byte by byte."""
    match = _LONG_VAR_UINT.match(buf, pos)
    if match is None:
        if len(buf) - pos < MAX_VAR_UINT_BYTES:
            raise _fail("truncated: a variable-length integer is cut off")
        raise _fail("a variable-length integer is longer than 8 bytes")
    end = match.end()
    return _var_uint_value(buf[pos:end]), end


@functools.lru_cache(maxsize=4096)
def _var_uint_value(raw: bytes) -> int:
    value = 0
    for index, byte in enumerate(raw):
        value |= (byte & 0x7F) << (7 * index)
    if value > MAX_VAR_UINT:
        raise _fail(f"integer {value} above 2**53 - 1")
    return value


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _count(buf: bytes, pos: int, what: str, min_bytes_each: int) -> tuple[int, int]:
    """A var_uint count of things that each take at least `min_bytes_each` bytes."""
    value, pos = _uint(buf, pos)
    if value * min_bytes_each > len(buf) - pos:
        raise _fail(f"{value} {what} announced in {len(buf) - pos} bytes")
    return value, pos


def _raw(buf: bytes, pos: int, length: int) -> tuple[bytes, int]:
    stop = pos + length
    if stop > len(buf):
        raise _fail(f"truncated: a field announces {length} bytes, {len(buf) - pos} remain")
    return buf[pos:stop], stop


def _string(buf: bytes, pos: int) -> tuple[str, int]:
    length, pos = _uint(buf, pos)
    raw, pos = _raw(buf, pos, length)
    if raw.isascii():
        return raw.decode("ascii"), pos
    try:
        return raw.decode("utf-8"), pos
    except UnicodeDecodeError:
        raise _fail("a string is not valid UTF-8 (yjs refuses it)") from None


def _string_utf16_length(buf: bytes, pos: int) -> tuple[int, int]:
    """Skip a string; return its length in UTF-16 code units, as yjs counts clocks."""
    length, pos = _uint(buf, pos)
    raw, pos = _raw(buf, pos, length)
    if raw.isascii():
        return length, pos
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail("a string is not valid UTF-8 (yjs refuses it)") from None
    # Code points above the BMP take two UTF-16 units.
    return len(text) + sum(1 for char in text if char > "\uffff"), pos
