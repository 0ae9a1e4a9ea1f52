"""What the notes catalog adds to each edit of the S1 fan-out, measured inside one server
process with the catalog's per-edit work switched on and off in alternating blocks.

    python loadtests/catalog_edit_cost.py [--rooms 100] [--rate 20] [--block-s 10]
                                          [--pairs 10] [--store sqlite|memory]
                                          [--s1-us-per-edit US]

The fan-out itself (`run.py fanout`) cannot resolve a few per cent on this kind of VM: the same
server moves by ±10 % between runs, so 20 alternating rounds a side leave a 95 % interval of
±5-9 %. This tool takes the sockets and the other processes out and pairs the two sides in one
process, block by block, so the machine's drift cancels.

It starts the whole app as `collab serve` does (`create_app` and its startup, on a temporary
SQLite file by default), without an HTTP listener: `--rooms` notes of ten peers each (one
writer and nine recipients whose sockets take every frame at once), each writer setting a map
key `--rate` times a second as the fan-out's writers do, fed through `RoomManager.receive` and
paced in real time, so the group commit, the indexer's passes and the catalog's events run at
the fan-out's pace. A first block creates every note's catalog row and is not counted. Then
blocks of `--block-s` alternate, in pairs whose order alternates too: "on", as shipped, and
"off", with the three things the catalog adds to an edit switched off in this process (the
indexer's change listener, so nothing is dirty and no pass runs; `NoteWatch.saw_update`; the
group commit's tombstone check on SQLite). The notes an "on" block left dirty are indexed at
its end, inside its own measurement. Each block's CPU is the process's, all threads (aiosqlite
writes in one of its own). On SQLite, automatic checkpoints are turned off and each block ends
with a checkpoint of the WAL it wrote, inside its measurement: an automatic one (every 10,000
pages) lands in a random block and doubles its CPU, which would swamp a difference of a few
µs; this way each side pays for its own pages. For the same reason no note is compacted during
the run (`compact_after_updates` above the edits a note takes): at the default 1,000 all the
notes compact in the same block every 50 s, which the fan-out's 10 s steps never see.

Make `--block-s` a multiple of `COLLAB_CATALOG_INTERVAL_MS` (2 s) well above it: an "on" block
runs a pass every interval and indexes what is left at its end, so a short block pays for
more passes than its edits would.

`--calibrate-us N` checks the instrument: it adds a change listener that spins N µs per edit,
on the "on" side only, so the difference printed should come out near N more than without it.

Prints each pair, then the catalog's CPU per edit (mean of the pairs' differences, with its
standard error and 95 % interval) and, with `--s1-us-per-edit` (collab's CPU per delivery in
the fan-out times its nine recipients), its share of the fan-out's CPU per edit.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LOADTESTS_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(LOADTESTS_DIR), str(LOADTESTS_DIR.parent)]

from aiohttp import web  # noqa: E402
from edit_cost import rooms_with_peers, writer_edits  # noqa: E402
from harness.stats import estimate  # noqa: E402

from collab.rooms.live import LiveRoom  # noqa: E402
from collab.rooms.note_watch import NoteWatch  # noqa: E402
from collab.rooms.peer import Peer  # noqa: E402
from collab.store import sqlite_catalog  # noqa: E402
from collab.store.sqlite import SqliteStore  # noqa: E402
from collab.web.app import create_app  # noqa: E402
from collab.web.keys import CATALOG, DATABASE, ROOMS  # noqa: E402
from tests.conftest import make_settings  # noqa: E402

RECIPIENTS = 9
TICK_S = 0.01


class Writers:
    """Each room's writer and its edits, handed out in the order the fan-out sends them."""

    def __init__(self, lives: list[LiveRoom], writers: list[Peer], edits_each: int) -> None:
        self._lives = lives
        self._writers = writers
        self._frames = [writer_edits(edits_each) for _ in lives]
        self._next = [0] * len(lives)
        self.sent = 0

    def send(self, rooms: Any, count: int) -> None:
        for _ in range(count):
            room = self.sent % len(self._lives)
            frame = self._frames[room][self._next[room]]
            self._next[room] += 1
            if rooms.receive(self._lives[room], self._writers[room], frame) is not None:
                raise SystemExit("an edit was sent to the trial worker: not the fan-out's edits")
            self.sent += 1


