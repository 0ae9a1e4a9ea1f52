"""Migration 0009 (reminders) on a catalog written before it, on SQLite and Postgres: notes
already due count as armed (they send nothing), notes due later are left for the start-up
arming, and nothing is pending."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import asyncpg

from collab.store import PostgresStore, SqliteStore
from collab.store.reminders import DueNote
from collab.store.rows import format_timestamp
from tests.support.migrated import postgres_store_from, sqlite_store_from
from tests.support.postgres_server import PostgresServer

AT = "2026-12-06T10:00:00.000000+00:00"
PAST = ("2020-01-01", "2020-01-01T00:00:00.000000+00:00")
FUTURE = ("2999-01-01", "2999-01-01T00:00:00.000000+00:00")
# (note id, due, due_at, trashed_at)
NOTES = [
    ("past", *PAST, None),
    ("future", *FUTURE, None),
    ("binned", *FUTURE, AT),
    ("undated", None, None, None),
]


async def _check_only_future_notes_are_left_to_arm(store: SqliteStore | PostgresStore) -> None:
    assert await store.armed_due("w1/past") == PAST[0]
    for note_id in ("future", "binned", "undated"):
        assert await store.armed_due(f"w1/{note_id}") is None
    for note_id, *_ in NOTES:
        assert await store.pending_reminders(f"w1/{note_id}") == []
    assert await store.next_fire_at() is None
    listed = await store.unarmed_notes(after=DueNote.start(format_timestamp()), limit=10)
    assert listed == [DueNote("w1/future", *FUTURE)]


async def test_sqlite_notes_due_before_reminders_send_nothing(tmp_path: Path) -> None:
    """A SQLite catalog written at 0008: after 0009 its past due counts as armed, its future
    due is listed to be armed."""
    path = tmp_path / "catalog.db"

    async def seed(conn: aiosqlite.Connection) -> None:
        for seq, (note_id, due, due_at, trashed_at) in enumerate(NOTES, start=1):
            await conn.execute(
                "INSERT INTO notes (seq, workspace_id, note_id, title, title_key, tags, pinned, "
                "priority, due, due_at, assignees, excerpt, clock, content_hash, search_title, "
                "search_tags, created_at, created_by, updated_at, trashed_at) VALUES (?, 'w1', "
                "?, ?, ?, '[]', 0, 0, ?, ?, '[]', '', 1, '', ?, '', ?, 'u1', ?, ?)",
                (seq, note_id, note_id, note_id, due, due_at, note_id, AT, AT, trashed_at),
            )
            await conn.execute(
                "INSERT INTO notes_search (rowid, title, tags, body) VALUES (?, ?, '', '')",
                (seq, note_id),
            )

    async with sqlite_store_from(path, 9, seed) as store:
        await _check_only_future_notes_are_left_to_arm(store)


async def test_postgres_notes_due_before_reminders_send_nothing(
    postgres_server: PostgresServer,
) -> None:
    """A Postgres catalog written at 0008: after 0009 its past due counts as armed, its
    future due is listed to be armed."""
    dsn = await postgres_server.create_database()

    async def seed(conn: asyncpg.Connection) -> None:
        for note_id, due, due_at, trashed_at in NOTES:
            await conn.execute(
                "INSERT INTO notes (workspace_id, note_id, title, title_key, tags, pinned, "
                "priority, due, due_at, assignees, excerpt, search_title, search_tags, "
                "search_body, clock, content_hash, created_at, created_by, updated_at, "
                "trashed_at) VALUES ('w1', $1, $1, $1, '{}', false, 0, $2, $3, '{}', '', $1, "
                "'', '', 1, '', $4, 'u1', $4, $5)",
                note_id,
                due,
                due_at,
                AT,
                trashed_at,
            )

    async with postgres_store_from(dsn, 9, seed) as store:
        await _check_only_future_notes_are_left_to_arm(store)
