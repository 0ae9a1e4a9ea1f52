"""`FrameParser` reads what a real client sends (frames built by the `websockets` library's
client side, masked, fragmented, deflated) and refuses every RFC 6455 violation with the
close code the RFC names."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode

from collab.protocol.websocket import (
    OPCODE_BINARY,
    OPCODE_CLOSE,
    OPCODE_PING,
    OPCODE_TEXT,
    FrameError,
    FrameParser,
    OutgoingFrame,
    encode_close,
    parse_close,
)
from collab.protocol.ws_deflate import Inflater, negotiate

LIMIT = 1 << 20


def client_frame(
    opcode: Opcode, data: bytes, *, fin: bool = True, deflate: PerMessageDeflate | None = None
) -> bytes:
    return Frame(opcode, data, fin).serialize(
        mask=True, extensions=[deflate] if deflate is not None else None
    )


def client_deflate() -> PerMessageDeflate:
    """A client's side of `permessage-deflate` with context takeover both ways."""
    return PerMessageDeflate(False, False, 15, 15)


def feed_all(parser: FrameParser, wire: bytes, chunks: list[int]) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    position = 0
    for size in chunks:
        out += parser.feed(wire[position : position + size])
        position += size
    out += parser.feed(wire[position:])
    return out


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 300_000])
def test_a_masked_frame_of_every_length_class_reads_back(size: int) -> None:
    payload = os.urandom(size)
    assert FrameParser(LIMIT).feed(client_frame(Opcode.BINARY, payload)) == [
        (OPCODE_BINARY, payload)
    ]


@given(
    payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=30),
)
def test_frames_read_back_however_the_bytes_are_split(
    payloads: list[bytes], cuts: list[int]
) -> None:
    wire = b"".join(client_frame(Opcode.BINARY, payload) for payload in payloads)
    got = feed_all(FrameParser(LIMIT), wire, cuts)
    assert got == [(OPCODE_BINARY, payload) for payload in payloads]


def test_a_large_message_arriving_in_many_reads_comes_out_once_whole() -> None:
    payload = os.urandom(LIMIT - 1000)
    wire = client_frame(Opcode.BINARY, payload) + client_frame(Opcode.PING, b"after")
    parser = FrameParser(LIMIT)
    out: list[tuple[int, bytes]] = []
    for start in range(0, len(wire), 4096):
        got = parser.feed(wire[start : start + 4096])
        assert got == [] or start + 4096 >= len(wire)
        out += got
    assert out == [(OPCODE_BINARY, payload), (OPCODE_PING, b"after")]


def test_fragments_are_joined_and_control_frames_between_them_come_out_first() -> None:
    wire = (
        client_frame(Opcode.TEXT, b'{"a":', fin=False)
        + client_frame(Opcode.PING, b"p")
        + client_frame(Opcode.CONT, b"1", fin=False)
        + client_frame(Opcode.CONT, b"}")
    )
    assert FrameParser(LIMIT).feed(wire) == [(OPCODE_PING, b"p"), (OPCODE_TEXT, b'{"a":1}')]


def unmasked(opcode: int, payload: bytes) -> bytes:
    return bytes((0x80 | opcode, len(payload))) + payload


def masked_header(first: int, size: int) -> bytes:
    if size < 126:
        return bytes((first, 0x80 | size)) + b"\x00" * 4
    return struct.pack("!BBQ", first, 0x80 | 127, size) + b"\x00" * 4


@pytest.mark.parametrize(
    ("wire", "code", "reason"),
    [
        (unmasked(OPCODE_BINARY, b"x"), 1002, "must be masked"),
        (masked_header(0x83, 0), 1002, "unknown opcode"),
        (masked_header(0x80 | 0x40 | OPCODE_BINARY, 0), 1002, "reserved bits"),
        (masked_header(OPCODE_PING, 0), 1002, "must not be fragmented"),
        (masked_header(0x80 | OPCODE_PING, 126), 1002, "at most 125"),
        (client_frame(Opcode.CONT, b"x"), 1002, "without a message"),
        (
            client_frame(Opcode.BINARY, b"x", fin=False) + client_frame(Opcode.BINARY, b"y"),
            1002,
            "before the previous",
        ),
        (client_frame(Opcode.TEXT, b"\xff\xfe"), 1007, "not valid UTF-8"),
    ],
)
def test_a_protocol_violation_names_its_close_code(wire: bytes, code: int, reason: str) -> None:
    with pytest.raises(FrameError) as raised:
        FrameParser(LIMIT).feed(wire)
    assert raised.value.code == code
    assert reason in raised.value.reason


