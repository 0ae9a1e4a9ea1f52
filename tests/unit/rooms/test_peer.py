"""The peer's send path: direct writes while the socket keeps up, an outbox (merged document
updates, bounded) while it does not, and never a frame out of order."""

from __future__ import annotations

import asyncio

import pytest
from pycrdt import Doc, Map, Text

from collab.protocol.close_codes import CloseCode
from collab.protocol.messages import (
    AwarenessEntry,
    Update,
    decode_message,
    encode_awareness,
    encode_update,
    is_update_frame,
    merge_update_frames,
)
from collab.protocol.websocket import OutgoingFrame
from collab.rooms.peer import Coalescing, OutboxLimits, Peer

COALESCING = Coalescing(mergeable=is_update_frame, merge=merge_update_frames)


class SocketStandIn:
    """Records what a peer writes; `behind` makes it refuse direct writes, and `drained` holds
    the writer as a full socket would."""

    def __init__(self) -> None:
        self.behind = False
        self.drained = asyncio.Event()
        self.drained.set()
        self.direct: list[bytes] = []
        self.sent: list[bytes] = []
        self.closed: tuple[CloseCode, str] | None = None

    def write_now(self, frame: OutgoingFrame) -> bool:
        if self.behind:
            return False
        self.direct.append(frame.payload)
        return True

    async def drain(self) -> None:
        await self.drained.wait()

    async def send_frame(self, frame: bytes) -> None:
        self.sent.append(frame)

    async def close(self, code: CloseCode, reason: str) -> None:
        self.closed = (code, reason)

    @property
    def everything(self) -> list[bytes]:
        return self.direct + self.sent


def make_peer(socket: SocketStandIn, *, max_frames: int = 1000) -> Peer:
    peer = Peer(
        "p1",
        user_id="u1",
        can_write=True,
        transport=socket,
        limits=OutboxLimits(max_bytes=1 << 20, max_frames=max_frames),
        coalescing=COALESCING,
    )
    return peer


def edits(count: int) -> list[bytes]:
    """`count` update frames, each appending one character to a shared text."""
    doc: Doc = Doc()
    text = doc.get("t", type=Text)
    frames: list[bytes] = []
    doc.observe(lambda event: frames.append(encode_update(event.update)))
    for i in range(count):
        text += str(i % 10)
    return frames


def apply_all(frames: list[bytes]) -> str:
    doc: Doc = Doc()
    for frame in frames:
        message = decode_message(frame)
        if isinstance(message, Update):
            doc.apply_update(message.update)
    return str(doc.get("t", type=Text))


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_frames_go_straight_to_a_socket_that_keeps_up() -> None:
    socket = SocketStandIn()
    peer = make_peer(socket)
    frames = edits(3)
    for frame in frames:
        assert peer.enqueue(OutgoingFrame(frame))
    assert socket.direct == frames
    assert socket.sent == []
    await peer.stop()


async def test_updates_queued_behind_a_full_socket_go_out_merged_and_in_order() -> None:
    socket = SocketStandIn()
    peer = make_peer(socket)
    frames = edits(50)
    awareness = encode_awareness([AwarenessEntry(7, 1, '{"x":1}')])
    socket.behind = True
    socket.drained.clear()
    for frame in frames[:20]:
        peer.enqueue(OutgoingFrame(frame))
    peer.enqueue(OutgoingFrame(awareness))
    for frame in frames[20:]:
        peer.enqueue(OutgoingFrame(frame))
    await settle()
    assert socket.sent == []
    assert peer.queued_bytes == sum(map(len, frames)) + len(awareness)

    socket.drained.set()
    await settle()
    # Two merged updates around the awareness frame, which keeps its place.
    assert len(socket.sent) == 3
    assert socket.sent[1] == awareness
    assert apply_all(socket.sent) == apply_all(frames)
    assert peer.coalesced_frames == 48
    assert peer.queued_bytes == 0
    await peer.stop()


async def test_no_direct_write_overtakes_a_queued_frame() -> None:
    socket = SocketStandIn()
    peer = make_peer(socket)
    frames = edits(6)
    socket.behind = True
    socket.drained.clear()
    peer.enqueue(OutgoingFrame(frames[0]))
    # The socket catches up, but the outbox still holds a frame: later frames queue behind it.
    socket.behind = False
    for frame in frames[1:]:
        peer.enqueue(OutgoingFrame(frame))
    assert socket.direct == []
    socket.drained.set()
    await settle()
    assert apply_all(socket.everything) == apply_all(frames)
    # Once the outbox is empty, direct writes resume.
    extra = edits(7)[6]
    peer.enqueue(OutgoingFrame(extra))
    assert socket.direct == [extra]
    await peer.stop()


async def test_a_peer_over_its_bound_refuses_frames_and_can_be_closed() -> None:
    socket = SocketStandIn()
    peer = make_peer(socket, max_frames=3)
    frames = edits(5)
    socket.behind = True
    socket.drained.clear()
    accepted = [peer.enqueue(OutgoingFrame(frame)) for frame in frames]
    assert accepted == [True, True, True, False, False]
    peer.request_close(CloseCode.TRY_AGAIN_LATER, "too slow")
    await peer.wait_closed()
    assert socket.closed == (CloseCode.TRY_AGAIN_LATER, "too slow")
    assert socket.sent == []
    # A closing peer swallows frames instead of queueing them.
    assert peer.enqueue(OutgoingFrame(frames[0]))
    assert peer.queued_bytes == 0


def test_merging_update_frames_keeps_every_change() -> None:
    doc: Doc = Doc()
    frames: list[bytes] = []
    doc.observe(lambda event: frames.append(encode_update(event.update)))
    doc.get("m", type=Map)["a"] = 1
    doc.get("t", type=Text).insert(0, "hello")
    doc.get("m", type=Map)["b"] = 2
    merged = merge_update_frames(frames)
    assert is_update_frame(merged)
    copy: Doc = Doc()
    message = decode_message(merged)
    assert isinstance(message, Update)
    copy.apply_update(message.update)
    assert copy.get("m", type=Map).to_py() == {"a": 1, "b": 2}
    assert str(copy.get("t", type=Text)) == "hello"


@pytest.mark.parametrize(
    "frame", [b"\x00\x00\x01\x00", b"\x00\x01\x02\x00\x00", b"\x01\x01\x00", b"\x03"]
)
def test_only_update_messages_are_mergeable(frame: bytes) -> None:
    assert not is_update_frame(frame)
