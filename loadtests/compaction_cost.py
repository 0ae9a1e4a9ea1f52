"""What one compaction costs the event loop, with what the live document stored or was
loaded from skipped (`writer`, migration 0013; `loaded`) and merged as before, in one run.

    python loadtests/compaction_cost.py [--store sqlite|memory] [--rounds 5]
                                        [--notes 100] [--log 1000] [--big-mb 20]

Runs `GroupCommit` against the store, without a server. Two shapes, each compacted
`--rounds` times per mode, the modes alternating:

- **S1's notes**: `--notes` notes, each with a log of `--log` updates that set one map key
  (what the S1 fan-out's writers send), compacted the way the flush does once a note's
  log reaches `COLLAB_COMPACT_AFTER_UPDATES` (1000);
- **a big note**: one note of `--big-mb` MiB of text (1 KiB items) with a snapshot and a
  log of `--log` one-character edits; then the same note loaded again (another document,
  as after a restart or an unload), edited `--log` times more and compacted for the first
  time, given the digest of what it was loaded from.

For each it prints the event loop's CPU per compaction (the thread's own time: encoding
the state, merging, the driver's work on the loop, and a 1 ms ticker's few wakeups) and the
longest the loop went without a turn while compacting (that ticker's largest gap: about 1 ms
on a loop that never stalls), as the median over the rounds. "Merged"
is the store merging every stored part into the state, as it did before 0013; "skipped"
is this version, where what the compacting document logged itself is neither read nor
merged, nor what it was loaded from while the store holds exactly that. The SQLite
thread's time is not in the first figure.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pycrdt import Map, Text

from collab.rooms.commit import GroupCommit
from collab.rooms.document import DocumentRoom
from collab.rooms.live import LiveRoom, RoomLimits
from collab.store import MemoryStore, SqliteStore
from collab.store.base import Held, Store, stored_digest

MIB = 1024 * 1024


TICK_S = 0.001


class Ticker:
    """The event loop's longest gap between two turns of a task that sleeps `TICK_S`
    (so the gap of a loop that never stalls is about `TICK_S`)."""

    def __init__(self) -> None:
        self.longest_s = 0.0
        self._running = True

    async def run(self) -> None:
        last = time.perf_counter()
        while self._running:
            await asyncio.sleep(TICK_S)
            now = time.perf_counter()
            self.longest_s = max(self.longest_s, now - last)
            last = now

    def stop(self) -> None:
        self._running = False


# How a mode compacts: what it tells the store the state holds. "merged" tells nothing, as
# every compaction before 0013 (the store merges every stored part); "skipped" is this
# version (the live document's writer and, until its first compaction, what it was loaded
# from).
Mode = Callable[[LiveRoom], Held | None]
MODES: dict[str, Mode] = {
    "merged": lambda live: None,
    "skipped": lambda live: Held(live.writer, live.loaded),
}


def edits(room: DocumentRoom, edit: Callable[[int], None], count: int) -> list[bytes]:
    """The updates `edit(0)` ... `edit(count - 1)` make to the room's document, one each."""
    updates: list[bytes] = []
    subscription = room.doc.observe(lambda event: updates.append(event.update))
    for number in range(count):
        edit(number)
    room.doc.unobserve(subscription)
    return updates


def map_sets(room: DocumentRoom, count: int, tag: str) -> list[bytes]:
    """`count` updates each setting one key of a map, as S1's writers do."""
    values = room.doc.get("lt", type=Map)

    def set_key(number: int) -> None:
        values["t"] = f"{tag}-{number}-{time.time():.6f}-" + "x" * 24

    return edits(room, set_key, count)


def typed(room: DocumentRoom, count: int) -> list[bytes]:
    """`count` one-character insertions spread over the room's text."""
    text = room.doc.get("t", type=Text)
    return edits(room, lambda number: text.insert(number * 7 % max(1, len(text)), "y"), count)


async def logged(commit: GroupCommit, live: LiveRoom, updates: list[bytes]) -> None:
    """Log `updates` of `live` the way the group commit does: queued, then one flush."""
    for update in updates:
        commit.note(live, update)
    await commit.flush()


async def compact_as(store: Store, live: LiveRoom, held: Held | None) -> tuple[float, float]:
    """Event-loop CPU seconds and longest loop gap of one compaction of `live`, as the
    group commit makes it (its state encoded on the loop, then the store's compaction)."""
    ticker = Ticker()
    ticking = asyncio.create_task(ticker.run())
    await asyncio.sleep(0)
    started = time.thread_time()
    await store.compact(live.room_id, live.room.encode_state(), held)
    used = time.thread_time() - started
    ticker.stop()
    await ticking
    return used, ticker.longest_s


