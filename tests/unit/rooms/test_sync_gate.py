"""`SyncGate`: large initial syncs at most N at a time, in order, sharing one frame."""

from __future__ import annotations

import asyncio

from collab.protocol.close_codes import CloseCode
from collab.protocol.websocket import OutgoingFrame
from collab.rooms.peer import OutboxLimits, Peer
from collab.rooms.sync_gate import SyncGate


class SlowSocket:
    """A socket whose buffer drains only when the test says so."""

    def __init__(self) -> None:
        self.frames: list[OutgoingFrame] = []
        self.drained = asyncio.Event()

    def write_now(self, frame: OutgoingFrame) -> bool:
        self.frames.append(frame)
        return True

    async def drain(self) -> None:
        await self.drained.wait()

    async def send_frame(self, frame: bytes) -> None:
        self.frames.append(OutgoingFrame(frame))

    async def close(self, code: CloseCode, reason: str) -> None:
        self.drained.set()


def joiner(name: str) -> tuple[Peer, SlowSocket]:
    socket = SlowSocket()
    peer = Peer(
        name,
        user_id=name,
        can_write=True,
        transport=socket,
        limits=OutboxLimits(max_bytes=1 << 30, max_frames=100),
    )
    return peer, socket


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_at_most_n_syncs_are_written_at_a_time_and_the_rest_wait_in_order() -> None:
    slow: list[Peer] = []
    gate = SyncGate(2, slow.append)
    state = b"\x00\x01" + b"x" * 1000
    joiners = [joiner(f"p{i}") for i in range(5)]
    for peer, _ in joiners:
        gate.send(peer, state)
    assert [len(socket.frames) for _, socket in joiners] == [1, 1, 0, 0, 0]
    assert (gate.in_flight, gate.waiting) == (2, 3)
    joiners[1][1].drained.set()
    await settle()
    assert [len(socket.frames) for _, socket in joiners] == [1, 1, 1, 0, 0]
    for _, socket in joiners:
        socket.drained.set()
    await settle()
    assert [len(socket.frames) for _, socket in joiners] == [1, 1, 1, 1, 1]
    assert (gate.in_flight, gate.waiting) == (0, 0)
    assert slow == []
    await gate.close()


async def test_every_joiner_of_one_version_gets_the_same_frame_object() -> None:
    gate = SyncGate(10, lambda peer: None)
    state = b"\x00\x01" + b"y" * 1000
    joiners = [joiner(f"p{i}") for i in range(3)]
    for peer, _ in joiners:
        gate.send(peer, state)
    first, second, third = (socket.frames[0] for _, socket in joiners)
    assert first is second is third
    assert first.payload is state
    await gate.close()


async def test_a_joiner_that_leaves_while_waiting_frees_nothing_and_gets_nothing() -> None:
    gate = SyncGate(1, lambda peer: None)
    (first, first_socket), (gone, gone_socket), (last, last_socket) = (
        joiner(name) for name in ("a", "b", "c")
    )
    for peer in (first, gone, last):
        gate.send(peer, b"state")
    gate.forget(gone)
    first_socket.drained.set()
    await settle()
    assert gone_socket.frames == []
    assert len(last_socket.frames) == 1
    last_socket.drained.set()
    await settle()
    assert gate.in_flight == 0
    await gate.close()


async def test_a_closed_joiner_frees_its_slot() -> None:
    gate = SyncGate(1, lambda peer: None)
    (first, _), (second, second_socket) = joiner("a"), joiner("b")
    gate.send(first, b"state")
    gate.send(second, b"state")
    first.request_close(CloseCode.GOING_AWAY, "bye")
    await settle()
    assert len(second_socket.frames) == 1
    await gate.close()


async def test_a_joiner_asking_again_while_it_waits_waits_for_the_latest_answer_only() -> None:
    """Each answer to a sync step 1 after an edit is a new version's state: a connection
    asking again and again must not keep one copy per question while it waits."""
    slow: list[Peer] = []
    gate = SyncGate(1, slow.append)
    (busy, busy_socket), (asker, asker_socket), (last, last_socket) = (
        joiner(name) for name in ("busy", "asker", "last")
    )
    gate.send(busy, b"\x00\x01" + b"v1")
    gate.send(asker, b"\x00\x01" + b"v1")
    gate.send(last, b"\x00\x01" + b"v1")
    answers = [b"\x00\x01" + b"v%d" % version for version in range(2, 40)]
    for answer in answers:
        gate.send(asker, answer)
    assert gate.waiting == 2
    assert sum(w.peer is asker for w in gate._waiting) == 1
    busy_socket.drained.set()
    await settle()
    # In its place in line, with the latest answer.
    assert [frame.payload for frame in asker_socket.frames] == [answers[-1]]
    assert last_socket.frames == []
    asker_socket.drained.set()
    await settle()
    assert len(last_socket.frames) == 1
    assert slow == []
    await gate.close()


async def test_a_joiner_with_another_large_message_waiting_is_closed_as_too_slow() -> None:
    slow: list[Peer] = []
    gate = SyncGate(1, slow.append)
    (busy, _), (waiting, _) = joiner("busy"), joiner("waiting")
    gate.send(busy, b"\x00\x01" + b"state")
    gate.send(waiting, b"\x00\x01" + b"state")
    gate.send(waiting, b"\x01" + b"an awareness message")
    assert slow == [waiting]
    assert gate.waiting == 1
    await gate.close()


async def test_a_joiner_that_left_may_come_back_and_wait_again() -> None:
    gate = SyncGate(1, lambda peer: None)
    (busy, busy_socket), (again, again_socket) = joiner("busy"), joiner("again")
    gate.send(busy, b"\x00\x01" + b"state")
    gate.send(again, b"\x00\x01" + b"state")
    gate.forget(again)
    gate.send(again, b"\x00\x01" + b"later")
    assert gate.waiting == 1
    busy_socket.drained.set()
    await settle()
    assert [frame.payload for frame in again_socket.frames] == [b"\x00\x01" + b"later"]
    await gate.close()
