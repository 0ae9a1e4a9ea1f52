"""Migration 0007 (note access) on a catalog written before it: every note is a workspace
note with an empty share list, listed for any reader, on SQLite and Postgres."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import asyncpg

from collab.store import PostgresStore, SqliteStore
from collab.store.catalog import CatalogQuery, NoteAccess, SortKey, Visibility
from collab.store.migrations import (
    Dialect,
    Migration,
    apply_postgres_migrations,
    apply_sqlite_migrations,
    list_migrations,
)
from tests.support.postgres_server import PostgresServer

AT = "2026-12-06T10:00:00.000000+00:00"
# (note id, creator, title), oldest first.
NOTES = [("a", "u1", "roadmap"), ("b", "u2", "roadmap"), ("c", None, "roadmap")]


def _before_access(dialect: Dialect) -> list[Migration]:
    return [migration for migration in list_migrations(dialect) if migration.version < 7]


async def _check_every_note_is_read_by_the_workspace(store: SqliteStore | PostgresStore) -> None:
    for note_id, creator, _ in NOTES:
        assert await store.get_access("w1", note_id) == NoteAccess(
            Visibility.WORKSPACE, {}, creator
        )
        entry = await store.get_note("w1", note_id)
        assert entry is not None
        assert entry.visibility is Visibility.WORKSPACE
    for query in (
        CatalogQuery(reader="u9"),
        CatalogQuery(reader="u9", sort=SortKey.TITLE),
        CatalogQuery(reader="u9", text="roadmap", sort=SortKey.RELEVANCE),
    ):
        page = await store.list_notes("w1", query)
        assert sorted(entry.note_id for entry in page.entries) == ["a", "b", "c"]


async def test_sqlite_notes_written_before_access_are_workspace_notes(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        await apply_sqlite_migrations(conn, _before_access("sqlite"))
        for seq, (note_id, creator, title) in enumerate(NOTES, start=1):
            await conn.execute(
                "INSERT INTO notes (seq, workspace_id, note_id, title, title_key, tags, pinned, "
                "priority, assignees, excerpt, clock, content_hash, search_title, search_tags, "
                "created_at, created_by, updated_at) VALUES (?, 'w1', ?, ?, ?, '[]', 0, 0, "
                "'[]', '', 1, '', ?, '', ?, ?, ?)",
                (seq, note_id, title, title, title, AT, creator, AT),
            )
            await conn.execute(
                "INSERT INTO notes_search (rowid, title, tags, body) VALUES (?, ?, '', '')",
                (seq, title),
            )
    store = SqliteStore(str(path))
    await store.open()
    try:
        await _check_every_note_is_read_by_the_workspace(store)
    finally:
        await store.close()


async def test_postgres_notes_written_before_access_are_workspace_notes(
    postgres_server: PostgresServer,
) -> None:
    dsn = await postgres_server.create_database()
    conn = await asyncpg.connect(dsn)
    try:
        await apply_postgres_migrations(conn, _before_access("postgres"))
        for note_id, creator, title in NOTES:
            await conn.execute(
                "INSERT INTO notes (workspace_id, note_id, title, title_key, tags, pinned, "
                "priority, assignees, excerpt, search_title, search_tags, search_body, clock, "
                "content_hash, created_at, created_by, updated_at) VALUES ('w1', $1, $2, $2, "
                "'{}', false, 0, '{}', '', $2, '', '', 1, '', $3, $4, $3)",
                note_id,
                title,
                AT,
                creator,
            )
    finally:
        await conn.close()
    store = PostgresStore(dsn)
    await store.open()
    try:
        await _check_every_note_is_read_by_the_workspace(store)
    finally:
        await store.close()
