"""y-websocket frames: byte-exact agreement with pycrdt, and ProtocolError for anything else."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import (
    Awareness,
    Doc,
    Map,
    Text,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    handle_sync_message,
    write_message,
    write_var_uint,
)

from collab.errors import ProtocolError, UnsupportedMessage
from collab.protocol.messages import (
    AwarenessEntry,
    AwarenessUpdate,
    Message,
    MessageType,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    TokenRefresh,
    Update,
    decode_message,
    decode_token_refresh,
    encode_awareness,
    encode_permission_denied,
    encode_sync_step1,
    encode_sync_step2,
    encode_token_refresh,
    encode_update,
    update_payload,
)

FUZZ = settings(max_examples=500, deadline=None)


def edited_doc(text: str = "hello collab", client_id: int | None = None) -> Doc:
    doc = Doc() if client_id is None else Doc(client_id=client_id)
    doc.get("text", type=Text).insert(0, text)
    doc.get("meta", type=Map)["title"] = "notes"
    return doc


def awareness_payload(entries: list[tuple[int, int, bytes]]) -> bytes:
    parts = [write_var_uint(len(entries))]
    for client_id, clock, state in entries:
        parts += [write_var_uint(client_id), write_var_uint(clock), write_message(state)]
    return b"".join(parts)


def awareness_frame(entries: list[tuple[int, int, bytes]]) -> bytes:
    return bytes([MessageType.AWARENESS]) + write_message(awareness_payload(entries))


def encode(message: Message) -> bytes:
    """Encode a decoded message again from its fields."""
    if isinstance(message, SyncStep1):
        return encode_sync_step1(message.state_vector)
    if isinstance(message, SyncStep2):
        return encode_sync_step2(message.update)
    if isinstance(message, Update):
        return encode_update(message.update)
    if isinstance(message, AwarenessUpdate):
        return encode_awareness(message.entries)
    return bytes([MessageType.QUERY_AWARENESS])


# --- round trips against pycrdt's own encoders -------------------------------------------


def test_sync_step1_matches_pycrdt() -> None:
    """pycrdt's sync step 1 decodes to the doc's state vector and re-encodes byte for byte."""
    doc = edited_doc()
    frame = create_sync_message(doc)
    message = decode_message(frame)
    assert message == SyncStep1(doc.get_state())
    assert encode_sync_step1(doc.get_state()) == frame


def test_sync_step2_matches_pycrdt() -> None:
    """pycrdt's reply to a step 1 decodes to SyncStep2 and re-encodes byte for byte."""
    doc = edited_doc()
    remote_step1 = create_sync_message(Doc())
    frame = handle_sync_message(remote_step1[1:], doc)
    assert frame is not None
    message = decode_message(frame)
    assert message == SyncStep2(doc.get_update(Doc().get_state()))
    assert isinstance(message, SyncStep2)
    assert encode_sync_step2(message.update) == frame


def test_update_matches_pycrdt() -> None:
    """pycrdt's update message decodes to Update and `encode_update` gives the same bytes."""
    update = edited_doc().get_update()
    frame = create_update_message(update)
    assert decode_message(frame) == Update(update)
    assert encode_update(update) == frame


def test_large_update_uses_a_multibyte_length_prefix() -> None:
    """An update over 127 bytes (multi-byte length) still matches pycrdt both ways."""
    update = edited_doc("x" * 5000).get_update()
    frame = create_update_message(update)
    assert decode_message(frame) == Update(update)
    assert encode_update(update) == frame


