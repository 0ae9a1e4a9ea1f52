"""The paced drain: the plan of waves (pure), and carrying it out on a fake clock."""

from __future__ import annotations

import asyncio
import logging

import pytest

from collab.protocol.close_codes import CloseCode
from collab.rooms.document import DocumentRoom
from collab.rooms.drain import (
    MIN_WAVE_PEERS,
    WAVE_INTERVAL_S,
    Wave,
    carry_out,
    drain_peers,
    plan_drain,
)
from collab.rooms.live import LiveRoom
from collab.rooms.peer import OutboxLimits, Peer
from tests.support.transports import ClosingPeerTransport


def rooms_of(*sizes: int) -> list[list[str]]:
    """Rooms of the given sizes, peers named `r<room>p<peer>`."""
    return [[f"r{r}p{p}" for p in range(size)] for r, size in enumerate(sizes)]


def flat(plan: list[Wave[str]]) -> list[str]:
    return [peer for wave in plan for peer in wave.peers]


def test_no_peers_make_no_waves() -> None:
    """An instance with no clients has nothing to drain."""
    assert plan_drain([[], []], 5.0) == []


def test_drain_of_zero_closes_everyone_in_one_wave() -> None:
    """COLLAB_DRAIN_S=0 is the old behaviour: every peer at once."""
    rooms = rooms_of(300, 200)
    assert plan_drain(rooms, 0.0) == [Wave(0.0, tuple(rooms[0] + rooms[1]))]


def test_many_peers_spread_evenly_over_the_drain_time() -> None:
    """1000 peers over 5 s: a wave every interval from 0, the last before 5 s, 20 each."""
    plan = plan_drain(rooms_of(*[10] * 100), 5.0)
    assert len(plan) == round(5.0 / WAVE_INTERVAL_S)
    assert [wave.at_s for wave in plan] == pytest.approx(
        [index * WAVE_INTERVAL_S for index in range(len(plan))]
    )
    assert plan[-1].at_s < 5.0
    assert {len(wave.peers) for wave in plan} == {20}


def test_every_peer_is_in_exactly_one_wave_in_room_order() -> None:
    """The waves cut the room-ordered list of peers: nobody twice, nobody left out."""
    rooms = rooms_of(7, 1, 33, 0, 120, 5)
    assert flat(plan_drain(rooms, 3.0)) == [peer for room in rooms for peer in room]


def test_wave_sizes_differ_by_one_at_most() -> None:
    """Peers that do not divide evenly go one more to the first waves."""
    plan = plan_drain(rooms_of(1003), 2.0)
    sizes = [len(wave.peers) for wave in plan]
    assert len(sizes) == 20
    assert max(sizes) - min(sizes) == 1
    assert sizes == sorted(sizes, reverse=True)


def test_few_peers_close_in_fewer_waves_of_at_least_the_minimum() -> None:
    """40 peers with a 2 s drain: 4 waves of 10, done after 0.3 s, not stretched to 2 s."""
    plan = plan_drain(rooms_of(10, 10, 10, 10), 2.0)
    assert [len(wave.peers) for wave in plan] == [MIN_WAVE_PEERS] * 4
    assert plan[-1].at_s == pytest.approx(3 * WAVE_INTERVAL_S)
    assert len(plan_drain(rooms_of(MIN_WAVE_PEERS + 5), 5.0)) == 1


def test_a_small_room_closes_in_one_wave_or_two_neighbouring_ones() -> None:
    """Rooms no larger than a wave are never spread over waves further apart."""
    plan = plan_drain(rooms_of(*[7] * 50), 1.0)
    wave_of = {peer: index for index, wave in enumerate(plan) for peer in wave.peers}
    for room in rooms_of(*[7] * 50):
        waves = {wave_of[peer] for peer in room}
        assert max(waves) - min(waves) <= 1


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_waves_close_at_their_time_with_a_flush_between(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each wave waits for its time; `between_waves` runs after each wave but the last,
    told how long it has until the next."""
    time = FakeTime()
    events: list[str] = []

    def close(peer: str) -> bool:
        events.append(f"close {peer} at {time.now - 100:.1f}")
        return True

    async def between_waves(until_next_s: float) -> None:
        events.append(f"flush within {until_next_s:.2f}")
        time.now += 0.03  # the flush takes time: the next sleep is shorter

    plan = [Wave(0.0, ("a", "b")), Wave(0.1, ("c",)), Wave(0.2, ("d",))]
    with caplog.at_level(logging.INFO, logger="collab.rooms.drain"):
        closed = await carry_out(plan, close, between_waves, clock=time.clock, sleep=time.sleep)
    assert closed == 4
    assert events == [
        "close a at 0.0",
        "close b at 0.0",
        "flush within 0.10",
        "close c at 0.1",
        "flush within 0.10",
        "close d at 0.2",
    ]
    assert time.sleeps == pytest.approx([0.07, 0.07])
    assert [r.getMessage() for r in caplog.records] == [
        "drain wave 1/3: closed 2 of 2",
        "drain wave 2/3: closed 1 of 1",
        "drain wave 3/3: closed 1 of 1",
    ]


async def test_a_late_wave_does_not_sleep_and_gone_peers_are_not_counted() -> None:
    """Behind schedule (a slow flush), the next wave goes at once; peers that left already
    are skipped and not counted."""
    time = FakeTime()

    async def slow_flush(until_next_s: float) -> None:
        time.now += 0.5

    plan = [Wave(0.0, ("a",)), Wave(0.1, ("gone", "b"))]
    closed = await carry_out(
        plan, lambda peer: peer != "gone", slow_flush, clock=time.clock, sleep=time.sleep
    )
    assert closed == 2
    assert time.sleeps == []


def add_peer(live: LiveRoom, peer_id: str) -> tuple[Peer, ClosingPeerTransport]:
    socket = ClosingPeerTransport()
    peer = Peer(
        peer_id,
        user_id="u",
        can_write=True,
        transport=socket,
        limits=OutboxLimits(max_bytes=1 << 20, max_frames=100),
    )
    live.peers[peer_id] = peer
    return peer, socket


async def test_drain_peers_closes_each_with_1012_skips_the_gone_and_catches_late_joiners() -> None:
    """Every peer gets 1012 room by room; one whose client left before its wave is not
    closed; one that joined during the drain is closed after the last wave."""
    time = FakeTime()
    rooms = [LiveRoom(DocumentRoom(f"w1/n{r}")) for r in range(3)]
    sockets = {}
    for r, live in enumerate(rooms):
        for p in range(MIN_WAVE_PEERS):
            peer, socket = add_peer(live, f"r{r}p{p}")
            sockets[peer.peer_id] = socket
    waves_done = 0

    async def between_waves(until_next_s: float) -> None:
        nonlocal waves_done
        waves_done += 1
        if waves_done == 1:
            del rooms[2].peers["r2p3"]  # its client went away by itself
            _, sockets["late"] = add_peer(rooms[0], "late")

    closed = await drain_peers(
        lambda: list(rooms), 1.0, between_waves, clock=time.clock, sleep=time.sleep
    )
    for live in rooms:
        await asyncio.gather(*(peer.wait_closed() for peer in live.peers.values()))
    assert waves_done == 2
    assert {peer.peer_id for peer in closed} == set(sockets) - {"r2p3"}
    for peer_id, socket in sockets.items():
        expected = None if peer_id == "r2p3" else CloseCode.SERVICE_RESTART
        assert (socket.closed or (None,))[0] == expected, peer_id
    assert time.sleeps == pytest.approx([WAVE_INTERVAL_S] * 2)
    for live in rooms:
        live.room.close()
