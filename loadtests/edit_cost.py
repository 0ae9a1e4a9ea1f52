"""Server CPU per applied edit without sockets: what one edit costs collab's room layer.

    python loadtests/edit_cost.py [--edits 3000] [--recipients 9] [--rooms 1] [--gap-ms 0]
                                  [--profile]

Feeds `--edits` real Yjs updates (a writer setting one map key, as the fan-out scenario's
writers do) through `RoomManager.receive` of `--rooms` rooms in turn, each with `--recipients`
other peers whose sockets take every frame at once and do nothing with it. The time per edit
is what the server spends on one edit besides the network: decoding the message, applying it
to the pycrdt document, capturing and re-encoding the change, queueing it for the store and
the bus, and handing one pre-framed message to each peer. `--profile` prints the top functions
(cProfile).

`--gap-ms` sleeps that long between two edits (only the edits are timed), as a server does
between the edits of a lightly loaded fan-out: it shows what the same code costs when it
starts on cold caches (`loadtests/RESULTS.md`, run 8).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pycrdt import Doc, Map, TransactionEvent

from collab.bus.memory import MemoryBroker, MemoryBus
from collab.protocol.close_codes import CloseCode
from collab.protocol.messages import encode_update
from collab.protocol.websocket import OutgoingFrame
from collab.rooms.live import LiveRoom
from collab.rooms.manager import RoomLimits, RoomManager
from collab.rooms.peer import OutboxLimits, Peer
from collab.store.memory import MemoryStore


class AcceptingSocket:
    """A socket that always keeps up; building the wire frame is part of the measured cost."""

    def write_now(self, frame: OutgoingFrame) -> bool:
        return bool(frame.wire)

    async def drain(self) -> None:
        pass

    async def send_frame(self, frame: bytes) -> None:
        pass

    async def close(self, code: CloseCode, reason: str) -> None:
        pass


def writer_edits(count: int) -> list[bytes]:
    doc: Doc = Doc()
    edits = doc.get("lt", type=Map)
    frames: list[bytes] = []

    def capture(event: TransactionEvent) -> None:
        frames.append(encode_update(event.update))

    doc.observe(capture)
    for seq in range(count):
        edits["t"] = f"@lt;0;{seq};{time.perf_counter():.3f};1#"
    return frames


async def rooms_with_peers(
    manager: RoomManager, room_ids: list[str], recipients: int
) -> tuple[list[LiveRoom], list[Peer]]:
    """Each room held, with a writer and `recipients` peers whose sockets keep up; returns
    the rooms and their writers."""
    lives, writers = [], []
    for room_id in room_ids:
        live = await manager.acquire(room_id)
        peers = [
            Peer(
                f"p{room_id}-{i}",
                user_id=f"u{i}",
                can_write=True,
                transport=AcceptingSocket(),
                limits=OutboxLimits(1 << 20, 1000),
            )
            for i in range(recipients + 1)
        ]
        for peer in peers:
            manager.join(live, peer)
        lives.append(live)
        writers.append(peers[0])
    return lives, writers


async def measure(edits: int, recipients: int, rooms: int, gap_s: float, profile: bool) -> None:
    store = MemoryStore()
    await store.open()
    bus = MemoryBus(MemoryBroker())
    await bus.start()
    manager = RoomManager(store, bus, RoomLimits())
    await manager.start()
    lives, writers = await rooms_with_peers(
        manager, [f"w/n{room}" for room in range(rooms)], recipients
    )
    # Each room has its own writer, as in the fan-out scenario; edits go to the rooms in turn.
    frames = [writer_edits(-(-edits // rooms)) for _ in range(rooms)]
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    spent = 0.0
    for index in range(edits):
        room = index % rooms
        started = time.thread_time()
        tried = manager.receive(lives[room], writers[room], frames[room][index // rooms])
        if tried is not None:  # an update read and tried in the worker first: none here
            await tried
        spent += time.thread_time() - started
        if gap_s:
            # Blocking on purpose: nothing else may run, the CPU is to sit idle in between.
            time.sleep(gap_s)  # noqa: ASYNC251
    if profiler is not None:
        profiler.disable()
    details = [f"{edits} edits", f"{recipients} recipients", f"{manager.tried_updates} tried"]
    if rooms > 1:
        details.append(f"{rooms} rooms")
    if gap_s:
        details.append(f"{gap_s * 1e3:g} ms between edits")
    if profile:
        details.append("under cProfile")
    print(f"{spent / edits * 1e6:.1f} µs of CPU per edit ({', '.join(details)})")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    for live in lives:
        manager.release(live)
    await manager.close()
    await bus.close()
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--edits", type=int, default=3000)
    parser.add_argument("--recipients", type=int, default=9)
    parser.add_argument("--rooms", type=int, default=1)
    parser.add_argument("--gap-ms", type=float, default=0.0, help="sleep between two edits")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.edits < 1 or args.rooms < 1 or args.recipients < 0 or args.gap_ms < 0:
        parser.error("--edits and --rooms must be >= 1, --recipients and --gap-ms >= 0")
    asyncio.run(measure(args.edits, args.recipients, args.rooms, args.gap_ms / 1e3, args.profile))


if __name__ == "__main__":
    main()
