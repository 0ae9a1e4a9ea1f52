"""The y-websocket wire messages: strict decoding and encoding, no I/O.

A frame carries exactly one message, as y-websocket and y-protocols write it:

    frame          = var_uint(message_type) payload
    sync (0)       = var_uint(0: step 1 | 1: step 2 | 2: update) var_bytes(state vector | update)
    awareness (1)  = var_bytes(var_uint(n) n * (var_uint(id) var_uint(clock) var_string(json)))
    query (3)      = (empty)
    auth (2)       = var_uint(0: permission denied, server to client | 1: token refresh,
                     client to server) var_string(reason | token)

Token refresh (auth sub-type 1) is this server's extension in y-protocols' auth message
space: stock clients never send it, and answer sub-type 0 by logging the reason.

`decode_message` returns one of the message classes below or raises `ProtocolError` (its
subclass `UnsupportedMessage` for message kinds this server does not take from clients).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import orjson
from pycrdt import create_awareness_message, create_update_message, merge_updates, write_var_uint

from collab.errors import ProtocolError, UnsupportedMessage
from collab.protocol.lib0 import Reader

__all__ = [
    "AwarenessEntry",
    "AwarenessUpdate",
    "Message",
    "MessageType",
    "QueryAwareness",
    "SyncMessageType",
    "SyncStep1",
    "SyncStep2",
    "TokenRefresh",
    "Update",
    "decode_message",
    "encode_awareness",
    "encode_permission_denied",
    "encode_sync_step1",
    "encode_sync_step2",
    "encode_token_refresh",
    "encode_update",
    "is_update_frame",
    "merge_update_frames",
    "update_payload",
]

EMPTY_UPDATE = b"\x00\x00"
# Message type 0 (sync) and sync type 2 (update), each a one-byte var_uint.
_UPDATE_FRAME_PREFIX = b"\x00\x02"
AUTH_FRAME_PREFIX = b"\x02"
"""Message type 2 (auth) as its one-byte var_uint: how a frame reader spots a refresh cheaply."""
MAX_REFRESH_TOKEN_BYTES = 8 * 1024


class MessageType(IntEnum):
    SYNC = 0
    AWARENESS = 1
    AUTH = 2
    QUERY_AWARENESS = 3


class AuthMessageType(IntEnum):
    PERMISSION_DENIED = 0
    TOKEN_REFRESH = 1


class SyncMessageType(IntEnum):
    STEP1 = 0
    STEP2 = 1
    UPDATE = 2


@dataclass(frozen=True, slots=True)
class SyncStep1:
    state_vector: bytes


@dataclass(frozen=True, slots=True)
class SyncStep2:
    update: bytes


@dataclass(frozen=True, slots=True)
class Update:
    update: bytes


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    """One client's awareness state. `state_json` is None when the client's state is removed."""

    client_id: int
    clock: int
    state_json: str | None


@dataclass(frozen=True, slots=True)
class AwarenessUpdate:
    entries: tuple[AwarenessEntry, ...]


@dataclass(frozen=True, slots=True)
class QueryAwareness:
    pass


@dataclass(frozen=True, slots=True)
class TokenRefresh:
    """A client replaces the token of its open connection."""

    token: str

    def __repr__(self) -> str:
        return "TokenRefresh(token='**********')"


Message = SyncStep1 | SyncStep2 | Update | AwarenessUpdate | QueryAwareness


def decode_message(frame: bytes, *, max_awareness_state_bytes: int = 64 * 1024) -> Message:
    """Decode one binary frame. Raises `ProtocolError` for anything malformed."""
    reader = Reader(frame)
    message_type = reader.read_var_uint()
    message: Message
    if message_type == MessageType.SYNC:
        message = _decode_sync(reader)
        reader.expect_end("a sync message")
    elif message_type == MessageType.AWARENESS:
        message = _decode_awareness(reader.read_var_bytes(), max_awareness_state_bytes)
        reader.expect_end("an awareness message")
    elif message_type == MessageType.QUERY_AWARENESS:
        message = QueryAwareness()
        reader.expect_end("a query-awareness message")
    elif message_type == MessageType.AUTH:
        raise UnsupportedMessage(
            "auth messages are handled by the connection, not the room (see decode_token_refresh)"
        )
    else:
        raise UnsupportedMessage(f"unknown message type {message_type}")
    return message


def decode_token_refresh(frame: bytes) -> TokenRefresh:
    """Decode a client's auth message, which must be a token refresh. Raises `ProtocolError`
    (`UnsupportedMessage` for other auth sub-types, which only servers send)."""
    reader = Reader(frame)
    if reader.read_var_uint() != MessageType.AUTH:
        raise UnsupportedMessage("not an auth message")
    sub_type = reader.read_var_uint()
    if sub_type != AuthMessageType.TOKEN_REFRESH:
        raise UnsupportedMessage(
            f"auth message sub-type {sub_type} is not accepted from clients (only 1, token refresh)"
        )
    if reader.remaining > MAX_REFRESH_TOKEN_BYTES + 2:
        raise ProtocolError(f"refreshed token longer than {MAX_REFRESH_TOKEN_BYTES} bytes")
    token = reader.read_var_string()
    reader.expect_end("a token refresh")
    if not token:
        raise ProtocolError("token refresh with an empty token")
    return TokenRefresh(token)


def encode_token_refresh(token: str) -> bytes:
    """What a client sends to replace its connection's token."""
    raw = token.encode()
    prefix = bytes((MessageType.AUTH, AuthMessageType.TOKEN_REFRESH))
    return prefix + write_var_uint(len(raw)) + raw


