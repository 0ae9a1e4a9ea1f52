"""Migration 0008 (versions) on a database with logged updates written before it: the updates
load as before, by no author, and the room's history starts empty, on SQLite and Postgres."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import asyncpg

from collab.store import PostgresStore, SqliteStore
from tests.support.migrated import postgres_store_from, sqlite_store_from
from tests.support.postgres_server import PostgresServer
from tests.support.typed import typed_words

ROOM = "w1/n1"
AT = "2026-12-06T10:00:00.000000+00:00"


def _updates() -> list[bytes]:
    return typed_words(("logged ", "before ", "versions"))[0]


async def _check_the_log_is_kept(store: SqliteStore | PostgresStore, updates: list[bytes]) -> None:
    assert (await store.load(ROOM)).updates == updates
    assert await store.list_versions(ROOM, limit=10) == []
    version = await store.add_version(
        ROOM, updates[0], kind="named", name="first", created_by="u1", at=AT
    )
    assert version is not None
    assert version.authors == ()
    assert await store.version_state(ROOM, version.id) == updates[0]


async def test_sqlite_updates_logged_before_versions_are_kept_by_no_author(
    tmp_path: Path,
) -> None:
    """A SQLite log written at 0007 loads the same after 0008, every row's author NULL."""
    path = tmp_path / "log.db"
    updates = _updates()

    async def seed(conn: aiosqlite.Connection) -> None:
        await conn.executemany(
            "INSERT INTO document_updates (room_id, data, created_at) VALUES (?, ?, ?)",
            [(ROOM, update, AT) for update in updates],
        )

    async with sqlite_store_from(path, 8, seed) as store:
        await _check_the_log_is_kept(store, updates)
    async with aiosqlite.connect(path) as conn:
        rows = await conn.execute_fetchall("SELECT author FROM document_updates")
    assert [row[0] for row in rows] == [None] * len(updates)


async def test_postgres_updates_logged_before_versions_are_kept_by_no_author(
    postgres_server: PostgresServer,
) -> None:
    """A Postgres log written at 0007 loads the same after 0008, every row's author NULL."""
    dsn = await postgres_server.create_database()
    updates = _updates()

    async def seed(conn: asyncpg.Connection) -> None:
        await conn.executemany(
            "INSERT INTO document_updates (room_id, data) VALUES ($1, $2)",
            [(ROOM, update) for update in updates],
        )

    async with postgres_store_from(dsn, 8, seed) as store:
        await _check_the_log_is_kept(store, updates)
    conn = await asyncpg.connect(dsn)
    try:
        authors = await conn.fetch("SELECT author FROM document_updates")
    finally:
        await conn.close()
    assert [row["author"] for row in authors] == [None] * len(updates)
