"""Migration 0013 (writers of the update log) on a database written before it: its snapshot
and rows carry no writer, so a compaction by any live document merges them, even with a
state that lacks them, on SQLite and Postgres."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import asyncpg
from pycrdt import Doc, Text

from collab.store import PostgresStore, SqliteStore
from collab.store.base import Held
from tests.support.migrated import postgres_store_from, sqlite_store_from
from tests.support.postgres_server import PostgresServer
from tests.support.typed import typed_words

ROOM = "w1/n1"
AT = "2026-12-07T10:00:00.000000+00:00"
WRITER = 7


async def _check_merged(store: SqliteStore | PostgresStore, text: str) -> None:
    await store.compact(ROOM, Doc().get_update(), Held(WRITER))
    stored = await store.load(ROOM)
    assert stored.updates == []
    assert stored.snapshot is not None
    doc: Doc[Text] = Doc()
    doc.apply_update(stored.snapshot)
    assert str(doc.get("text", type=Text)) == text


async def test_sqlite_log_from_before_writers_is_merged(tmp_path: Path) -> None:
    updates, text = typed_words(("one ", "two ", "three"))

    async def seed(conn: aiosqlite.Connection) -> None:
        await conn.execute(
            "INSERT INTO document_snapshots (room_id, state, updated_at) VALUES (?, ?, ?)",
            (ROOM, updates[0], AT),
        )
        await conn.executemany(
            "INSERT INTO document_updates (room_id, data, created_at) VALUES (?, ?, ?)",
            [(ROOM, update, AT) for update in updates[1:]],
        )

    async with sqlite_store_from(tmp_path / "before.db", 13, seed) as store:
        await _check_merged(store, text)


async def test_postgres_log_from_before_writers_is_merged(
    postgres_server: PostgresServer,
) -> None:
    updates, text = typed_words(("one ", "two ", "three"))
    dsn = await postgres_server.create_database()

    async def seed(conn: asyncpg.Connection) -> None:
        await conn.execute(
            "INSERT INTO document_snapshots (room_id, state) VALUES ($1, $2)", ROOM, updates[0]
        )
        await conn.executemany(
            "INSERT INTO document_updates (room_id, data) VALUES ($1, $2)",
            [(ROOM, update) for update in updates[1:]],
        )

    async with postgres_store_from(dsn, 13, seed) as store:
        await _check_merged(store, text)
