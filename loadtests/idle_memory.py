"""Where an idle synced connection's server memory goes: tracemalloc over N connections.

    python loadtests/idle_memory.py [--connections 1000] [--top 30] [--by-type]

Starts the app in this process (memory store, uvloop) and, in a child process, N raw
y-websocket clients of distinct users, ten to a note, each sending sync step 1 and one
awareness state, then idling. Prints the Python memory the connections added per connection,
by source line and by file (tracemalloc: the objects' requested sizes, not RSS; the
`idle` scenario of run.py measures RSS).

`--by-type` also lists the objects alive while the clients idle, per connection, by type and
by the innermost line of collab (or else of any file) that allocated them: the view that
says which object to remove, where the per-line view says which line to look at. Sizes there
are `sys.getsizeof` (no allocator overhead), and only objects allocated after the warm-up
that at least a third of the connections hold are listed.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import os
import sys
import tempfile
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp.test_utils import TestServer

from collab.protocol.messages import (
    AwarenessEntry,
    encode_awareness,
    encode_sync_step1,
)
from collab.web.app import create_app
from tests.conftest import make_settings, token_for

WARM_CONNECTIONS = 10


async def clients(base: str, tokens: list[str]) -> None:
    """The child process: open the connections, say "warm" after the first few and "ready"
    after all, then idle until killed."""
    import websockets

    rooms = max(1, len(tokens) // 10)
    held = []

    async def open_one(index: int) -> None:
        url = f"{base}/ws/docs/w1/idle{index % rooms}?token={tokens[index]}"
        socket = await websockets.connect(url, max_size=None, open_timeout=120)
        await socket.send(encode_sync_step1(b"\x00"))
        state = json.dumps({"user": {"name": f"user {index}", "color": "#30bced"}})
        await socket.send(encode_awareness([AwarenessEntry(100_000 + index, 1, state)]))
        held.append(socket)

    for index in range(WARM_CONNECTIONS):
        await open_one(index)
    print("warm", flush=True)
    await asyncio.sleep(1.5)
    for start in range(WARM_CONNECTIONS, len(tokens), 100):
        await asyncio.gather(*(open_one(i) for i in range(start, min(len(tokens), start + 100))))
    await asyncio.sleep(1)
    print("ready", flush=True)
    await asyncio.sleep(3600)


def objects_by_type(added: int, top: int) -> list[str]:
    """Rows of the `--by-type` view: the objects tracemalloc saw allocated, per connection,
    grouped by type and allocation site (the GC's objects, and the untracked ones they hold)."""
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    sizes: collections.Counter[tuple[str, str]] = collections.Counter()
    seen: set[int] = set()

    def visit(obj: object) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        traceback = tracemalloc.get_object_traceback(obj)
        if traceback is None:
            return  # allocated before tracemalloc started (the warm-up)
        # tracemalloc lists the oldest frame first: take the innermost of collab's, else of all.
        frames = list(traceback)[::-1]
        frame = next((f for f in frames if "/collab/" in f.filename), frames[0])
        key = (type(obj).__name__, f"{Path(frame.filename).name}:{frame.lineno}")
        counts[key] += 1
        sizes[key] += sys.getsizeof(obj)

    for obj in gc.get_objects():
        visit(obj)
        for referent in gc.get_referents(obj):
            if not gc.is_tracked(referent):
                visit(referent)
    rows = [key for key in counts if counts[key] >= added / 3]
    rows.sort(key=lambda key: -sizes[key])
    return [
        f"{sizes[key] / added:8.0f} B {counts[key] / added:6.2f} objects  {key[0]} at {key[1]}"
        for key in rows[:top]
    ]


async def server(count: int, top: int, by_type: bool) -> None:
    settings = make_settings(max_connections_per_user=count + 10)
    app = create_app(settings)
    test_server = TestServer(app, host="127.0.0.1", port=0)
    await test_server.start_server()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump([token_for(settings, f"user{i}") for i in range(count)], file)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--child",
        f"ws://127.0.0.1:{test_server.port}",
        file.name,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        if await child.stdout.readline() != b"warm\n":
            raise SystemExit("the clients failed to connect")
        await asyncio.sleep(1)
        gc.collect()
        tracemalloc.start(10)
        before = tracemalloc.take_snapshot()
        if await child.stdout.readline() != b"ready\n":
            raise SystemExit("the clients failed to connect")
        await asyncio.sleep(2)
        gc.collect()
        after = tracemalloc.take_snapshot()
        # While the clients still idle: afterwards their connections are being torn down.
        types = objects_by_type(count - WARM_CONNECTIONS, top) if by_type else []
    finally:
        child.kill()
        await child.wait()
        os.remove(file.name)
    added = count - WARM_CONNECTIONS
    by_line = after.compare_to(before, "lineno")
    total = sum(stat.size_diff for stat in by_line)
    print(f"{added} connections: {total / added:.0f} B of Python objects each")
    for title, stats in (("by line", by_line), ("by file", after.compare_to(before, "filename"))):
        print(f"--- {title}")
        for stat in stats[:top]:
            print(
                f"{stat.size_diff / added:8.0f} B {stat.count_diff / added:6.2f} objects  "
                f"{stat.traceback[0]}"
            )
    if by_type:
        print("--- by type (sys.getsizeof), where allocated")
        print("\n".join(types))
    await test_server.close()


def main() -> None:
    import uvloop

    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        uvloop.run(clients(sys.argv[2], json.loads(Path(sys.argv[3]).read_text())))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--by-type", action="store_true", help="also list the objects kept, by type and site"
    )
    args = parser.parse_args()
    uvloop.run(server(args.connections, args.top, args.by_type))


if __name__ == "__main__":
    main()