async def s1_notes(
    store: Store, commit: GroupCommit, mode: str, notes: int, log: int, round_number: int
) -> tuple[list[float], list[float]]:
    held = MODES[mode]
    rooms = [LiveRoom(DocumentRoom(f"s1/r{round_number}-{mode}-{n}")) for n in range(notes)]
    for live in rooms:
        await logged(commit, live, map_sets(live.room, log, "a"))
    cpu: list[float] = []
    gaps: list[float] = []
    for live in rooms:
        # A first compaction stores a snapshot; the note then logs another `log` updates.
        await store.compact(live.room_id, live.room.encode_state(), held(live))
        await logged(commit, live, map_sets(live.room, log, "b"))
        used, gap = await compact_as(store, live, held(live))
        cpu.append(used)
        gaps.append(gap)
    return cpu, gaps


async def big_note(
    store: Store, commit: GroupCommit, mode: str, big_mb: float, log: int, round_number: int
) -> tuple[float, float]:
    live = LiveRoom(DocumentRoom(f"big/r{round_number}-{mode}"))
    text = live.room.doc.get("t", type=Text)
    with live.room.doc.transaction():
        for _ in range(int(big_mb * MIB) // 1024):
            text.insert(0, "x" * 1024)
    await store.compact(live.room_id, live.room.encode_state(), MODES[mode](live))
    await logged(commit, live, typed(live.room, log))
    return await compact_as(store, live, MODES[mode](live))


async def reloaded_big_note(
    store: Store, commit: GroupCommit, mode: str, log: int, round_number: int
) -> tuple[float, float]:
    """The big note of this round loaded again (another document, as after a restart),
    edited `log` times and compacted: its first compaction, which is given the digest of
    what it was loaded from."""
    room_id = f"big/r{round_number}-{mode}"
    stored = await store.load(room_id)
    live = LiveRoom(DocumentRoom.from_stored(room_id, stored), loaded=stored_digest(stored.parts))
    await logged(commit, live, typed(live.room, log))
    return await compact_as(store, live, MODES[mode](live))


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e3:8.2f} ms (max {max(values) * 1e3:.2f})"


async def run(args: argparse.Namespace, directory: str) -> None:
    store: Store = (
        SqliteStore(str(Path(directory) / "compaction.sqlite3"))
        if args.store == "sqlite"
        else MemoryStore()
    )
    await store.open()
    # No timer and no threshold: the rounds flush and compact when they say.
    commit = GroupCommit(store, RoomLimits(flush_interval_s=3600, compact_after_updates=10**9))
    modes = list(MODES)
    small: dict[str, tuple[list[float], list[float]]] = {mode: ([], []) for mode in modes}
    big: dict[str, tuple[list[float], list[float]]] = {mode: ([], []) for mode in modes}
    reloaded: dict[str, tuple[list[float], list[float]]] = {mode: ([], []) for mode in modes}
    try:
        for round_number in range(args.rounds):
            for mode in modes if round_number % 2 == 0 else reversed(modes):
                cpu, gaps = await s1_notes(store, commit, mode, args.notes, args.log, round_number)
                small[mode][0].extend(cpu)
                small[mode][1].extend(gaps)
                if args.big_mb > 0:
                    used, gap = await big_note(
                        store, commit, mode, args.big_mb, args.log, round_number
                    )
                    big[mode][0].append(used)
                    big[mode][1].append(gap)
                    used, gap = await reloaded_big_note(store, commit, mode, args.log, round_number)
                    reloaded[mode][0].append(used)
                    reloaded[mode][1].append(gap)
    finally:
        await store.close()
    print(f"store {args.store}, {args.rounds} rounds, modes alternating")
    print(f"S1's notes: {args.notes} notes x {args.log}-update log, per compaction")
    for name, (cpu, gaps) in small.items():
        print(f"  {name:8} loop CPU {ms(cpu)}   longest loop gap {ms(gaps)}")
    if args.big_mb > 0:
        print(f"a {args.big_mb:g} MiB note with a {args.log}-update log, per compaction")
        for name, (cpu, gaps) in big.items():
            print(f"  {name:8} loop CPU {ms(cpu)}   longest loop gap {ms(gaps)}")
        print(f"the same note loaded again, {args.log} more edits, its first compaction")
        for name, (cpu, gaps) in reloaded.items():
            print(f"  {name:8} loop CPU {ms(cpu)}   longest loop gap {ms(gaps)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--store", choices=["sqlite", "memory"], default="sqlite")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--notes", type=int, default=100)
    parser.add_argument("--log", type=int, default=1000)
    parser.add_argument("--big-mb", type=float, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(run(args, directory))


if __name__ == "__main__":
    main()