def test_awareness_matches_pycrdt() -> None:
    """pycrdt's awareness update of two clients decodes entry by entry and re-encodes exactly."""
    local_doc, remote_doc = Doc(), Doc()
    local, remote = Awareness(local_doc), Awareness(remote_doc)
    local.set_local_state({"user": {"name": "Ada", "color": "#f00"}})
    remote.set_local_state({"user": {"name": "Grace"}, "cursor": None})
    local.apply_awareness_update(remote.encode_awareness_update([remote_doc.client_id]), "test")
    client_ids = [local_doc.client_id, remote_doc.client_id]
    frame = create_awareness_message(local.encode_awareness_update(client_ids))

    message = decode_message(frame)

    assert isinstance(message, AwarenessUpdate)
    assert [(e.client_id, e.clock) for e in message.entries] == [
        (client_id, local.meta[client_id]["clock"]) for client_id in client_ids
    ]
    assert [json.loads(e.state_json or "") for e in message.entries] == [
        local.states[client_id] for client_id in client_ids
    ]
    assert encode_awareness(message.entries) == frame


def test_awareness_removal_matches_pycrdt() -> None:
    """pycrdt's removal (state null) decodes to a None state and re-encodes exactly."""
    doc = Doc()
    awareness = Awareness(doc)
    awareness.set_local_state({"user": "Ada"})
    awareness.set_local_state(None)
    frame = create_awareness_message(awareness.encode_awareness_update([doc.client_id]))
    message = decode_message(frame)
    assert message == AwarenessUpdate(
        (AwarenessEntry(doc.client_id, awareness.meta[doc.client_id]["clock"], None),)
    )
    assert encode_awareness(message.entries) == frame


def test_awareness_state_with_raw_utf8_round_trips() -> None:
    """A state with unescaped non-ASCII text (as JSON.stringify writes it) keeps its bytes."""
    state = '{"user":{"name":"Zoë 🦊"}}'
    frame = awareness_frame([(7, 3, state.encode())])
    message = decode_message(frame)
    assert message == AwarenessUpdate((AwarenessEntry(7, 3, state),))
    assert encode_awareness(message.entries) == frame


def test_query_awareness_decodes() -> None:
    """A lone message type 3 is a QueryAwareness."""
    assert decode_message(b"\x03") == QueryAwareness()


def test_empty_awareness_update_round_trips() -> None:
    """An awareness update with no entries decodes and re-encodes to the same bytes."""
    frame = awareness_frame([])
    assert decode_message(frame) == AwarenessUpdate(())
    assert encode_awareness(()) == frame


# --- malformed frames -------------------------------------------------------------------


def test_empty_frame_is_refused() -> None:
    """An empty frame raises ProtocolError saying the message type is cut off."""
    with pytest.raises(ProtocolError, match="truncated message"):
        decode_message(b"")


@pytest.mark.parametrize("frame", [b"\x80", b"\x00\x80", b"\x00\x02\x85"])
def test_truncated_var_uint_is_refused(frame: bytes) -> None:
    """A var-uint cut off inside the frame raises ProtocolError."""
    with pytest.raises(ProtocolError, match="variable-length integer is cut off"):
        decode_message(frame)


def test_overlong_var_uint_is_refused() -> None:
    """A message type of nine var-uint bytes raises ProtocolError (too long)."""
    with pytest.raises(ProtocolError, match="too long"):
        decode_message(b"\x80" * 8 + b"\x00")


def test_length_prefix_beyond_the_end_is_refused() -> None:
    """An update announcing more bytes than the frame holds raises ProtocolError."""
    with pytest.raises(ProtocolError, match="announces 5 bytes but 2 remain"):
        decode_message(b"\x00\x02\x05ab")


@pytest.mark.parametrize(
    ("frame", "context"),
    [
        (create_update_message(b"\x00\x00") + b"\x00", "a sync message"),
        (create_sync_message(Doc()) + b"\x01\x02", "a sync message"),
        (awareness_frame([(1, 1, b"{}")]) + b"\x00", "an awareness message"),
        (b"\x03\x00", "a query-awareness message"),
    ],
)
def test_trailing_bytes_after_a_message_are_refused(frame: bytes, context: str) -> None:
    """Bytes after a complete message raise ProtocolError naming the message kind."""
    with pytest.raises(ProtocolError, match=f"trailing bytes after {context}"):
        decode_message(frame)


