"""CPU per logged update of the group commit's SQLite write, without the server around it.

    python loadtests/sqlite_log_cost.py [--commits 300] [--rows 200] [--rooms 100]
                                        [--cache-kib 2000] [--checkpoint-pages 1000]
                                        [--settle-every 50 | --index-every-commit]

Creates the store's schema by its migrations (so migration 0012's partial room index)
in a temporary WAL database with `synchronous = NORMAL`, fills it with 40,000 rows, then
makes `--commits` transactions the way `SqliteStore.append_updates` does (the tombstone
check, one `executemany` of `--rows` 40-byte updates spread over `--rooms` notes into the
log's tail, and every `--settle-every` commits the settle that indexes the tail) and prints
the process's CPU per row. The S1 fan-out's shape is the default: 2,000 updates a second of
100 notes, a commit every 100 ms, a settle every 5 s (10,000 rows). `--index-every-commit`
is the log before 0012: a full `(room_id, id)` index, written by every commit.
`--cache-kib` and `--checkpoint-pages` set `cache_size` and `wal_autocheckpoint`; the
store's own values are 32768 and 10000 (SQLite's defaults: 2000 and 1000).
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collab.store.migrations import list_migrations
from collab.store.sqlite import APPEND_TO_LOG_TAIL, SETTLE_LOG_TAIL

# The log before migration 0012: a full room index, which every insert writes.
INDEX_EVERY_COMMIT = """
DROP INDEX document_updates_room_id_id_settled;
CREATE INDEX document_updates_room_id_id ON document_updates (room_id, id);
"""
APPEND_BEFORE_0012 = (
    "INSERT INTO document_updates (room_id, data, author, created_at) VALUES (?, ?, ?, ?)"
)


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def settle(conn: sqlite3.Connection) -> None:
    """What `SqliteStore` does to settle the log's tail, in the caller's transaction."""
    for statement in SETTLE_LOG_TAIL:
        conn.execute(statement)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--cache-kib", type=int, default=2000)
    parser.add_argument("--checkpoint-pages", type=int, default=1000)
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--settle-every", type=int, default=50, metavar="COMMITS")
    shape.add_argument("--index-every-commit", action="store_true")
    args = parser.parse_args()
    tail = not args.index_every_commit
    with tempfile.TemporaryDirectory(prefix="collab-sqlite-cost-") as tmp:
        conn = sqlite3.connect(Path(tmp) / "log.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA cache_size = -{args.cache_kib}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {args.checkpoint_pages}")
        for migration in list_migrations("sqlite"):
            conn.executescript(migration.sql)
        if not tail:
            conn.executescript(INDEX_EVERY_COMMIT)
        update = os.urandom(40)
        rooms = [f"ws{r}/note" for r in range(args.rooms)]
        # Each row with its note's writer (migration 0013), as the group commit appends it.
        rows = [
            (rooms[r % args.rooms], update, f"user{r % args.rooms}", "2026-12-07T00:00:00+00:00")
            + ((r % args.rooms + 1,) if tail else ())
            for r in range(args.rows)
        ]
        check = (
            f"SELECT room_id FROM note_tombstones WHERE room_id IN ({','.join('?' * len(rooms))})"
        )
        insert = APPEND_TO_LOG_TAIL if tail else APPEND_BEFORE_0012
        # A log of some depth first, settled: the index a busy store's commits write into.
        conn.execute("BEGIN")
        for _ in range(200):
            conn.executemany(insert, rows)
        if tail:
            settle(conn)
        conn.execute("COMMIT")
        started = cpu_s()
        for number in range(1, args.commits + 1):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(check, rooms).fetchall()
            conn.executemany(insert, rows)
            if tail and number % args.settle_every == 0:
                settle(conn)
            conn.execute("COMMIT")
        spent = cpu_s() - started
        conn.close()
    per_row_us = spent * 1e6 / (args.commits * args.rows)
    index = f"a settle every {args.settle_every} commits" if tail else "indexed every commit"
    print(
        f"{per_row_us:.2f} µs of CPU per logged update ({args.commits} commits of {args.rows} "
        f"rows over {args.rooms} notes, {index}, cache {args.cache_kib} KiB, checkpoint "
        f"every {args.checkpoint_pages} pages)"
    )


if __name__ == "__main__":
    main()
