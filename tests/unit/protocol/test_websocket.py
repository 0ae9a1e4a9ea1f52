"""Server frames built once per message must be what any RFC 6455 reader expects."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from collab.protocol.websocket import OPCODE_TEXT, OutgoingFrame, encode_frame


def _parse(wire: bytes) -> list[tuple[Opcode, bytes]]:
    """Parse with the `websockets` library's own (sans-I/O) frame reader, as a client would."""
    reader = StreamReader()
    reader.feed_data(wire)
    reader.feed_eof()
    frames = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=False)
        try:
            next(parser)
        except StopIteration as done:
            frame = done.value
        else:
            raise AssertionError("the wire bytes end inside a frame")
        assert frame.fin
        frames.append((frame.opcode, bytes(frame.data)))
    return frames


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 300_000])
def test_binary_frames_of_every_length_class_parse_back(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    assert _parse(encode_frame(payload)) == [(Opcode.BINARY, payload)]


def test_text_frames_and_back_to_back_frames_parse_back() -> None:
    wire = encode_frame(b'{"a":1}', OPCODE_TEXT) + encode_frame(b"\x00\x02")
    assert _parse(wire) == [(Opcode.TEXT, b'{"a":1}'), (Opcode.BINARY, b"\x00\x02")]


def test_outgoing_frame_holds_its_wire_bytes() -> None:
    frame = OutgoingFrame(b"abc")
    assert frame.wire is frame.wire
    assert frame.wire == b"\x82\x03abc"
