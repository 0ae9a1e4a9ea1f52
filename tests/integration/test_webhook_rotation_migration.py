"""Migration 0014 (webhook secret rotation) on a database with an endpoint and a pending
delivery written before it: the endpoint reads as never rotated, its delivery is claimed with
its one secret, and it can be rotated, on SQLite and Postgres."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import asyncpg

from collab.store import PostgresStore, SqliteStore
from collab.store.rows import format_timestamp
from tests.support.migrated import postgres_store_from, sqlite_store_from
from tests.support.postgres_server import PostgresServer

AT = "2026-12-06T10:00:00.000000+00:00"
LATER = "2026-12-06T11:00:00.000000+00:00"
OLD = "whsec_" + "A" * 44
NEW = "whsec_" + "B" * 44
INSERT_ENDPOINT = (
    "INSERT INTO webhook_endpoints (id, url, events, workspace_id, secret, created_at) "
)
INSERT_DELIVERY = (
    "INSERT INTO webhook_deliveries (endpoint_id, message_id, event_type, subject, body, "
    "created_at, state, next_attempt_at) "
)


async def _check_the_endpoint_is_kept_and_rotates(store: SqliteStore | PostgresStore) -> None:
    [endpoint] = await store.list_endpoints()
    assert (endpoint.id, endpoint.secret) == ("ep_a", OLD)
    assert (endpoint.previous_secret, endpoint.previous_secret_until) == (None, None)
    now = format_timestamp()
    [claimed] = await store.claim_deliveries(now=now, lease_until=now, lease="l1", limit=5)
    assert claimed.secrets == (OLD,)

    rotated = await store.rotate_secret("ep_a", NEW, previous_until=LATER)

    assert rotated is not None
    assert (rotated.secret, rotated.previous_secret, rotated.previous_secret_until) == (
        NEW,
        OLD,
        LATER,
    )
    assert await store.get_endpoint("ep_a") == rotated


async def test_sqlite_endpoints_written_before_rotation_are_kept_and_rotate(
    tmp_path: Path,
) -> None:
    """A SQLite endpoint written at 0013 reads the same after 0014, never rotated."""

    async def seed(conn: aiosqlite.Connection) -> None:
        await conn.execute(
            INSERT_ENDPOINT + "VALUES ('ep_a', 'https://hooks.example.com/a', "
            "'[\"note.created\"]', NULL, ?, ?)",
            (OLD, AT),
        )
        await conn.execute(
            INSERT_DELIVERY + "VALUES ('ep_a', 'msg_1', 'note.created', 'w1/n1', x'7b7d', ?, "
            "'pending', ?)",
            (AT, AT),
        )

    async with sqlite_store_from(tmp_path / "notes.db", 14, seed) as store:
        await _check_the_endpoint_is_kept_and_rotates(store)


async def test_postgres_endpoints_written_before_rotation_are_kept_and_rotate(
    postgres_server: PostgresServer,
) -> None:
    """A Postgres endpoint written at 0013 reads the same after 0014, never rotated."""
    dsn = await postgres_server.create_database()

    async def seed(conn: asyncpg.Connection) -> None:
        await conn.execute(
            INSERT_ENDPOINT + "VALUES ('ep_a', 'https://hooks.example.com/a', "
            "ARRAY['note.created'], NULL, $1, $2)",
            OLD,
            AT,
        )
        await conn.execute(
            INSERT_DELIVERY + "VALUES ('ep_a', 'msg_1', 'note.created', 'w1/n1', '\\x7b7d', $1, "
            "'pending', $1)",
            AT,
        )

    async with postgres_store_from(dsn, 14, seed) as store:
        await _check_the_endpoint_is_kept_and_rotates(store)
