"""Server CPU per applied edit without sockets: what one edit costs collab's room layer.

    python loadtests/edit_cost.py [--edits 3000] [--recipients 9] [--profile]

Feeds `--edits` real Yjs updates (a writer setting one map key, as the fan-out scenario's
writers do) through `RoomManager.receive` of a room with `--recipients` other peers whose
sockets take every frame at once and do nothing with it. The time per edit is what the server
spends on one edit besides the network: decoding the message, applying it to the pycrdt
document, capturing and re-encoding the change, queueing it for the store and the bus, and
handing one pre-framed message to each peer. `--profile` prints the top functions (cProfile).
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


async def measure(edits: int, recipients: int, profile: bool) -> None:
    store = MemoryStore()
    await store.open()
    bus = MemoryBus(MemoryBroker())
    await bus.start()
    manager = RoomManager(store, bus, RoomLimits())
    await manager.start()
    live = await manager.acquire("w/n")
    peers = [
        Peer(
            f"p{i}",
            user_id=f"u{i}",
            can_write=True,
            transport=AcceptingSocket(),
            limits=OutboxLimits(1 << 20, 1000),
        )
        for i in range(recipients + 1)
    ]
    for peer in peers:
        manager.join(live, peer)
    frames = writer_edits(edits)
    profiler = cProfile.Profile() if profile else None
    started = time.process_time()
    if profiler is not None:
        profiler.enable()
    for frame in frames:
        manager.receive(live, peers[0], frame)
    if profiler is not None:
        profiler.disable()
    spent = time.process_time() - started
    print(
        f"{spent / edits * 1e6:.1f} µs of CPU per edit ({edits} edits, {recipients} recipients"
        f"{', under cProfile' if profile else ''})"
    )
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    manager.release(live)
    await manager.close()
    await bus.close()
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--edits", type=int, default=3000)
    parser.add_argument("--recipients", type=int, default=9)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    asyncio.run(measure(args.edits, args.recipients, args.profile))


if __name__ == "__main__":
    main()
