"""Migration 0006 (the member directory) on members recorded before it: each row becomes a
member seen with its old name, as an editor, last seen when first seen, and is found by a
prefix of its name, case-folded, on SQLite and Postgres (names not in ASCII included, whose
keys the store fills when it opens)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import aiosqlite
import asyncpg

from collab.store import PostgresStore, SqliteStore
from collab.store.members import Member, SeenMember
from collab.store.migrations import (
    Dialect,
    Migration,
    apply_postgres_migrations,
    apply_sqlite_migrations,
    list_migrations,
)
from collab.store.rows import format_timestamp
from tests.support.postgres_server import PostgresServer

FIRST_SEEN = [datetime(2026, 12, 6, 10, 0, n, 1000 * n, tzinfo=UTC) for n in range(4)]
# (workspace, user, name, first seen) as written before the directory.
OLD_ROWS = [
    ("w1", "ann", "Ann", FIRST_SEEN[0]),
    ("w1", "elo", "Élodie", FIRST_SEEN[1]),
    ("w1", "anon", None, FIRST_SEEN[2]),
    ("w1", "Bea", "Béa", FIRST_SEEN[3]),
    ("w2", "ann", "Ann in w2", FIRST_SEEN[3]),
]


def _before_directory(dialect: Dialect) -> list[Migration]:
    return [migration for migration in list_migrations(dialect) if migration.version < 6]


async def _check_migrated(store: SqliteStore | PostgresStore) -> None:
    assert await store.get_member("w1", "ann") == Member(
        workspace_id="w1",
        user_id="ann",
        assigned_name=None,
        token_name="Ann",
        email=None,
        token_role="editor",
        assigned_role=None,
        last_seen_at=format_timestamp(FIRST_SEEN[0]),
        removed_at=None,
    )
    members = await store.list_members("w1")
    assert [(m.user_id, m.name, m.role) for m in members] == [
        ("Bea", "Béa", "editor"),
        ("ann", "Ann", "editor"),
        ("anon", None, "editor"),
        ("elo", "Élodie", "editor"),
    ]
    assert [m.last_seen_at for m in members] == [
        format_timestamp(FIRST_SEEN[n]) for n in (3, 0, 2, 1)
    ]
    assert [m.user_id for m in await store.list_members("w1", prefix="ÉL")] == ["elo"]
    assert [m.user_id for m in await store.list_members("w1", prefix="bé")] == ["Bea"]
    assert [m.user_id for m in await store.list_members("w1", prefix="an")] == ["ann", "anon"]
    assert await store.managed_members() == []
    assert await store.non_members("w2", ["ann", "elo"]) == ["elo"]
    await store.record_seen([SeenMember("w1", "elo", None, "viewer", format_timestamp())])
    elo = await store.get_member("w1", "elo")
    assert elo is not None
    assert (elo.token_name, elo.token_role) == ("Élodie", "viewer")
    assert elo.last_seen_at is not None
    assert elo.last_seen_at > format_timestamp(FIRST_SEEN[1])


async def test_sqlite_members_recorded_before_the_directory_are_members_after(
    tmp_path: Path,
) -> None:
    path = tmp_path / "members.db"
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        await apply_sqlite_migrations(conn, _before_directory("sqlite"))
        await conn.executemany(
            "INSERT INTO workspace_members (workspace_id, user_id, name, first_seen) "
            "VALUES (?, ?, ?, ?)",
            [(w, u, name, format_timestamp(first)) for w, u, name, first in OLD_ROWS],
        )
    store = SqliteStore(str(path))
    await store.open()
    try:
        await _check_migrated(store)
    finally:
        await store.close()
    async with aiosqlite.connect(path) as conn:
        keys = await conn.execute_fetchall(
            "SELECT user_id, name_key FROM workspace_members WHERE workspace_id = 'w1' "
            "ORDER BY user_id"
        )
    assert [tuple(row) for row in keys] == [
        ("Bea", "béa"),
        ("ann", "ann"),
        ("anon", ""),
        ("elo", "élodie"),
    ]


async def test_postgres_members_recorded_before_the_directory_are_members_after(
    postgres_server: PostgresServer,
) -> None:
    dsn = await postgres_server.create_database()
    conn = await asyncpg.connect(dsn)
    try:
        await apply_postgres_migrations(conn, _before_directory("postgres"))
        await conn.executemany(
            "INSERT INTO workspace_members (workspace_id, user_id, name, first_seen) "
            "VALUES ($1, $2, $3, $4)",
            OLD_ROWS,
        )
    finally:
        await conn.close()
    store = PostgresStore(dsn)
    await store.open()
    try:
        await _check_migrated(store)
    finally:
        await store.close()
    conn = await asyncpg.connect(dsn)
    try:
        keys = await conn.fetch(
            "SELECT user_id, name_key FROM workspace_members WHERE workspace_id = 'w1' "
            "ORDER BY user_id"
        )
    finally:
        await conn.close()
    assert [tuple(row) for row in keys] == [
        ("Bea", "béa"),
        ("ann", "ann"),
        ("anon", ""),
        ("elo", "élodie"),
    ]
