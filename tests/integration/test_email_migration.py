"""Migration 0011 (email) on a database with members and notifications written before it: the
members keep their owner-set address and gain none from a token until seen with one, and
their notifications are all still to be emailed, on SQLite and Postgres."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import asyncpg

from collab.store import PostgresStore, SqliteStore
from collab.store.members import SeenMember
from tests.support.migrated import postgres_store_from, sqlite_store_from
from tests.support.postgres_server import PostgresServer

AT = "2026-12-06T10:00:00.000000+00:00"
LATER = "2026-12-06T11:00:00.000000+00:00"
MEMBERS = [
    # workspace, user, token name, owner-set email
    ("w1", "u1", "Ann", None),
    ("w1", "u2", "Bob", "bob@example.com"),
]


async def _check_members_and_notifications(store: SqliteStore | PostgresStore) -> None:
    ann = await store.email_recipient("u1")
    assert (ann.email, ann.name, ann.workspace_ids, ann.opted_out) == (None, "Ann", ("w1",), False)
    assert (await store.email_recipient("u2")).email == "bob@example.com"
    page, total = await store.unemailed_notifications("u1", after_id=0, limit=10)
    assert (len(page), total) == (2, 2)
    assert await store.digest_due_at("u1") == 0.0
    await store.record_seen([SeenMember("w1", "u1", "Ann", "editor", LATER, "ann@example.com")])
    assert (await store.email_recipient("u1")).email == "ann@example.com"


async def test_sqlite_members_and_notifications_from_before_email_are_kept(
    tmp_path: Path,
) -> None:
    """A SQLite database at 0010 opens at 0011 with its members and notifications usable."""
    path = tmp_path / "before.db"

    async def seed(conn: aiosqlite.Connection) -> None:
        await conn.executemany(
            "INSERT INTO workspace_members (workspace_id, user_id, token_name, token_role, "
            "email, name_key, first_seen, last_seen_at) VALUES (?, ?, ?, 'editor', ?, '', ?, ?)",
            [(w, u, name, email, AT, AT) for w, u, name, email in MEMBERS],
        )
        await conn.executemany(
            "INSERT INTO notifications (user_id, workspace_id, kind, payload, created_at) "
            "VALUES ('u1', 'w1', 'message', '{}', ?)",
            [(AT,), (AT,)],
        )

    async with sqlite_store_from(path, 11, seed) as store:
        await _check_members_and_notifications(store)


async def test_postgres_members_and_notifications_from_before_email_are_kept(
    postgres_server: PostgresServer,
) -> None:
    """A Postgres database at 0010 opens at 0011 with its members and notifications usable."""
    dsn = await postgres_server.create_database()

    async def seed(conn: asyncpg.Connection) -> None:
        await conn.executemany(
            "INSERT INTO workspace_members (workspace_id, user_id, token_name, token_role, "
            "email, name_key, last_seen_at) VALUES ($1, $2, $3, 'editor', $4, '', $5)",
            [(w, u, name, email, AT) for w, u, name, email in MEMBERS],
        )
        await conn.executemany(
            "INSERT INTO notifications (user_id, workspace_id, kind, payload) "
            "VALUES ('u1', 'w1', 'message', '{}')",
            [(), ()],
        )

    async with postgres_store_from(dsn, 11, seed) as store:
        await _check_members_and_notifications(store)
