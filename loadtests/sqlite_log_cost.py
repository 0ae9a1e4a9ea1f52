"""CPU per logged update of the group commit's SQLite write, without the server around it.

    python loadtests/sqlite_log_cost.py [--commits 300] [--rows 200] [--rooms 100]
                                        [--cache-kib 2000] [--checkpoint-pages 1000]

Creates `document_updates` as the migrations do (the `(room_id, id)` index included) in a
temporary WAL database with `synchronous = NORMAL`, then makes `--commits` transactions the
way `SqliteStore.append_updates` does (the tombstone check, one `executemany` of `--rows`
40-byte updates spread over `--rooms` notes) and prints the process's CPU per row. The S1
fan-out's shape is the default: 2,000 updates a second of 100 notes, a commit every 100 ms.
`--cache-kib` and `--checkpoint-pages` set `cache_size` and `wal_autocheckpoint`; the
store's own values are 32768 and 10000 (SQLite's defaults: 2000 and 1000).
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import tempfile
from pathlib import Path


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--cache-kib", type=int, default=2000)
    parser.add_argument("--checkpoint-pages", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="collab-sqlite-cost-") as tmp:
        conn = sqlite3.connect(Path(tmp) / "log.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA cache_size = -{args.cache_kib}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {args.checkpoint_pages}")
        conn.execute(
            "CREATE TABLE document_updates (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "room_id TEXT NOT NULL, data BLOB NOT NULL, created_at TEXT NOT NULL, author TEXT)"
        )
        conn.execute("CREATE INDEX document_updates_room_id_id ON document_updates (room_id, id)")
        conn.execute("CREATE TABLE note_tombstones (room_id TEXT PRIMARY KEY)")
        update = os.urandom(40)
        rooms = [f"ws{r}/note" for r in range(args.rooms)]
        rows = [
            (rooms[r % args.rooms], update, f"user{r % args.rooms}", "2026-12-07T00:00:00+00:00")
            for r in range(args.rows)
        ]
        check = (
            f"SELECT room_id FROM note_tombstones WHERE room_id IN ({','.join('?' * len(rooms))})"
        )
        started = cpu_s()
        for _ in range(args.commits):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(check, rooms).fetchall()
            conn.executemany(
                "INSERT INTO document_updates (room_id, data, author, created_at) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )
            conn.execute("COMMIT")
        spent = cpu_s() - started
        conn.close()
    per_row_us = spent * 1e6 / (args.commits * args.rows)
    print(
        f"{per_row_us:.2f} µs of CPU per logged update ({args.commits} commits of {args.rows} "
        f"rows over {args.rooms} notes, cache {args.cache_kib} KiB, checkpoint every "
        f"{args.checkpoint_pages} pages)"
    )


if __name__ == "__main__":
    main()
