"""Pytest fixtures for a throwaway PostgreSQL cluster (load with `pytest_plugins`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from collab.store.postgres import PostgresStore
from tests.support.postgres_server import (
    PostgresServer,
    find_postgres_bindir,
    unique_database_name,
)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One cluster for the whole run; tests share it through databases of their own.

    Fault tests that stop or kill the server use `fresh_postgres` instead.
    """
    server = _new_server()
    try:
        server.start_blocking()
        yield server
    finally:
        server.close_blocking()


@pytest.fixture
async def fresh_postgres() -> AsyncIterator[PostgresServer]:
    """A cluster of this test's own, which it may stop, kill and restart."""
    server = _new_server()
    try:
        await server.start()
        yield server
    finally:
        await server.close()


@pytest.fixture
async def postgres_dsn(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """The DSN of a fresh, empty database, dropped after the test."""
    name = unique_database_name()
    dsn = await postgres_server.create_database(name)
    yield dsn
    await postgres_server.drop_database(name)


def _new_server() -> PostgresServer:
    if find_postgres_bindir() is None:
        pytest.skip(
            "PostgreSQL binaries (initdb, postgres, createdb, dropdb) not found: install the "
            "postgresql package or set COLLAB_TEST_PG_BINDIR"
        )
    return PostgresServer()


@asynccontextmanager
async def gate_held(dsn: str, trigger_sql: str, lock_key: int) -> AsyncIterator[asyncpg.Connection]:
    """Migrate the database, install `trigger_sql` (a trigger that takes advisory lock
    `lock_key`) and hold that lock on the yielded connection, so the statements the trigger
    guards wait until the test releases it: a deterministic way to stop a transaction midway."""
    store = PostgresStore(dsn)
    await store.open()
    await store.close()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(trigger_sql)
        await conn.execute("SELECT pg_advisory_lock($1)", lock_key)
        yield conn
    finally:
        await conn.close()


async def sessions_waiting(conn: asyncpg.Connection, count: int) -> bool:
    """Whether at least `count` sessions on this database wait for a lock of any kind."""
    waiting = await conn.fetchval(
        "SELECT count(*) FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid "
        "WHERE NOT l.granted AND a.datname = current_database()"
    )
    return int(waiting) >= count


def hold_trigger(name: str, table: str, event: str, condition: str, lock_key: int) -> str:
    """The SQL of a trigger `name` that, before each `event` (INSERT or UPDATE) on `table`
    of a row where `condition` holds (over NEW), waits for advisory lock `lock_key`: the
    statements `gate_held` stops midway."""
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF {condition} THEN
        PERFORM pg_advisory_xact_lock({lock_key});
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}();
"""


@asynccontextmanager
async def open_stores(dsn: str, count: int) -> AsyncIterator[list[PostgresStore]]:
    """`count` open stores (one pool each) on one database: instances of one deployment."""
    stores = [PostgresStore(dsn) for _ in range(count)]
    try:
        for store in stores:
            await store.open()
        yield stores
    finally:
        for store in stores:
            await store.close()