async def paced(rooms: Any, writers: Writers, per_s: int, seconds: float) -> int:
    """Send `per_s` edits a second for `seconds`, in 10 ms ticks; returns how many."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    ticks = round(seconds / TICK_S)
    sent = 0
    for tick in range(ticks):
        due = round((tick + 1) * per_s * TICK_S) - sent
        writers.send(rooms, due)
        sent += due
        await asyncio.sleep(max(0.0, started + (tick + 1) * TICK_S - loop.time()))
    return sent


@contextmanager
def spinning(app: web.Application, spin_us: float) -> Iterator[None]:
    """A change listener that burns `spin_us` of CPU per edit (the instrument's check)."""
    rooms = app[ROOMS]
    listeners = rooms._listeners

    def spin(change: Any) -> None:
        until = time.thread_time() + spin_us / 1e6
        while time.thread_time() < until:
            pass

    rooms._listeners = (*listeners, spin) if spin_us else listeners
    try:
        yield
    finally:
        rooms._listeners = listeners


@contextmanager
def catalog_off(app: web.Application) -> Iterator[None]:
    """The catalog's per-edit work switched off in this process (a benchmark's switch)."""
    rooms, indexer = app[ROOMS], app[CATALOG].indexer
    listeners = rooms._listeners
    saw_update = NoteWatch.saw_update
    purged_rooms = sqlite_catalog.purged_rooms

    async def nothing_purged(conn: Any, room_ids: Any) -> set[str]:
        return set()

    if indexer.document_changed not in listeners:
        raise SystemExit("the indexer is not among the change listeners: nothing to switch off")
    rooms._listeners = tuple(
        listener for listener in listeners if listener != indexer.document_changed
    )
    NoteWatch.saw_update = lambda self, update: None  # type: ignore[method-assign]
    sqlite_catalog.purged_rooms = nothing_purged  # type: ignore[assignment]
    try:
        yield
    finally:
        rooms._listeners = listeners
        NoteWatch.saw_update = saw_update  # type: ignore[method-assign]
        sqlite_catalog.purged_rooms = purged_rooms


async def block(app: web.Application, writers: Writers, per_s: int, seconds: float) -> float:
    """Process CPU seconds per edit of one block (the notes it left dirty indexed in it)."""
    cpu = time.process_time()
    sent = await paced(app[ROOMS], writers, per_s, seconds)
    await app[CATALOG].indexer.index_dirty()
    await wal_pragma(app, "wal_checkpoint(TRUNCATE)")
    return (time.process_time() - cpu) / sent


async def wal_pragma(app: web.Application, pragma: str) -> None:
    database = app[DATABASE]
    if isinstance(database, SqliteStore):
        async with database._statement(f"PRAGMA {pragma}") as conn:
            await conn.execute(f"PRAGMA {pragma}")


async def measure(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="catalog-edit-cost-") as tmp:
        url = f"sqlite:///{tmp}/collab.db" if args.store == "sqlite" else "memory://"
        # The server's defaults, but for the test secret, the store and compaction.
        settings = make_settings(
            database_url=url,
            flush_interval_ms=100,
            room_grace_s=5,
            compact_after_updates=10 * args.rate * args.block_s * (2 + 2 * args.pairs),
        )
        app = create_app(settings)
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            await run_blocks(app, args)
        finally:
            await runner.cleanup()


async def run_blocks(app: web.Application, args: argparse.Namespace) -> None:
    rooms = app[ROOMS]
    per_s = args.rooms * args.rate
    lives, writers = await rooms_with_peers(
        rooms, [f"load0/fanout{index}" for index in range(args.rooms)], RECIPIENTS
    )
    await wal_pragma(app, "wal_autocheckpoint = 0")
    blocks = 1 + 2 * args.pairs
    edits_each = math.ceil(args.rate * args.block_s * blocks) + args.rate
    feed = Writers(lives, writers, edits_each)
    print(f"{args.rooms} rooms x {RECIPIENTS} recipients, {per_s} edits/s, {args.store},")
    calibration = (
        f", {args.calibrate_us:g} µs spun per edit on the on side" if args.calibrate_us else ""
    )
    print(f"blocks of {args.block_s:g} s{calibration}; µs of process CPU per edit:")
    await block(app, feed, per_s, args.block_s)  # creates every note's row: not counted
    differences = []
    for pair in range(args.pairs):
        spent = {}
        for side in ("on", "off") if pair % 2 == 0 else ("off", "on"):
            if side == "on":
                with spinning(app, args.calibrate_us):
                    spent[side] = await block(app, feed, per_s, args.block_s)
            else:
                with catalog_off(app):
                    spent[side] = await block(app, feed, per_s, args.block_s)
        differences.append(spent["on"] - spent["off"])
        print(
            f"  pair {pair + 1:2}: on {spent['on'] * 1e6:6.2f}  off {spent['off'] * 1e6:6.2f}"
            f"  difference {differences[-1] * 1e6:+6.2f}"
        )
    found = estimate(differences)
    print(f"catalog: {found.describe(1e6, ' µs')} of CPU per edit")
    if args.s1_us_per_edit:
        print(
            f"of the fan-out's {args.s1_us_per_edit:g} µs per edit: "
            f"{found.describe(1e8 / args.s1_us_per_edit, ' %')}"
        )
    for live in lives:
        rooms.release(live)


def main() -> None:
    import uvloop

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--rate", type=int, default=20, help="edits/s per room's writer")
    parser.add_argument("--block-s", type=float, default=10.0)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument(
        "--s1-us-per-edit",
        type=float,
        default=0.0,
        help="collab's CPU per edit in the fan-out (µs per delivery x 9), for the share",
    )
    parser.add_argument(
        "--calibrate-us", type=float, default=0.0, help="spin this long per edit when on"
    )
    args = parser.parse_args()
    if args.rooms < 1 or args.rate < 1 or args.block_s <= 0 or args.pairs < 2:
        parser.error("--rooms and --rate must be >= 1, --block-s > 0, --pairs >= 2")
    uvloop.run(measure(args))


if __name__ == "__main__":
    main()
