"""What reading and applying real and hostile update shapes costs, to choose the limits of
`collab/rooms/manager.py` (inline vs trial) from measurements.

    python loadtests/update_costs.py [--json FILE]

Measures, on this machine, in this process (bounded: about a minute):
- `read_update` on typical typing updates of the automerge-paper trace (or its generated
  stand-in), a map change and a deletion, with the C reader (where built) and the Python one,
  and on larger shapes;
- pycrdt's apply of real shapes: a keystroke, a long offline session (the trace's first
  50,000 edits as one update), the whole trace's state, a plain-text paste;
- the hostile shape of D1 (n prepends by client 1001, then n by client 1002) for a few n;
- whether pycrdt releases the GIL while it applies (a thread applying D1 while this thread
  counts 1 ms sleeps);
- the trial worker's round trip for a small and a large update in a big document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pycrdt import Doc, Map, Text

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from collab.protocol.updates import read_update, read_update_in_python  # noqa: E402
from collab.protocol.updates.native import _native_read  # noqa: E402
from collab.rooms.document import DocumentRoom  # noqa: E402
from collab.rooms.effects import ServerOrigin  # noqa: E402
from collab.rooms.trial import TrialWorker  # noqa: E402
from tests.support.trace import is_real_trace, load_trace, trace_path  # noqa: E402

OFFLINE_EDITS = 50_000
D1_SIZES = (1000, 2000, 4000, 8000)
READ_REPEATS = 20_000


# A client id as yjs draws them (a random 32-bit number): five bytes in every id.
CLIENT_ID = 3_418_712_117


def recorded_updates(edits: list[tuple[int, int, str]]) -> tuple[Doc[Any], list[bytes]]:
    doc: Doc[Any] = Doc(client_id=CLIENT_ID)
    text = doc.get("t", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for position, deleted, inserted in edits:
        if deleted:
            del text[position : position + deleted]
        if inserted:
            text.insert(position, inserted)
    return doc, updates


def per_call_us(function: Any, argument: bytes, repeats: int) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeats):
            function(argument)
        best = min(best, (time.perf_counter() - started) / repeats)
    return best * 1e6


def apply_ms(*updates: bytes) -> float:
    """The apply of the last update after the others, in ms (median of 3)."""
    times = []
    for _ in range(3):
        doc: Doc[Any] = Doc()
        for update in updates[:-1]:
            doc.apply_update(update)
        started = time.perf_counter()
        doc.apply_update(updates[-1])
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def prepends(client_id: int, count: int) -> bytes:
    doc: Doc[Any] = Doc(client_id=client_id)
    text = doc.get("t", type=Text)
    for _ in range(count):
        text.insert(0, "x")
    return doc.get_update()


def gil_ticks_during(update_before: bytes, update: bytes) -> dict[str, float]:
    doc: Doc[Any] = Doc()
    doc.apply_update(update_before)
    worker = threading.Thread(target=doc.apply_update, args=(update,))
    ticks = 0
    started = time.perf_counter()
    worker.start()
    while worker.is_alive():
        time.sleep(0.001)
        ticks += 1
    return {"apply_s": time.perf_counter() - started, "main_thread_ticks": ticks}


async def trial_round_trips(big_updates: list[bytes], small: bytes) -> dict[str, float]:
    room = DocumentRoom("w/n")
    for update in big_updates[:-1]:
        room.apply_local_update(update, ServerOrigin())
    worker = TrialWorker()
    try:
        started = time.perf_counter()
        await worker.trial("w/n", room.state_since, big_updates[-1], 30.0)
        first_ms = (time.perf_counter() - started) * 1e3
        times = []
        for _ in range(20):
            started = time.perf_counter()
            await worker.trial("w/n", room.state_since, small, 30.0)
            times.append(time.perf_counter() - started)
    finally:
        await worker.close()
    return {
        "document_bytes": len(room.encode_state()),
        "first_trial_ms_with_worker_start_and_full_state": first_ms,
        "next_trial_ms_median": statistics.median(times) * 1e3,
    }


def map_set_and_deletion() -> tuple[bytes, bytes]:
    """A map change of a stock library (a key set again: one value, one deletion) and a
    deletion of two characters."""
    doc: Doc = Doc()
    captured: list[bytes] = []
    doc.observe(lambda event: captured.append(event.update))
    meta = doc.get("meta", type=Map)
    meta["title"] = "Weekly plan"
    meta["title"] = "Weekly plan (draft)"
    text = doc.get("body", type=Text)
    text += "hello world"
    del text[2:4]
    return captured[1], captured[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    path = trace_path()
    trace = load_trace(path)
    edits = [patch for txn in trace.txns for patch in txn]
    doc, updates = recorded_updates(edits)
    results: dict[str, Any] = {"trace": "real" if is_real_trace(path) else "generated"}

    typing = [u for u in updates[:5000] if 20 <= len(u) <= 40]
    map_set, deletion = map_set_and_deletion()
    results["read_update_us"] = {
        "typing_update_median_bytes": statistics.median(len(u) for u in typing),
        # read_update: the C reader where it was built (None: this install has none)
        "c_reader_built": _native_read is not None,
        "typing_update": per_call_us(read_update, typing[len(typing) // 2], READ_REPEATS),
        "map_set": per_call_us(read_update, map_set, READ_REPEATS),
        "deletion": per_call_us(read_update, deletion, READ_REPEATS),
        # the pure-Python reader, the reference (what an install without a C compiler runs)
        "python_typing_update": per_call_us(
            read_update_in_python, typing[len(typing) // 2], READ_REPEATS
        ),
        "python_map_set": per_call_us(read_update_in_python, map_set, READ_REPEATS),
        "python_deletion": per_call_us(read_update_in_python, deletion, READ_REPEATS),
    }
    offline = doc_state_of(updates[:OFFLINE_EDITS])
    state = doc.get_update()
    paste = text_paste(16_000)
    results["read_update_ms"] = {
        f"offline_{OFFLINE_EDITS}_edits_{len(offline)}_bytes": per_call_us(read_update, offline, 3)
        / 1e3,
        f"whole_trace_state_{len(state)}_bytes": per_call_us(read_update, state, 3) / 1e3,
        f"paste_{len(paste)}_bytes": per_call_us(read_update, paste, 100) / 1e3,
    }
    results["struct_counts"] = {
        "typing_update": read_update(typing[0]).struct_count,
        "offline_session": read_update(offline).struct_count,
        "whole_trace_state": read_update(state).struct_count,
        "paste": read_update(paste).struct_count,
    }
    results["apply_ms"] = {
        "typing_update": apply_ms(*updates[:1001]) if len(updates) > 1000 else None,
        f"offline_{OFFLINE_EDITS}_edits": apply_ms(offline),
        "whole_trace_state": apply_ms(state),
        "paste_16000_chars": apply_ms(paste),
    }
    results["d1_apply_ms"] = {
        str(n): {
            "1001_then_1002": apply_ms(prepends(1001, n), prepends(1002, n)),
            "1002_then_1001": apply_ms(prepends(1002, n), prepends(1001, n)),
            "update_bytes": len(prepends(1002, n)),
        }
        for n in D1_SIZES
    }
    results["gil"] = gil_ticks_during(prepends(1001, 4000), prepends(1002, 4000))
    results["trial_worker"] = asyncio.run(trial_round_trips(updates[:20_000], typing[0]))
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


def doc_state_of(updates: list[bytes]) -> bytes:
    """One update holding `updates`, as a client that was offline for them sends it."""
    doc: Doc[Any] = Doc()
    for update in updates:
        doc.apply_update(update)
    return doc.get_update()


def text_paste(characters: int) -> bytes:
    doc: Doc[Any] = Doc(client_id=9)
    doc.get("t", type=Text).insert(0, "lorem ipsum " * (characters // 12))
    return doc.get_update()


if __name__ == "__main__":
    main()