def test_trailing_bytes_inside_the_awareness_payload_are_refused() -> None:
    """Bytes after the announced awareness entries raise ProtocolError."""
    payload = awareness_payload([(1, 1, b"{}")]) + b"\x00"
    frame = bytes([MessageType.AWARENESS]) + write_message(payload)
    with pytest.raises(ProtocolError, match="trailing bytes after the awareness states"):
        decode_message(frame)


@pytest.mark.parametrize("message_type", [4, 5, 127, 128, 2**40])
def test_unknown_message_type_is_unsupported(message_type: int) -> None:
    """A message type beyond 0-3 raises UnsupportedMessage naming the type."""
    with pytest.raises(UnsupportedMessage, match=f"unknown message type {message_type}"):
        decode_message(write_var_uint(message_type) + b"\x00")


def test_unknown_sync_subtype_is_unsupported() -> None:
    """A sync message of subtype 3 raises UnsupportedMessage naming the subtype."""
    with pytest.raises(UnsupportedMessage, match="unknown sync message type 3"):
        decode_message(b"\x00\x03\x00")


def test_auth_message_is_not_a_room_message() -> None:
    """Message type 2 (auth) never reaches a room: `decode_message` raises UnsupportedMessage."""
    with pytest.raises(UnsupportedMessage, match="auth messages are handled by the connection"):
        decode_message(encode_token_refresh("a.b.c"))


def test_token_refresh_round_trips() -> None:
    """`[2][1][var_string token]` decodes to the token it carries."""
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.sig-" + "x" * 200
    frame = encode_token_refresh(token)
    assert frame[:2] == b"\x02\x01"
    assert decode_token_refresh(frame) == TokenRefresh(token)
    assert token not in repr(TokenRefresh(token))


def test_permission_denied_from_a_client_is_unsupported() -> None:
    """Auth sub-type 0 (permission denied) is the server's: a client's is UnsupportedMessage."""
    with pytest.raises(UnsupportedMessage, match="sub-type 0 is not accepted from clients"):
        decode_token_refresh(encode_permission_denied("no"))


def test_unknown_auth_sub_type_is_unsupported() -> None:
    """An auth sub-type this server does not know raises UnsupportedMessage naming it."""
    with pytest.raises(UnsupportedMessage, match="sub-type 7"):
        decode_token_refresh(b"\x02\x07\x00")


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\x02\x01", "truncated"),
        (b"\x02\x01\x05abc", "truncated"),
        (b"\x02\x01\x00", "empty token"),
        (b"\x02\x01\x02\xff\xfe", "not valid UTF-8"),
        (b"\x02\x01\x01ab", "trailing bytes"),
        (b"\x02\x01" + write_var_uint(9000) + b"t" * 9000, "longer than 8192 bytes"),
    ],
)
def test_malformed_token_refresh_is_refused(frame: bytes, reason: str) -> None:
    """A truncated, empty, non-UTF-8, padded or oversized refresh raises ProtocolError."""
    with pytest.raises(ProtocolError, match=reason):
        decode_token_refresh(frame)


@FUZZ
@given(st.binary(max_size=64))
def test_token_refresh_decoder_raises_only_protocol_error(tail: bytes) -> None:
    """Any bytes after the auth type either decode or raise ProtocolError, nothing else."""
    try:
        decode_token_refresh(b"\x02" + tail)
    except ProtocolError:
        pass


def test_permission_denied_is_what_y_protocols_writes() -> None:
    """`[2][0][var_string reason]`, as y-protocols/auth's writePermissionDenied frames it."""
    assert encode_permission_denied("token expired") == b"\x02\x00\x0dtoken expired"


def test_awareness_count_beyond_its_payload_is_refused() -> None:
    """A count of entries that cannot fit in the payload raises ProtocolError before looping."""
    payload = write_var_uint(1_000_000) + awareness_payload([(1, 1, b"{}")])[1:]
    frame = bytes([MessageType.AWARENESS]) + write_message(payload)
    with pytest.raises(ProtocolError, match="announces 1000000 states"):
        decode_message(frame)


