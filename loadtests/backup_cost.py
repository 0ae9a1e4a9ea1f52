"""What `collab backup` costs on a large SQLite database, with a writer running beside it.

    python loadtests/backup_cost.py [--mib 1300] [--writer-rows-per-s 2000] [--window-s 15]
                                    [--json PATH]

Builds a database of about `--mib` MiB in a temporary directory (the store's schema, its
update log filled with 1 KiB rows over 1,000 notes), then times `collab backup` of it twice
alone and twice while a writer appends through `SqliteStore` as the group commit does (200
rows a transaction, `--writer-rows-per-s` rows a second, for `--window-s`, the copy starting
2 s in). Reports each copy's wall time, the
writer's rows per second with and without a copy running, and the largest `-wal` file seen
(checkpoints cannot pass a reader's snapshot, so it grows while a copy runs). Everything is
deleted at the end; every loop is bounded by count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collab.store import SqliteStore

ROW_BYTES = 1024
ROWS_A_COMMIT = 200
NOTES = 1000
COPY_TIMEOUT_S = 600.0


def build(path: Path, mib: int) -> None:
    async def migrate() -> None:
        store = SqliteStore(str(path))
        await store.open()
        await store.close()

    asyncio.run(migrate())
    rows = mib * 2**20 // (ROW_BYTES + 80)  # a row and its share of the index
    blob = os.urandom(ROW_BYTES)
    conn = sqlite3.connect(path)
    try:
        for start in range(0, rows, 100_000):
            count = min(100_000, rows - start)
            with conn:
                conn.executemany(
                    "INSERT INTO document_updates (room_id, data, author, created_at, writer, "
                    "settled) VALUES (?, ?, 'u1', '2026-12-07T00:00:00.000000+00:00', NULL, 1)",
                    ((f"w1/n{(start + i) % NOTES}", blob) for i in range(count)),
                )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


async def write_for(path: Path, seconds: float, rows_per_s: int) -> dict[str, float]:
    """Append as the group commit does for `seconds`; rows a second and the largest WAL."""
    store = SqliteStore(str(path))
    await store.open()
    blob = os.urandom(ROW_BYTES)
    wal = path.with_name(path.name + "-wal")
    written, largest_wal = 0, 0
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < seconds:
            batch = [(f"w1/n{i % NOTES}", blob, "u1") for i in range(ROWS_A_COMMIT)]
            await store.append_updates(batch)
            written += ROWS_A_COMMIT
            largest_wal = max(largest_wal, wal.stat().st_size if wal.exists() else 0)
            await asyncio.sleep(max(0.0, written / rows_per_s - elapsed))
    finally:
        await store.close()
    return {
        "rows_per_s": written / (time.monotonic() - started),
        "largest_wal_mib": largest_wal / 2**20,
    }


def copy(path: Path, destination: Path) -> float:
    env = {**os.environ, "COLLAB_DATABASE_URL": f"sqlite:///{path}"}
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "collab", "backup", str(destination), "--force"],
        env=env,
        check=True,
        capture_output=True,
        timeout=COPY_TIMEOUT_S,
    )
    return time.monotonic() - started


async def copy_beside_writer(
    path: Path, destination: Path, rows_per_s: int, window_s: float
) -> dict[str, float]:
    """A copy started 2 s into a `window_s` window of writing."""
    copy_s = 0.0

    async def timed_copy() -> None:
        nonlocal copy_s
        await asyncio.sleep(2.0)
        copy_s = await asyncio.to_thread(copy, path, destination)

    copying = asyncio.create_task(timed_copy())
    wrote = await write_for(path, window_s, rows_per_s)
    await copying
    return {"copy_s": copy_s, "copy_ended_in_window": float(2.0 + copy_s <= window_s), **wrote}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=1300)
    parser.add_argument("--writer-rows-per-s", type=int, default=2000)
    parser.add_argument("--window-s", type=float, default=15.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="collab-backup-cost-") as tmp:
        path, destination = Path(tmp) / "notes.db", Path(tmp) / "copy.db"
        build(path, args.mib)
        size_mib = path.stat().st_size / 2**20
        alone = [copy(path, destination) for _ in range(2)]
        writer_alone = asyncio.run(write_for(path, args.window_s, args.writer_rows_per_s))
        beside = [
            asyncio.run(
                copy_beside_writer(path, destination, args.writer_rows_per_s, args.window_s)
            )
            for _ in range(2)
        ]
    result = {
        "database_mib": round(size_mib, 1),
        "copy_alone_s": [round(s, 2) for s in alone],
        "writer_alone": {k: round(v, 1) for k, v in writer_alone.items()},
        "copy_beside_writer": [{k: round(v, 2) for k, v in run.items()} for run in beside],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
