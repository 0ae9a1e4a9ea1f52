"""Every `Database` backend, opened on a fresh database per test: the fixtures of the store
contract suites build on (`Backend`, `open_backend`)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from collab.store import Database, MemoryStore, PostgresStore, SqliteStore
from tests.support.postgres_server import PostgresServer, unique_database_name


@dataclass
class Backend:
    """Opens stores of one backend, each on a fresh database, and closes them all."""

    kind: str
    tmp_path: Path
    server: PostgresServer | None
    opened: list[Database] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)
    locations: dict[int, str] = field(default_factory=dict)
    numbers: Iterator[int] = field(default_factory=itertools.count)

    async def new_store(self) -> Database:
        """An open store on a database of its own."""
        if self.kind == "memory":
            return await self._open(MemoryStore(), "")
        if self.server is None:
            path = str(self.tmp_path / f"store{next(self.numbers)}" / "collab.sqlite3")
            return await self._open(SqliteStore(path), path)
        self.databases.append(unique_database_name())
        dsn = await self.server.create_database(self.databases[-1])
        return await self._open(PostgresStore(dsn), dsn)

    async def another_store(self, store: Database) -> Database:
        """A second open instance (own connection or pool) on the database of `store`;
        for memory, which has no such thing, `store` itself."""
        location = self.locations[id(store)]
        if isinstance(store, SqliteStore):
            return await self._open(SqliteStore(location), location)
        if isinstance(store, PostgresStore):
            return await self._open(PostgresStore(location), location)
        return store

    async def close(self) -> None:
        for store in self.opened:
            await store.close()
        if self.server is not None:
            for name in self.databases:
                await self.server.drop_database(name)

    async def _open(self, store: Database, location: str) -> Database:
        await store.open()
        self.opened.append(store)
        self.locations[id(store)] = location
        return store


@asynccontextmanager
async def open_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    # Only the Postgres runs need (and may skip for lack of) a cluster.
    server = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    backend = Backend(str(request.param), tmp_path, server)
    try:
        yield backend
    finally:
        await backend.close()
