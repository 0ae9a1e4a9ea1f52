"""A database written at an older schema, then opened as a store: what migration tests start
from. The store's `open` migrates it to the latest schema."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite
import asyncpg

from collab.store import PostgresStore, SqliteStore
from collab.store.migrations import (
    apply_postgres_migrations,
    apply_sqlite_migrations,
    list_migrations,
)


@asynccontextmanager
async def sqlite_store_from(
    path: Path, before: int, seed: Callable[[aiosqlite.Connection], Awaitable[None]]
) -> AsyncIterator[SqliteStore]:
    """A SQLite file with every migration below `before` applied and `seed` run on it, then
    opened (and so migrated) as a store; closed on exit."""
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        older = [m for m in list_migrations("sqlite") if m.version < before]
        await apply_sqlite_migrations(conn, older)
        await seed(conn)
    store = SqliteStore(str(path))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def postgres_store_from(
    dsn: str, before: int, seed: Callable[[asyncpg.Connection], Awaitable[None]]
) -> AsyncIterator[PostgresStore]:
    """The Postgres database `dsn` with every migration below `before` applied and `seed`
    run on it, then opened (and so migrated) as a store; closed on exit."""
    conn = await asyncpg.connect(dsn)
    try:
        older = [m for m in list_migrations("postgres") if m.version < before]
        await apply_postgres_migrations(conn, older)
        await seed(conn)
    finally:
        await conn.close()
    store = PostgresStore(dsn)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