def test_awareness_count_above_its_entries_is_refused() -> None:
    """A count that fits the payload size but exceeds its entries raises ProtocolError."""
    payload = write_var_uint(2) + awareness_payload([(1, 1, b'{"name":"Ada Lovelace"}')])[1:]
    frame = bytes([MessageType.AWARENESS]) + write_message(payload)
    with pytest.raises(ProtocolError, match="truncated message"):
        decode_message(frame)


@pytest.mark.parametrize("state", [b"{", b"", b"{'a': 1}", b"NaN", b"{} {}"])
def test_awareness_state_that_is_not_json_is_refused(state: bytes) -> None:
    """A state that does not parse as JSON raises ProtocolError saying so."""
    with pytest.raises(ProtocolError, match="not valid JSON"):
        decode_message(awareness_frame([(1, 1, state)]))


@pytest.mark.parametrize("state", [b"[1]", b"3", b'"text"', b"true", b"[]"])
def test_awareness_state_that_is_not_an_object_is_refused(state: bytes) -> None:
    """A JSON state that is neither an object nor null raises ProtocolError saying so."""
    with pytest.raises(ProtocolError, match="must be a JSON object or null"):
        decode_message(awareness_frame([(1, 1, state)]))


def test_awareness_state_over_the_limit_is_refused() -> None:
    """A state one byte over the limit raises ProtocolError naming the client, size and limit."""
    state = b'{"k":"' + b"x" * 57 + b'"}'
    assert len(state) == 65
    with pytest.raises(ProtocolError, match="client 9 is 65 bytes; the limit is 64"):
        decode_message(awareness_frame([(9, 1, state)]), max_awareness_state_bytes=64)


def test_awareness_state_at_the_limit_is_accepted() -> None:
    """A state of exactly the limit decodes."""
    state = b'{"k":"' + b"x" * 56 + b'"}'
    message = decode_message(awareness_frame([(9, 1, state)]), max_awareness_state_bytes=64)
    assert message == AwarenessUpdate((AwarenessEntry(9, 1, state.decode()),))


@pytest.mark.parametrize("state", [b'{"name":"\xff"}', b'{"name":"\xed\xa0\x80"}'])
def test_awareness_state_with_invalid_utf8_is_refused(state: bytes) -> None:
    """A state that is not UTF-8 raises ProtocolError, not UnicodeDecodeError."""
    with pytest.raises(ProtocolError, match="not valid JSON"):
        decode_message(awareness_frame([(1, 1, state)]))


# --- properties -------------------------------------------------------------------------


@st.composite
def valid_frames(draw: st.DrawFn) -> bytes:
    """A frame a real client could send: sync messages from pycrdt docs, or awareness."""
    kind = draw(st.sampled_from(["step1", "step2", "update", "awareness", "query"]))
    if kind == "query":
        return b"\x03"
    if kind == "awareness":
        entries = draw(
            st.lists(
                st.tuples(
                    st.integers(0, 2**53 - 1),
                    st.integers(0, 2**32),
                    st.one_of(
                        st.none(),
                        st.dictionaries(
                            st.text(max_size=8),
                            st.one_of(st.integers(-(2**31), 2**31), st.text(max_size=12)),
                            max_size=3,
                        ),
                    ),
                ),
                max_size=4,
            )
        )
        payload = awareness_payload(
            [(c, k, json.dumps(s, separators=(",", ":")).encode()) for c, k, s in entries]
        )
        return bytes([MessageType.AWARENESS]) + write_message(payload)
    # A drawn client id keeps the frame, and so the mutations drawn from it, reproducible.
    doc = Doc(client_id=draw(st.integers(1, 2**32)))
    text = doc.get("text", type=Text)
    for position, chunk in draw(
        st.lists(st.tuples(st.integers(0, 50), st.text("abcxyz ", max_size=10)), max_size=4)
    ):
        text.insert(min(position, len(text)), chunk)
    if draw(st.booleans()) and len(text) > 1:
        del text[0:1]
    if kind == "step1":
        return create_sync_message(doc)
    if kind == "step2":
        reply = handle_sync_message(create_sync_message(Doc())[1:], doc)
        assert reply is not None
        return reply
    return create_update_message(doc.get_update())


