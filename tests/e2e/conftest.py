"""Fixtures for end-to-end tests: a server process, two sharing Redis and Postgres, and the
Node agent with stock Yjs clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from collab.store.catalog import NoteStatus
from collab.store.postgres import PostgresStore
from tests.conftest import TEST_SECRET, ProcessFactory, token_for
from tests.support.node_agent import NodeAgent
from tests.support.postgres_server import PostgresServer
from tests.support.redis_server import RedisServer
from tests.support.servers import ServerProcess


@pytest.fixture
async def agent() -> AsyncIterator[NodeAgent]:
    """A Node process driving stock `yjs` + `y-websocket` clients."""
    async with NodeAgent() as node:
        yield node


@pytest.fixture
async def served(server_processes: ProcessFactory) -> ServerProcess:
    return await server_processes.start()


def token(sub: str = "u1", workspaces: dict[str, str] | None = None, **kw: object) -> str:
    from collab.settings import Secret, Settings

    settings = Settings(jwt_secret=Secret(TEST_SECRET))
    return token_for(settings, sub, workspaces, **kw)  # type: ignore[arg-type]


@dataclass
class Pair:
    a: ServerProcess
    b: ServerProcess
    dsn: str

    async def call(
        self,
        instance: ServerProcess,
        method: str,
        path: str,
        *,
        user: str = "owner",
        role: str = "owner",
        **kw: Any,
    ) -> tuple[int, Any]:
        """A REST call as `user` (a workspace owner unless `role` says otherwise)."""
        headers = {"Authorization": f"Bearer {token(user, {'w1': role})}"}
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, f"{instance.http}{path}", headers=headers, **kw) as response,
        ):
            body = await response.json() if response.content_type == "application/json" else None
            return response.status, body

    async def listed(self, instance: ServerProcess, **params: str) -> list[dict[str, Any]]:
        status, body = await self.call(
            instance, "GET", "/api/v1/workspaces/w1/notes", params=params
        )
        assert status == 200, body
        return body["notes"]  # type: ignore[no-any-return]

    async def stored(self, room_id: str) -> tuple[NoteStatus, bool]:
        """The note's status and whether the store holds content for it, read directly."""
        store = PostgresStore(self.dsn)
        await store.open()
        try:
            return await store.note_status(room_id), (await store.load(room_id)).is_empty
        finally:
            await store.close()


@pytest.fixture
async def pair(
    server_processes: ProcessFactory, fresh_redis: RedisServer, fresh_postgres: PostgresServer
) -> Pair:
    dsn = await fresh_postgres.create_database()
    env = {
        "COLLAB_DATABASE_URL": dsn,
        "COLLAB_REDIS_URL": fresh_redis.url,
        "COLLAB_FLUSH_INTERVAL_MS": "50",
        "COLLAB_CATALOG_INTERVAL_MS": "100",
    }
    return Pair(await server_processes.start(**env), await server_processes.start(**env), dsn)
