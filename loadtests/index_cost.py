"""CPU of one catalog indexing pass of a note, in one process: what the indexer adds per edit.

    python loadtests/index_cost.py [--store memory|sqlite] [--passes 50] [--rounds 5]
                                   [--rooms 100] [--workspace-notes 0] [--body-chars 0]

Does what a pass of `CatalogIndexer` does for `--rooms` dirty notes (the S1 fan-out's 100
rooms are all dirty at each pass), `--passes` times: read each note's fields from its
document (`note_fields`) and its clock from the state vector, and write them all with one
`index_notes` call, each note edited between two passes as a fan-out writer edits (one map
key set). `--rooms 1` is a pass of a lone busy note. The default document is the fan-out
scenario's: no `meta`, no `body` (an empty row). `--body-chars` gives each a body of that
many characters and a title and tags, as a real note has; `--workspace-notes` puts that many
other notes' rows in the notes' workspace first (SQLite: written like the catalog
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

LOADTESTS_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(LOADTESTS_DIR), str(LOADTESTS_DIR.parent)]

from pycrdt import Array, Doc, Map, XmlElement, XmlFragment, XmlText  # noqa: E402

from collab.protocol.updates import read_state_vector  # noqa: E402
from collab.rooms.note_fields import note_fields  # noqa: E402
from collab.store import create_store  # noqa: E402
from collab.store.catalog import NoteReading  # noqa: E402
from collab.store.rows import format_timestamp  # noqa: E402

WORKSPACE = "load0"
NOTE = "fanout"
S1_RATE = 20
S1_RECIPIENTS = 9
INTERVAL_S = 2.0


def make_doc(body_chars: int) -> tuple[Doc, Map]:
    doc: Doc = Doc()
    edits = doc.get("lt", type=Map)
    if body_chars:
        meta = doc.get("meta", type=Map)
        body = doc.get("body", type=XmlFragment)
        with doc.transaction():
            meta["title"] = "Quarterly planning notes for the storage team"
            meta["tags"] = Array(["work", "planning", "infra"])
            meta["priority"] = "high"
            words = ("lorem ipsum dolor sit amet consectetur adipiscing elit " * 400)[:body_chars]
            for start in range(0, len(words), 200):
                paragraph = body.children.append(XmlElement("paragraph"))
                paragraph.children.append(XmlText(words[start : start + 200]))
    return doc, edits


async def run(args: argparse.Namespace) -> dict[str, float]:
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
        notes = [(f"{NOTE}{i}", *make_doc(args.body_chars)) for i in range(args.rooms)]
        seq = 0
        per_pass_us = []
        try:
            for _round in range(args.rounds):
                spent = 0.0
                for _ in range(args.passes):
                    for _, _, edits in notes:
                        edits["t"] = f"@lt;0;{seq};{time.time()};1#"
                        seq += 1
                    started = time.process_time()
                    readings = [
                        NoteReading(
                            workspace,
                            note_id,
                            note_fields(doc),
                            sum(read_state_vector(doc.get_state()).values()),
                            "u1",
                            format_timestamp(),
                        )
                        for note_id, doc, _ in notes
                    ]
                    await store.index_notes(readings)
                    spent += time.process_time() - started
                per_pass_us.append(spent / (args.passes * args.rooms) * 1e6)
        finally:
            await store.close()
    best, median = min(per_pass_us), statistics.median(per_pass_us)
    # Per delivery in S1: a room gets S1_RATE edits/s, each delivered to S1_RECIPIENTS peers,
    # and is indexed once per interval.
    deliveries_per_pass = S1_RATE * S1_RECIPIENTS * INTERVAL_S
    return {
        "store": args.store,
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
    args = parser.parse_args()
    if (
        min(args.passes, args.rounds, args.rooms) < 1
        or min(args.workspace_notes, args.body_chars) < 0
    ):
        parser.error("--passes, --rounds, --rooms >= 1; --workspace-notes, --body-chars >= 0")
    result = asyncio.run(run(args))
    print(
        f"{result['store']}: indexing a note costs {result['median_us']:.0f} µs of CPU in a "
        f"pass over {args.rooms} (median of {args.rounds} rounds of {args.passes} passes; "
        f"best {result['best_us']:.0f}); "
        f"in S1 at {S1_RATE} edits/s that is {result['s1_us_per_delivery']:.3f} µs per delivery "
        f"(one pass per room every {INTERVAL_S:g} s, {S1_RATE * S1_RECIPIENTS * INTERVAL_S:.0f} "
        "deliveries)"
    )


if __name__ == "__main__":
    main()
