"""Migrations 0005 (search ranks) and 0016 (search words as given) on a catalog written
before them: the notes are found and ranked at once, on SQLite (the full-text table rebuilt
from its own rows) and Postgres (the new columns computed for every row)."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import asyncpg

from collab.store import PostgresStore, SqliteStore
from collab.store.catalog import CatalogQuery, SortKey
from collab.store.migrations import (
    Dialect,
    Migration,
    apply_postgres_migrations,
    apply_sqlite_migrations,
    list_migrations,
)
from tests.support.postgres_server import PostgresServer

AT = "2026-12-06T10:00:00.000000+00:00"
# (note id, title words, tag words, body words), oldest first.
NOTES = [
    ("body", "x", "", "roadmap café"),
    ("tags", "y", "roadmap", "text"),
    ("title", "roadmap", "", "text"),
]


def _before_ranks(dialect: Dialect) -> list[Migration]:
    return _before(dialect, 5)


def _before(dialect: Dialect, version: int) -> list[Migration]:
    return [migration for migration in list_migrations(dialect) if migration.version < version]


async def _found(store: SqliteStore | PostgresStore, text: str) -> list[str]:
    page = await store.list_notes("w1", CatalogQuery(text=text, sort=SortKey.RELEVANCE))
    return [entry.note_id for entry in page.entries]


async def test_sqlite_notes_indexed_before_the_ranks_are_found_after(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        await apply_sqlite_migrations(conn, _before_ranks("sqlite"))
        for seq, (note_id, title, tags, body) in enumerate(NOTES, start=1):
            await conn.execute(
                "INSERT INTO notes (seq, workspace_id, note_id, title, title_key, tags, pinned, "
                "priority, assignees, excerpt, clock, content_hash, search_title, search_tags, "
                "created_at, updated_at) VALUES (?, 'w1', ?, ?, ?, '[]', 0, 0, '[]', '', 1, '', "
                "?, ?, ?, ?)",
                (seq, note_id, title, title, title, tags, AT, AT),
            )
            await conn.execute(
                "INSERT INTO notes_search (rowid, title, tags, body) VALUES (?, ?, ?, ?)",
                (seq, title, tags, body),
            )
    store = SqliteStore(str(path))
    await store.open()
    try:
        assert await _found(store, "roadmap") == ["title", "tags", "body"]
        assert await _found(store, "cafe") == []
        assert await _found(store, "café") == ["body"]
    finally:
        await store.close()


async def test_sqlite_words_indexed_before_0016_split_only_where_python_split_them(
    tmp_path: Path,
) -> None:
    """Before 0016, `unicode61` split "q\u19b0q" into q and q, so "\u19b0q" found it."""
    path = tmp_path / "catalog.db"
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        await apply_sqlite_migrations(conn, _before("sqlite", 16))
        await conn.execute(
            "INSERT INTO notes (seq, workspace_id, note_id, title, title_key, tags, pinned, "
            "priority, assignees, excerpt, clock, content_hash, search_title, search_tags, "
            "created_at, updated_at) VALUES (1, 'w1', 'tai-lue', 'q\u19b0q', 'q\u19b0q', '[]', "
            "0, 0, '[]', '', 1, '', 'q\u19b0q', '', ?, ?)",
            (AT, AT),
        )
        await conn.execute(
            "INSERT INTO notes_search (rowid, title, tags, body) VALUES (1, 'q\u19b0q', '', '')"
        )
        cursor = await conn.execute(
            "SELECT count(*) FROM notes_search WHERE notes_search MATCH '\"\u19b0q\"'"
        )
        assert await cursor.fetchone() == (1,)  # the defect 0016 mends
    store = SqliteStore(str(path))
    await store.open()
    try:
        assert await _found(store, "\u19b0q") == []
        assert await _found(store, "q\u19b0q") == ["tai-lue"]
    finally:
        await store.close()


async def test_postgres_notes_indexed_before_the_ranks_are_found_after(
    postgres_server: PostgresServer,
) -> None:
    dsn = await postgres_server.create_database()
    conn = await asyncpg.connect(dsn)
    try:
        await apply_postgres_migrations(conn, _before_ranks("postgres"))
        for note_id, title, tags, body in NOTES:
            await conn.execute(
                "INSERT INTO notes (workspace_id, note_id, title, title_key, tags, pinned, "
                "priority, assignees, excerpt, search_title, search_tags, search_body, clock, "
                "content_hash, created_at, updated_at) VALUES ('w1', $1, $2, $2, '{}', false, "
                "0, '{}', '', $2, $3, $4, 1, '', $5, $5)",
                note_id,
                title,
                tags,
                body,
                AT,
            )
    finally:
        await conn.close()
    store = PostgresStore(dsn)
    await store.open()
    try:
        assert sorted(await _found(store, "roadmap")) == ["body", "tags", "title"]
        assert (await _found(store, "roadmap"))[:2] == ["title", "tags"]
        assert await _found(store, "café") == ["body"]
    finally:
        await store.close()
