"""Paced drain: on shutdown an instance closes its clients in waves, not all at once.

The stock y-websocket provider reconnects 200 ms after a close, with no jitter, so closing
every client of an instance at once sends all of them to the surviving instances within a
few milliseconds: a wall of handshakes, token checks, room loads and syncs that stalls the
survivors' own editing. Closed in waves over `COLLAB_DRAIN_S`, the same clients arrive as
a ramp.

- `plan_drain` (pure) splits the peers into waves, one every `WAVE_INTERVAL_S`, in room
  order: a room's peers close together (in one wave, or two neighbouring ones for a room
  larger than a wave), so its copy here empties early and can be unloaded, the survivor
  loads it once for all of them, and it is not edited on two instances through the bus
  for the whole drain. Interleaving rooms would keep every room split for the whole drain.
- Each wave holds at least `MIN_WAVE_PEERS`, so an instance with few clients is done in a
  few waves rather than stretching a handful of closes over the whole drain time.
- `carry_out` closes each wave when its time comes (clock and sleep are injected) and
  awaits the caller's `between_waves` after each wave but the last, giving it the time left
  until the next wave: the manager flushes the group commit there, so what a wave's clients
  sent is stored before they reconnect elsewhere, and unloads the rooms they left; a flush
  slower than that goes on beside the next waves rather than holding them up.
- `drain_peers` is the manager's use of both over its loaded rooms.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from collab.protocol.close_codes import CloseCode
from collab.rooms.live import LiveRoom
from collab.rooms.peer import Peer

log = logging.getLogger(__name__)

P = TypeVar("P")

# Shorter than the provider's 200 ms reconnect delay, so the survivors see a ramp of small
# bursts rather than a few large ones.
WAVE_INTERVAL_S = 0.1
MIN_WAVE_PEERS = 10
SHUTDOWN_REASON = "server shutting down; reconnect"


@dataclass(frozen=True, slots=True)
class Wave(Generic[P]):
    at_s: float  # after the drain's start
    peers: tuple[P, ...]


def plan_drain(
    rooms: Iterable[Sequence[P]],
    drain_s: float,
    *,
    interval_s: float = WAVE_INTERVAL_S,
    min_wave_peers: int = MIN_WAVE_PEERS,
) -> list[Wave[P]]:
    """The waves that close the peers of `rooms` (each room's peers in one sequence): one
    every `interval_s` from 0 and before `drain_s`, the peers split evenly over them in room
    order (sizes differ by one at most), each of at least `min_wave_peers` unless there are
    fewer peers than that. No peers: no waves; `drain_s` under `interval_s`: one wave."""
    peers = [peer for room in rooms for peer in room]
    if not peers:
        return []
    # A tolerance for drain times that are whole multiples of the interval (5.0 / 0.1).
    most = max(1, int(drain_s / interval_s + 1e-9))
    count = max(1, min(most, len(peers) // max(1, min_wave_peers)))
    size, larger = divmod(len(peers), count)
    waves = []
    start = 0
    for index in range(count):
        stop = start + size + (index < larger)
        waves.append(Wave(index * interval_s, tuple(peers[start:stop])))
        start = stop
    return waves


async def carry_out(
    plan: Sequence[Wave[P]],
    close: Callable[[P], bool],
    between_waves: Callable[[float], Awaitable[None]],
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> int:
    """Close the peers of each wave of `plan` once its `at_s` has passed (counted from now),
    awaiting `between_waves(seconds until the next wave)` after each wave but the last;
    `close` returns whether it closed the peer (False: it was gone already). Returns how
    many were closed."""
    started = clock()
    closed = 0
    for number, wave in enumerate(plan, 1):
        delay_s = started + wave.at_s - clock()
        if delay_s > 0:
            await sleep(delay_s)
        in_wave = sum(close(peer) for peer in wave.peers)
        closed += in_wave
        log.info("drain wave %d/%d: closed %d of %d", number, len(plan), in_wave, len(wave.peers))
        if number < len(plan):
            await between_waves(started + plan[number].at_s - clock())
    return closed


async def drain_peers(
    loaded: Callable[[], list[LiveRoom]],
    drain_s: float,
    between_waves: Callable[[float], Awaitable[None]],
    *,
    close_code: CloseCode = CloseCode.SERVICE_RESTART,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> set[Peer]:
    """Close every peer of the `loaded` rooms with `close_code`, in waves over `drain_s`
    (`plan_drain`, `carry_out`), then any peer that joined meanwhile. The caller has
    stopped new holds of rooms. Returns the peers to wait for: those closed here and those
    still closing for reasons of their own."""
    rooms = [[(live, peer) for peer in live.peers.values()] for live in loaded()]
    plan = plan_drain(rooms, drain_s)
    if len(plan) > 1:
        log.info(
            "draining %d connections of %d rooms in %d waves over %.1f s",
            sum(map(len, rooms)),
            len(rooms),
            len(plan),
            plan[-1].at_s,
        )
    closed: set[Peer] = set()

    def close(entry: tuple[LiveRoom, Peer]) -> bool:
        live, peer = entry
        if peer.closing or live.peers.get(peer.peer_id) is not peer:
            return False  # its client left, or it was closed for a reason of its own
        peer.request_close(close_code, SHUTDOWN_REASON)
        closed.add(peer)
        return True

    await carry_out(plan, close, between_waves, clock=clock, sleep=sleep)
    # Upgrades that had their room before the holds stopped may have joined since.
    for live in loaded():
        for peer in list(live.peers.values()):
            close((live, peer))
            closed.add(peer)
    return closed
