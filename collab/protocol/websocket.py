"""WebSocket framing (RFC 6455), no I/O: the handshake's accept key, client frames in
(`FrameParser`), server frames out (`OutgoingFrame`, `encode_frame`, `encode_close`).

A broadcast sends the same message to every peer of a room. Framing it once and handing the
same bytes to each socket saves the per-peer header, copy and call of a generic send. Server
frames are never masked, so the bytes are identical for every receiver; with
permessage-deflate they are too, because the server never keeps its compression context
between messages (`server_no_context_takeover`), so a message deflates the same for everyone.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Callable

from collab.errors import ProtocolError
from collab.protocol.close_codes import CloseCode
from collab.protocol.ws_deflate import InflateError, Inflater, MessageTooLarge, deflate_message

OPCODE_CONTINUATION = 0x0
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8
OPCODE_PING = 0x9
OPCODE_PONG = 0xA
_KNOWN_OPCODES = frozenset(
    (OPCODE_CONTINUATION, OPCODE_TEXT, OPCODE_BINARY, OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG)
)
_FIN = 0x80
_RSV1 = 0x40
_RSV_ALL = 0x70
_MASKED = 0x80
_LEN16 = struct.Struct("!BBH")
_LEN64 = struct.Struct("!BBQ")
_UINT16 = struct.Struct("!H")
_UINT64 = struct.Struct("!Q")
MAX_CONTROL_PAYLOAD = 125
# RFC 6455 section 7.4: the codes below 3000 a peer may send in a close frame.
_SENDABLE_CLOSE_CODES = frozenset(
    (
        CloseCode.NORMAL,
        CloseCode.GOING_AWAY,
        CloseCode.PROTOCOL_ERROR,
        CloseCode.UNSUPPORTED_DATA,
        CloseCode.INVALID_PAYLOAD,
        CloseCode.POLICY_VIOLATION,
        CloseCode.MESSAGE_TOO_BIG,
        CloseCode.MANDATORY_EXTENSION,
        CloseCode.INTERNAL_ERROR,
        CloseCode.SERVICE_RESTART,
        CloseCode.TRY_AGAIN_LATER,
        CloseCode.BAD_GATEWAY,
    )
)

_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(client_key: str) -> str:
    """`Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`."""
    return base64.b64encode(hashlib.sha1(client_key.encode() + _ACCEPT_GUID).digest()).decode()


def valid_client_key(client_key: str) -> bool:
    """A `Sec-WebSocket-Key` is 16 random bytes, base64-encoded."""
    try:
        return len(base64.b64decode(client_key, validate=True)) == 16
    except ValueError:
        return False


class FrameError(ProtocolError):
    """The client broke the framing protocol (or sent a message over the size limit); the
    connection closes with `code` and this reason."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _unmask_python(data: bytes, mask: bytes) -> bytes:
    size = len(data)
    key = int.from_bytes(mask * (size // 4 + 1), "little") & ((1 << (8 * size)) - 1)
    return (int.from_bytes(data, "little") ^ key).to_bytes(size, "little")


_unmask: Callable[[bytes, bytes], bytes]
try:
    # websockets' C helper: unmasking is the one per-byte loop on the receive path.
    from websockets.speedups import apply_mask as _unmask
except ImportError:  # pragma: no cover - a platform without the compiled helper
    _unmask = _unmask_python


class FrameParser:
    """Client frames in, whole messages out: `feed(data)` returns the `(opcode, payload)` of
    every message completed by `data`, control frames included, in order.

    Fragments are joined, payloads unmasked and, for a connection that negotiated
    permessage-deflate, inflated. A message (joined, inflated) larger than
    `max_message_bytes` raises `FrameError` 1009 as soon as its header announces it, before
    its payload is buffered; any other violation raises 1002 (or 1007 for a text message that
    is not UTF-8). After an error the parser must not be fed again.

    The common case, one whole frame per read with nothing buffered, takes one short path
    with no copy of the buffer."""

    __slots__ = (
        "_buffer",
        "_buffer_needed",
        "_fragments",
        "_fragments_compressed",
        "_fragments_opcode",
        "_fragments_size",
        "_inflater",
        "_max",
    )

    def __init__(self, max_message_bytes: int, inflater: Inflater | None = None) -> None:
        self._max = max_message_bytes
        self._inflater = inflater
        # Bytes of an incomplete frame, and how many it takes to complete it (while its header
        # is incomplete: just enough to read the header again). A large message arriving in
        # many reads is appended, not copied again on every read. None while there are none:
        # most connections are idle between whole frames.
        self._buffer: bytearray | None = None
        self._buffer_needed = 0
        self._fragments: list[bytes] | None = None
        self._fragments_opcode = 0
        self._fragments_size = 0
        self._fragments_compressed = False

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        if self._buffer:
            self._buffer += data
            if len(self._buffer) < self._buffer_needed:
                return []
            data = bytes(self._buffer)
            self._buffer = None
        messages: list[tuple[int, bytes]] = []
        position = 0
        end = len(data)
        needed = 2
        while end - position >= 2:
            first = data[position]
            second = data[position + 1]
            if not second & _MASKED:
                raise FrameError(CloseCode.PROTOCOL_ERROR, "client frames must be masked")
            size = second & 0x7F
            header = position + 2
            if size == 126:
                if end - header < 2:
                    needed = 4
                    break
                size = _UINT16.unpack_from(data, header)[0]
                header += 2
            elif size == 127:
                if end - header < 8:
                    needed = 10
                    break
                size = _UINT64.unpack_from(data, header)[0]
                header += 8
            opcode = first & 0x0F
            self._check_header(first, opcode, size)
            payload_at = header + 4
            if end - payload_at < size:
                needed = payload_at + size - position
                break
            payload = data[payload_at : payload_at + size]
            if size:
                payload = _unmask(payload, data[header:payload_at])
            position = payload_at + size
            message = self._frame(first, opcode, payload)
            if message is not None:
                messages.append(message)
        if position < end:
            self._buffer = bytearray(data[position:])
            self._buffer_needed = needed
        return messages

    def _check_header(self, first: int, opcode: int, size: int) -> None:
        if opcode not in _KNOWN_OPCODES:
            raise FrameError(CloseCode.PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
        rsv = first & _RSV_ALL
        if rsv and (
            rsv != _RSV1 or self._inflater is None or opcode not in (OPCODE_TEXT, OPCODE_BINARY)
        ):
            raise FrameError(
                CloseCode.PROTOCOL_ERROR, "reserved bits set without a negotiated extension"
            )
        if opcode >= OPCODE_CLOSE:
            if not first & _FIN:
                raise FrameError(CloseCode.PROTOCOL_ERROR, "control frames must not be fragmented")
            if size > MAX_CONTROL_PAYLOAD:
                raise FrameError(CloseCode.PROTOCOL_ERROR, "control frames carry at most 125 bytes")
            return
        if opcode == OPCODE_CONTINUATION:
            if self._fragments is None:
                raise FrameError(
                    CloseCode.PROTOCOL_ERROR, "continuation frame without a message to continue"
                )
            size += self._fragments_size
        elif self._fragments is not None:
            raise FrameError(
                CloseCode.PROTOCOL_ERROR, "new message before the previous one's last fragment"
            )
        if size > self._max:
            raise FrameError(CloseCode.MESSAGE_TOO_BIG, f"message larger than {self._max} bytes")

    def _frame(self, first: int, opcode: int, payload: bytes) -> tuple[int, bytes] | None:
        if opcode >= OPCODE_CLOSE:
            return opcode, payload
        if opcode != OPCODE_CONTINUATION:
            compressed = bool(first & _RSV1)
            if first & _FIN:
                return self._message(opcode, payload, compressed)
            self._fragments = [payload]
            self._fragments_opcode = opcode
            self._fragments_size = len(payload)
            self._fragments_compressed = compressed
            return None
        fragments = self._fragments
        assert fragments is not None  # checked in _check_header
        fragments.append(payload)
        self._fragments_size += len(payload)
        if not first & _FIN:
            return None
        self._fragments = None
        return self._message(
            self._fragments_opcode, b"".join(fragments), self._fragments_compressed
        )

    def _message(self, opcode: int, payload: bytes, compressed: bool) -> tuple[int, bytes]:
        if compressed:
            assert self._inflater is not None  # checked in _check_header
            try:
                payload = self._inflater.inflate(payload, self._max)
            except MessageTooLarge as error:
                raise FrameError(CloseCode.MESSAGE_TOO_BIG, str(error)) from None
            except InflateError as error:
                raise FrameError(CloseCode.INVALID_PAYLOAD, str(error)) from None
        if opcode == OPCODE_TEXT:
            try:
                payload.decode()
            except UnicodeDecodeError:
                raise FrameError(
                    CloseCode.INVALID_PAYLOAD, "text message is not valid UTF-8"
                ) from None
        return opcode, payload


def parse_close(payload: bytes) -> tuple[int, str]:
    """The code and reason of a client's close frame (1005 when it carries none)."""
    if not payload:
        return CloseCode.NO_STATUS_RECEIVED, ""
    if len(payload) == 1:
        raise FrameError(CloseCode.PROTOCOL_ERROR, "close frame with a one-byte payload")
    code = _UINT16.unpack_from(payload)[0]
    if code not in _SENDABLE_CLOSE_CODES and not 3000 <= code <= 4999:
        raise FrameError(CloseCode.PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise FrameError(CloseCode.INVALID_PAYLOAD, "close reason is not valid UTF-8") from None
    return code, reason


def encode_frame(payload: bytes, opcode: int = OPCODE_BINARY, *, compressed: bool = False) -> bytes:
    """One final, unmasked frame carrying `payload` (already deflated if `compressed`)."""
    first = _FIN | opcode | (_RSV1 if compressed else 0)
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 1 << 16:
        return _LEN16.pack(first, 126, size) + payload
    return _LEN64.pack(first, 127, size) + payload


MAX_CLOSE_REASON_BYTES = MAX_CONTROL_PAYLOAD - 2


def encode_close(code: int, reason: str = "") -> bytes:
    """A close frame; the reason is cut to fit the 125-byte control payload, at a character
    boundary so it stays UTF-8."""
    encoded = reason.encode()[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore").encode()
    return encode_frame(_UINT16.pack(code) + encoded, OPCODE_CLOSE)


class OutgoingFrame:
    """A message on its way to one or more peers, with its wire frame built once.

    Built up front rather than on first use: reading a plain attribute for every delivery is
    cheaper than a property. The deflated frame, for peers that negotiated permessage-deflate,
    is built on first use and then shared by all of them."""

    __slots__ = ("_deflated", "opcode", "payload", "wire")

    def __init__(self, payload: bytes, *, opcode: int = OPCODE_BINARY) -> None:
        self.payload = payload
        self.opcode = opcode
        self.wire = encode_frame(payload, opcode)
        self._deflated: dict[int, bytes] | None = None

    def deflated_wire(self, window_bits: int) -> bytes:
        """The frame with its payload deflated for a peer whose server window is
        `window_bits`."""
        if self._deflated is None:
            self._deflated = {}
        wire = self._deflated.get(window_bits)
        if wire is None:
            wire = encode_frame(
                deflate_message(self.payload, window_bits), self.opcode, compressed=True
            )
            self._deflated[window_bits] = wire
        return wire
