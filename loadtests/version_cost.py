"""What taking an automatic version of a big note costs its room: event-loop time and stalls.

    python loadtests/version_cost.py [--versions 20] [--store sqlite|memory|postgresql://…]
                                     [--json F]

Starts the server's own application (`create_app`, default store: SQLite in a temporary
directory) in this process, loads one note with the automerge-paper trace's whole state (311
kB, 260,000 edits of one text: `../shared/data`, or the generated stand-in of the same shape),
and takes `--versions` automatic versions the way the server does (`NoteHistory.take`), each
after a one-character edit so that every state is new (an unchanged one is not stored). For
each version it records:

- `loop_ms`: the event loop's own time for the version (encoding the state, the part that
  must run on the loop; `collab_version_loop_seconds`);
- `stall_ms`: the longest the loop was unavailable while the version was taken (a probe
  task asks for the loop every millisecond and records how late it got it): what an edit of
  any room arriving meanwhile waits at most;
- `take_ms`: the wall time of the whole take (flush, encode, digest and compression in a
  worker thread, the store's transaction);
- `cpu_ms`: the process's CPU time over the take, all threads;
- the state's bytes and the bytes stored (compressed).

The same probe over an idle second gives the machine's floor (`idle_stall_ms`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LOADTESTS_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(LOADTESTS_DIR), str(LOADTESTS_DIR.parent)]

from aiohttp.test_utils import TestServer  # noqa: E402
from harness.machine import machine_facts  # noqa: E402
from pycrdt import Doc, Text  # noqa: E402
from update_costs import recorded_updates  # noqa: E402

from collab.settings import Secret, Settings  # noqa: E402
from collab.web.app import create_app  # noqa: E402
from collab.web.keys import DATABASE, HISTORY, ROOMS  # noqa: E402
from tests.support.trace import is_real_trace, load_trace, trace_path  # noqa: E402

ROOM = "load0/paper"
PROBE_S = 0.001


class LoopProbe:
    """Asks for the event loop every PROBE_S and records the worst lateness since reset."""

    def __init__(self) -> None:
        self.worst_s = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def reset(self) -> None:
        self.worst_s = 0.0

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(PROBE_S)
            self.worst_s = max(self.worst_s, loop.time() - asked - PROBE_S)


def one_character_edit(state: bytes, number: int) -> bytes:
    doc: Doc[Any] = Doc()
    doc.apply_update(state)
    before = doc.get_state()
    doc.get("t", type=Text).insert(number % 1000, "x")
    return doc.get_update(before)


async def measure(database_url: str, versions: int) -> dict[str, Any]:
    settings = Settings(
        database_url=database_url,
        jwt_secret=Secret("version-cost-benchmark-secret-0123456789abcdef"),
        log_level="WARNING",
    )
    app = create_app(settings)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    probe = LoopProbe()
    try:
        path = trace_path()
        trace = load_trace(path)
        doc, _ = recorded_updates([patch for txn in trace.txns for patch in txn])
        state = doc.get_update()
        rooms, history = app[ROOMS], app[HISTORY]
        rows: list[dict[str, float]] = []
        async with rooms.holding(ROOM) as live:
            await rooms.apply_server_update(live, state, "benchmark")
            probe.start()
            await asyncio.sleep(1.0)
            probe.reset()
            await asyncio.sleep(1.0)
            idle_stall_s = probe.worst_s
            for number in range(versions):
                edit = one_character_edit(live.room.encoded_state(), number)
                await rooms.apply_server_update(live, edit, "benchmark")
                await asyncio.sleep(0.05)
                loop_before = history.loop_seconds
                cpu_before = time.process_time()
                probe.reset()
                started = time.perf_counter()
                version = await history.take(live, kind="auto", name=None, created_by=None)
                take_s = time.perf_counter() - started
                await asyncio.sleep(2 * PROBE_S)
                assert version is not None, "every state differs: each take stores a version"
                rows.append(
                    {
                        "loop_ms": (history.loop_seconds - loop_before) * 1e3,
                        "stall_ms": probe.worst_s * 1e3,
                        "take_ms": take_s * 1e3,
                        "cpu_ms": (time.process_time() - cpu_before) * 1e3,
                        "state_bytes": version.size,
                    }
                )
        stored = await app[DATABASE].version_bytes()
    finally:
        await probe.stop()
        await server.close()
    return {
        "trace": "real" if is_real_trace(path) else "generated",
        "store": database_url.split(":", 1)[0],
        "versions": versions,
        "idle_stall_ms": idle_stall_s * 1e3,
        "stored_bytes_per_version": stored / versions,
        "per_version": rows,
        "summary": {
            key: {
                "median": statistics.median(row[key] for row in rows),
                "max": max(row[key] for row in rows),
            }
            for key in ("loop_ms", "stall_ms", "take_ms", "cpu_ms", "state_bytes")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--store", default="sqlite")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        if args.store == "sqlite":
            url = f"sqlite:///{workdir}/collab.db"
        elif args.store == "memory":
            url = "memory://"
        else:
            url = args.store
        results = asyncio.run(measure(url, args.versions))
    results["command"] = "python loadtests/version_cost.py " + " ".join(sys.argv[1:])
    results["machine"] = machine_facts()
    summary = results["summary"]
    print(f"trace: {results['trace']}, store: {results['store']}, {args.versions} versions")
    print(f"idle loop stall (floor): {results['idle_stall_ms']:.2f} ms")
    for key, label in (
        ("state_bytes", "state bytes"),
        ("loop_ms", "event-loop ms per version (encode)"),
        ("stall_ms", "longest loop stall during a take, ms"),
        ("take_ms", "take, wall ms"),
        ("cpu_ms", "process CPU per take, ms"),
    ):
        print(f"{label:40s} median {summary[key]['median']:10.2f}  max {summary[key]['max']:10.2f}")
    print(f"stored bytes per version: {results['stored_bytes_per_version']:.0f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
