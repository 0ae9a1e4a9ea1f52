"""CPU of one catalog indexing pass of a note, in one process: what the indexer adds per edit.

    python loadtests/index_cost.py [--store memory|sqlite] [--passes 50] [--rounds 5]
                                   [--rooms 100] [--workspace-notes 0] [--body-chars 0]
                                   [--edit cursor|body]

Runs the server's own `CatalogIndexer` over `--rooms` loaded rooms (the S1 fan-out's 100
rooms are all dirty at each pass), `--passes` times: between two passes each room takes one
edit, applied as a client's edit is (`DocumentRoom.apply_local_update`, then the change
listener), and the pass (`CatalogIndexer.index_dirty`) is timed alone. `--edit cursor` sets a
map key outside the note's fields, as a fan-out writer does: the pass reuses the fields it
read last and only moves each row's clock and time. `--edit body` types into the body, so
every pass reads the note again. `--rooms 1` is a pass of a lone busy note. The default
document is the fan-out scenario's: no `meta`, no `body`. `--body-chars` gives each a body of
that many characters and a title and tags, as a real note has; `--workspace-notes` puts that
many other notes' rows in the notes' workspace first (SQLite: written like the catalog
scenario's). Prints the process's CPU per note and pass (all threads: aiosqlite works in one
of its own), best and median of `--rounds`, and what that comes to per delivery in the S1
fan-out at 20 edits/s (each room indexed once per `COLLAB_CATALOG_INTERVAL_MS`, 2 s by
default, with 9 deliveries per edit).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LOADTESTS_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(LOADTESTS_DIR), str(LOADTESTS_DIR.parent)]

from pycrdt import Array, Doc, Map, XmlElement, XmlFragment, XmlText  # noqa: E402

from collab.rooms.document import DocumentRoom  # noqa: E402
from collab.rooms.effects import PeerOrigin  # noqa: E402
from collab.rooms.indexer import CatalogIndexer  # noqa: E402
from collab.rooms.live import DocumentChange, LiveRoom  # noqa: E402
from collab.store import create_store  # noqa: E402

WORKSPACE = "load0"
NOTE = "fanout"
S1_RATE = 20
S1_RECIPIENTS = 9
INTERVAL_S = 2.0
WRITER = PeerOrigin("writer", can_write=True)


class Note:
    """A loaded room and the client document whose edits it takes."""

    def __init__(self, room_id: str, body_chars: int) -> None:
        self.author: Doc = Doc()
        self._sent: list[bytes] = []
        self.author.observe(lambda event: self._sent.append(event.update))
        if body_chars:
            meta = self.author.get("meta", type=Map)
            body = self.author.get("body", type=XmlFragment)
            with self.author.transaction():
                meta["title"] = "Quarterly planning notes for the storage team"
                meta["tags"] = Array(["work", "planning", "infra"])
                meta["priority"] = "high"
                words = ("lorem ipsum dolor sit amet consectetur adipiscing elit " * 400)[
                    :body_chars
                ]
                for start in range(0, len(words), 200):
                    paragraph = body.children.append(XmlElement("paragraph"))
                    paragraph.children.append(XmlText(words[start : start + 200]))
        self.live = LiveRoom(DocumentRoom(room_id))
        self._send()

    def edit(self, seq: int, where: str) -> None:
        if where == "body" and "body" in self.author.keys():
            paragraph = self.author.get("body", type=XmlFragment).children[0]
            assert isinstance(paragraph, XmlElement)
            text = paragraph.children[0]
            assert isinstance(text, XmlText)
            text.insert(0, "x")
        else:
            # What a fan-out writer sends: one key of its own map set.
            self.author.get("lt", type=Map)["t"] = f"@lt;0;{seq};{time.time()};1#"
        self._send()

    def _send(self) -> None:
        updates, self._sent = self._sent, []
        for update in updates:
            self.live.room.apply_local_update(update, WRITER)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="collab-index-cost-") as workdir:
        url = "memory://" if args.store == "memory" else f"sqlite:///{workdir}/index.db"
        if args.workspace_notes:
            if args.store != "sqlite":
                raise SystemExit("--workspace-notes needs --store sqlite")
            from harness.catalog_data import generate

            await generate(url, notes=args.workspace_notes, seed=1, documents=False, progress=print)
        # The generated notes are the catalog scenario's workspace: ours goes there with them.
        workspace = "bench" if args.workspace_notes else WORKSPACE
        store = create_store(url)
        await store.open()
        # The timer never fires within a run: each pass is run (and timed) here.
        indexer = CatalogIndexer(
            store, store, interval_s=3600.0, on_indexed=lambda room_id, indexed: None
        )
        notes = [Note(f"{workspace}/{NOTE}{i}", args.body_chars) for i in range(args.rooms)]
        seq = 0
        per_pass_us = []
        try:
            for note in notes:  # the rows' first pass (creating them) is not timed
                indexer.document_changed(DocumentChange(note.live, "u1", True))
            await indexer.index_dirty()
            for _round in range(args.rounds):
                spent = 0.0
                for _ in range(args.passes):
                    for note in notes:
                        note.edit(seq, args.edit)
                        indexer.document_changed(DocumentChange(note.live, "u1", True))
                        seq += 1
                    started = time.process_time()
                    await indexer.index_dirty()
                    spent += time.process_time() - started
                per_pass_us.append(spent / (args.passes * args.rooms) * 1e6)
        finally:
            await indexer.close()
            await store.close()
    best, median = min(per_pass_us), statistics.median(per_pass_us)
    # Per delivery in S1: a room gets S1_RATE edits/s, each delivered to S1_RECIPIENTS peers,
    # and is indexed once per interval.
    deliveries_per_pass = S1_RATE * S1_RECIPIENTS * INTERVAL_S
    return {
        "store": args.store,
        "edit": args.edit,
        "passes": args.passes,
        "rooms": args.rooms,
        "rounds": args.rounds,
        "per_pass_us": per_pass_us,
        "best_us": best,
        "median_us": median,
        "s1_us_per_delivery": median / deliveries_per_pass,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=("memory", "sqlite"), default="sqlite")
    parser.add_argument("--passes", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--workspace-notes", type=int, default=0)
    parser.add_argument("--body-chars", type=int, default=0)
    parser.add_argument("--edit", choices=("cursor", "body"), default="cursor")
    args = parser.parse_args()
    if (
        min(args.passes, args.rounds, args.rooms) < 1
        or min(args.workspace_notes, args.body_chars) < 0
    ):
        parser.error("--passes, --rounds, --rooms >= 1; --workspace-notes, --body-chars >= 0")
    result = asyncio.run(run(args))
    print(
        f"{result['store']}, {args.edit} edits: indexing a note costs "
        f"{result['median_us']:.0f} µs of CPU in a "
        f"pass over {args.rooms} (median of {args.rounds} rounds of {args.passes} passes; "
        f"best {result['best_us']:.0f}); "
        f"in S1 at {S1_RATE} edits/s that is {result['s1_us_per_delivery']:.3f} µs per delivery "
        f"(one pass per room every {INTERVAL_S:g} s, {S1_RATE * S1_RECIPIENTS * INTERVAL_S:.0f} "
        "deliveries)"
    )


if __name__ == "__main__":
    main()
