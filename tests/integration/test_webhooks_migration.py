"""Migration 0010 (webhooks) on a database with notes written before it: the notes read as
before, no endpoint or delivery exists, and a change made after it is reported once an
endpoint is registered, on SQLite and Postgres."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import asyncpg

from collab.store import PostgresStore, SqliteStore
from collab.store.rows import format_timestamp
from collab.store.webhooks import EVENT_TYPES, Endpoint
from tests.support.migrated import postgres_store_from, sqlite_store_from
from tests.support.postgres_server import PostgresServer

AT = "2026-12-06T10:00:00.000000+00:00"
INSERT_NOTE = (
    "INSERT INTO notes (workspace_id, note_id, title, title_key, tags, pinned, priority, "
    "assignees, excerpt, content_hash, search_title, search_tags, clock, created_at, "
    "created_by, updated_at, updated_by) "
)


async def _check_the_note_is_kept_and_reported(store: SqliteStore | PostgresStore) -> None:
    entry = await store.get_note("w1", "n1")
    assert entry is not None
    assert entry.fields.title == "Before"
    assert await store.list_endpoints() == []
    await store.add_endpoint(
        Endpoint(
            id="ep_a",
            url="https://hooks.example.com/a",
            events=EVENT_TYPES,
            workspace_id=None,
            secret="whsec_" + "A" * 44,
            created_at=format_timestamp(),
        )
    )
    trashed = await store.trash_note("w1", "n1", at=format_timestamp())
    assert trashed is not None
    [delivery] = await store.list_deliveries("ep_a", limit=10)
    assert delivery.event_type == "note.trashed"


async def test_sqlite_notes_written_before_webhooks_are_kept_and_reported(
    tmp_path: Path,
) -> None:
    """A SQLite catalog written at 0009 reads the same after 0010, which adds no endpoint."""
    path = tmp_path / "notes.db"

    async def seed(conn: aiosqlite.Connection) -> None:
        await conn.execute(
            INSERT_NOTE + "VALUES ('w1', 'n1', 'Before', 'before', '[]', 0, 0, '[]', '', 'h', "
            "'before', '', 1, ?, 'u1', ?, 'u1')",
            (AT, AT),
        )

    async with sqlite_store_from(path, 10, seed) as store:
        await _check_the_note_is_kept_and_reported(store)


async def test_postgres_notes_written_before_webhooks_are_kept_and_reported(
    postgres_server: PostgresServer,
) -> None:
    """A Postgres catalog written at 0009 reads the same after 0010, which adds no endpoint."""
    dsn = await postgres_server.create_database()

    async def seed(conn: asyncpg.Connection) -> None:
        await conn.execute(
            INSERT_NOTE.replace("search_tags,", "search_tags, search_body,")
            + "VALUES ('w1', 'n1', 'Before', 'before', '{}', false, 0, '{}', '', 'h', "
            "'before', '', '', 1, $1, 'u1', $1, 'u1')",
            AT,
        )

    async with postgres_store_from(dsn, 10, seed) as store:
        await _check_the_note_is_kept_and_reported(store)