def test_an_oversized_message_is_refused_from_its_header_alone() -> None:
    """1009 before any of the payload arrived: the limit bounds what is buffered."""
    with pytest.raises(FrameError) as raised:
        FrameParser(4096).feed(masked_header(0x80 | OPCODE_BINARY, 10_000_000))
    assert (raised.value.code, raised.value.reason) == (1009, "message larger than 4096 bytes")


def test_fragments_over_the_limit_together_are_refused() -> None:
    parser = FrameParser(4096)
    parser.feed(client_frame(Opcode.BINARY, b"x" * 3000, fin=False))
    with pytest.raises(FrameError) as raised:
        parser.feed(client_frame(Opcode.CONT, b"x" * 3000))
    assert raised.value.code == 1009


def test_deflated_messages_inflate_with_the_context_kept_between_them() -> None:
    deflate = client_deflate()
    parser = FrameParser(LIMIT, Inflater())
    first = b"the same words again and again " * 20
    second = b"the same words again and again, and once more"
    wire = client_frame(Opcode.BINARY, first, deflate=deflate)
    wire += client_frame(Opcode.TEXT, second, deflate=deflate)
    assert parser.feed(wire) == [(OPCODE_BINARY, first), (OPCODE_TEXT, second)]


def test_a_deflated_message_over_the_limit_once_inflated_is_refused() -> None:
    wire = client_frame(Opcode.BINARY, b"x" * 100_000, deflate=client_deflate())
    assert len(wire) < 4096
    with pytest.raises(FrameError) as raised:
        FrameParser(4096, Inflater()).feed(wire)
    assert raised.value.code == 1009


def test_a_deflated_message_that_does_not_inflate_is_invalid_payload() -> None:
    payload = b"\xff\xff\xff\xff not deflate"
    # Masked with a zero key, so the payload goes on the wire as is.
    wire = masked_header(0x80 | 0x40 | OPCODE_BINARY, len(payload)) + payload
    with pytest.raises(FrameError) as raised:
        FrameParser(LIMIT, Inflater()).feed(wire)
    assert raised.value.code == 1007


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", (1005, "")),
        (struct.pack("!H", 1000) + b"bye", (1000, "bye")),
        (struct.pack("!H", 4401), (4401, "")),
    ],
)
def test_close_frames_give_their_code_and_reason(payload: bytes, expected: tuple[int, str]) -> None:
    assert parse_close(payload) == expected


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\x03", 1002),
        (struct.pack("!H", 1005), 1002),
        (struct.pack("!H", 999), 1002),
        (struct.pack("!H", 2000), 1002),
        (struct.pack("!H", 1000) + b"\xff", 1007),
    ],
)
def test_invalid_close_frames_are_protocol_errors(payload: bytes, code: int) -> None:
    with pytest.raises(FrameError) as raised:
        parse_close(payload)
    assert raised.value.code == code


def test_a_long_close_reason_is_cut_at_a_character_boundary() -> None:
    frame = encode_close(1008, "é" * 100)
    assert frame[0] == 0x80 | OPCODE_CLOSE
    assert frame[1] <= 125
    assert parse_close(frame[2:]) == (1008, "é" * 61)


@pytest.mark.parametrize(
    ("offer", "response"),
    [
        ("permessage-deflate", "permessage-deflate; server_no_context_takeover"),
        (
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_no_context_takeover",
        ),
        (
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=10",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=10",
        ),
        (
            "x-webkit-deflate-frame, permessage-deflate; unknown=1, permessage-deflate",
            "permessage-deflate; server_no_context_takeover",
        ),
    ],
)
def test_deflate_offers_are_answered_without_server_context(offer: str, response: str) -> None:
    agreement = negotiate(offer)
    assert agreement is not None
    assert agreement.response_header() == response


@pytest.mark.parametrize(
    "offer",
    [
        None,
        "x-webkit-deflate-frame",
        "permessage-deflate; server_max_window_bits=8",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits=x",
        # Digits to str.isdigit, not to int().
        "permessage-deflate; server_max_window_bits=\u00b2",
        "permessage-deflate; client_max_window_bits=\u00b9\u2075",
        "permessage-deflate; client_max_window_bits=7",
    ],
)
def test_unacceptable_deflate_offers_are_declined(offer: str | None) -> None:
    assert negotiate(offer) is None


@pytest.mark.parametrize("window_bits", [15, 10])
def test_a_deflated_server_frame_inflates_on_the_client(window_bits: int) -> None:
    """The frame is built once per message; a client decodes it whichever message it got
    before, because the server keeps no context."""
    client = PerMessageDeflate(True, False, window_bits, 15)
    payloads = [b"abc" * 200, b"another message entirely " * 10, b"abc" * 200]
    for payload in payloads:
        wire = OutgoingFrame(payload).deflated_wire(window_bits)
        frame = Frame(Opcode.BINARY, wire[4:] if wire[1] == 126 else wire[2:], rsv1=True)
        assert client.decode(frame).data == payload