@st.composite
def mutated(draw: st.DrawFn, frames: st.SearchStrategy[bytes]) -> bytes:
    """A frame with random byte replacements, insertions, deletions and truncations."""
    frame = bytearray(draw(frames))
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
        position = draw(st.integers(0, len(frame)))
        if operation == "replace" and frame:
            frame[min(position, len(frame) - 1)] = draw(st.integers(0, 255))
        elif operation == "insert":
            frame[position:position] = draw(st.binary(min_size=1, max_size=4))
        elif operation == "delete":
            del frame[position : position + draw(st.integers(1, 4))]
        else:
            del frame[position:]
    return bytes(frame)


MESSAGE_TYPES = (SyncStep1, SyncStep2, Update, AwarenessUpdate, QueryAwareness)


def decodes_or_raises_protocol_error(frame: bytes) -> Message | None:
    """The decoded message, or None after a ProtocolError that explains itself."""
    try:
        message = decode_message(frame)
    except ProtocolError as error:
        explanation = str(error)
    else:
        assert isinstance(
            message, SyncStep1 | SyncStep2 | Update | AwarenessUpdate | QueryAwareness
        )
        return message
    assert explanation, "a ProtocolError must say what is wrong"
    return None


@FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_protocol_error(frame: bytes) -> None:
    """Any bytes give a Message or a ProtocolError with a message, and nothing else."""
    message = decodes_or_raises_protocol_error(frame)
    assert message is None or isinstance(message, MESSAGE_TYPES)


@FUZZ
@given(mutated(valid_frames()))
def test_mutated_valid_frames_decode_or_raise_protocol_error(frame: bytes) -> None:
    """Valid frames with random mutations give a Message or a ProtocolError, nothing else."""
    message = decodes_or_raises_protocol_error(frame)
    assert message is None or isinstance(message, MESSAGE_TYPES)


@FUZZ
@given(valid_frames())
def test_valid_frames_decode(frame: bytes) -> None:
    """Every frame built with pycrdt's encoders decodes and re-encodes to the same bytes."""
    message = decode_message(frame)
    assert encode(message) == frame


@FUZZ
@given(st.one_of(valid_frames(), mutated(valid_frames()), st.binary(max_size=64)))
def test_decoded_messages_re_encode_to_an_equal_message(frame: bytes) -> None:
    """Re-encoding any decoded message from its fields decodes back to an equal message."""
    message = decodes_or_raises_protocol_error(frame)
    if message is not None:
        assert decode_message(encode(message)) == message


# --- spotting update frames without decoding them ------------------------------------------


@FUZZ
@given(st.one_of(valid_frames(), mutated(valid_frames()), st.binary(max_size=64)))
def test_update_payload_agrees_with_the_strict_decoder(frame: bytes) -> None:
    """Where `update_payload` finds an update, `decode_message` decodes the same Update;
    where it finds none, the frame is no well-formed Update, or one whose length prefix is
    longer than 4 bytes (left to the strict decoder)."""
    payload = update_payload(frame)
    if payload is not None:
        assert decode_message(frame) == Update(payload)
    elif isinstance(decodes_or_raises_protocol_error(frame), Update):
        assert all(byte >= 0x80 for byte in frame[2:6])


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16_383, 16_384, 300_000])
def test_update_payload_reads_every_length_prefix(size: int) -> None:
    """One-, two- and three-byte length prefixes; a byte more or less is no update frame."""
    update = bytes(range(256)) * (size // 256) + bytes(size % 256)
    frame = encode_update(update)
    assert update_payload(frame) == update
    assert update_payload(frame + b"\x00") is None
    if size:
        assert update_payload(frame[:-1]) is None


@pytest.mark.parametrize(
    "frame",
    [b"", b"\x00", b"\x00\x02", b"\x00\x02\x80", encode_sync_step2(b"\x00\x00"), b"\x03"],
)
def test_update_payload_ignores_other_and_cut_frames(frame: bytes) -> None:
    assert update_payload(frame) is None