def encode_permission_denied(reason: str) -> bytes:
    """y-protocols' auth "permission denied" message (a stock client logs `reason`)."""
    raw = reason.encode()
    prefix = bytes((MessageType.AUTH, AuthMessageType.PERMISSION_DENIED))
    return prefix + write_var_uint(len(raw)) + raw


def _decode_sync(reader: Reader) -> Message:
    sync_type = reader.read_var_uint()
    payload = reader.read_var_bytes()
    if sync_type == SyncMessageType.STEP1:
        return SyncStep1(payload)
    if sync_type == SyncMessageType.STEP2:
        return SyncStep2(payload)
    if sync_type == SyncMessageType.UPDATE:
        return Update(payload)
    raise UnsupportedMessage(f"unknown sync message type {sync_type}")


def _decode_awareness(payload: bytes, max_state_bytes: int) -> AwarenessUpdate:
    reader = Reader(payload)
    count = reader.read_var_uint()
    # Each entry takes at least 3 bytes, so a count beyond that is a lie about the payload.
    if count > reader.remaining // 3:
        raise ProtocolError(f"awareness update announces {count} states in {len(payload)} bytes")
    entries = []
    for _ in range(count):
        client_id = reader.read_var_uint()
        clock = reader.read_var_uint()
        state_json = reader.read_var_bytes()
        if len(state_json) > max_state_bytes:
            raise ProtocolError(
                f"awareness state of client {client_id} is {len(state_json)} bytes; "
                f"the limit is {max_state_bytes}"
            )
        entries.append(AwarenessEntry(client_id, clock, _validate_state_json(state_json)))
    reader.expect_end("the awareness states")
    return AwarenessUpdate(tuple(entries))


def _validate_state_json(state_json: bytes) -> str | None:
    try:
        state = orjson.loads(state_json)
    except orjson.JSONDecodeError as error:
        raise ProtocolError(f"awareness state is not valid JSON: {error}") from error
    if state is None:
        return None
    if not isinstance(state, dict):
        raise ProtocolError("awareness state must be a JSON object or null")
    return state_json.decode()


def encode_sync_step1(state_vector: bytes) -> bytes:
    return _encode_sync(SyncMessageType.STEP1, state_vector)


def encode_sync_step2(update: bytes) -> bytes:
    return _encode_sync(SyncMessageType.STEP2, update)


def _encode_sync(sync_type: SyncMessageType, payload: bytes) -> bytes:
    return bytes((MessageType.SYNC, sync_type)) + write_var_uint(len(payload)) + payload


def encode_update(update: bytes) -> bytes:
    return create_update_message(update)


def encode_awareness(entries: list[AwarenessEntry] | tuple[AwarenessEntry, ...]) -> bytes:
    parts = [write_var_uint(len(entries))]
    for entry in entries:
        state = (entry.state_json if entry.state_json is not None else "null").encode()
        parts += [write_var_uint(entry.client_id), write_var_uint(entry.clock)]
        parts += [write_var_uint(len(state)), state]
    return create_awareness_message(b"".join(parts))


def is_update_frame(frame: bytes) -> bool:
    """Whether `frame` is a sync Update message (the only kind that can be merged)."""
    return frame.startswith(_UPDATE_FRAME_PREFIX)


def update_payload(frame: bytes) -> bytes | None:
    """The update a well-formed sync Update frame carries, or None for any other frame.

    Most frames a server receives are updates: this spots them without a `Reader` or a
    message object. Anything it does not recognise, malformed updates included, goes through
    `decode_message`, which says what is wrong with it."""
    if not frame.startswith(_UPDATE_FRAME_PREFIX):
        return None
    length = 0
    shift = 0
    # The payload length, a var_uint; lengths above 2**28 are left to the strict decoder.
    for position in range(2, min(len(frame), 6)):
        byte = frame[position]
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            start = position + 1
            return frame[start:] if len(frame) - start == length else None
        shift += 7
    return None


def merge_update_frames(frames: list[bytes]) -> bytes:
    """One Update message with the effect of all of `frames` (Update messages we encoded).

    Yjs updates commute, so the merge loses and reorders nothing a client can observe."""
    if len(frames) == 1:
        return frames[0]
    updates = []
    for frame in frames:
        reader = Reader(frame)
        reader.read_var_uint()
        reader.read_var_uint()
        updates.append(reader.read_var_bytes())
    return encode_update(merge_updates(*updates))
