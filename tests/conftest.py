"""Shared fixtures: in-process servers on real sockets, tokens, and server processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from collab.auth.tokens import Role, mint_token
from collab.bus.base import Bus
from collab.bus.memory import MemoryBroker, MemoryBus
from collab.presence.memory import MemoryPresenceBroker, MemoryPresenceStore
from collab.settings import Secret, Settings
from collab.store.database import Database
from collab.web.app import create_app
from tests.support.postgres_server import unique_database_name
from tests.support.servers import ServerProcess
from tests.support.waiting import scaled

pytest_plugins = ["tests.support.postgres_fixtures", "tests.support.redis_fixtures"]

TEST_SECRET = "test-secret-for-collab-tests-0123456789abcdef"


def make_settings(**overrides: Any) -> Settings:
    """Settings for in-process tests: memory store, short grace, test secret."""
    base: dict[str, Any] = {
        "database_url": "memory://",
        "jwt_secret": Secret(TEST_SECRET),
        "room_grace_s": 0.2,
        "flush_interval_ms": 10,
        "heartbeat_s": 0,
    }
    base.update(overrides)
    return Settings(**base)


def token_for(
    settings: Settings,
    sub: str = "u1",
    workspaces: Mapping[str, str] | None = None,
    name: str | None = None,
    ttl_s: int = 3600,
) -> str:
    grants = {w: Role(r) for w, r in (workspaces or {"w1": "editor"}).items()}
    return mint_token(settings, sub=sub, workspaces=grants, name=name, ttl_s=ttl_s)


@dataclass
class RunningServer:
    """An in-process server on a real port."""

    settings: Settings
    app: web.Application
    server: TestServer

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}"

    def token(self, sub: str = "u1", workspaces: Mapping[str, str] | None = None, **kw: Any) -> str:
        return token_for(self.settings, sub, workspaces, **kw)

    def doc_url(self, room: str = "w1/n1", token: str | None = None, sub: str = "u1") -> str:
        return f"{self.ws}/ws/docs/{room}?token={token or self.token(sub)}"

    async def close(self) -> None:
        await self.server.close()


StartServer = Callable[..., Awaitable[RunningServer]]


@pytest.fixture(params=["embedded", "scaled"])
def backend(request: pytest.FixtureRequest) -> str:
    """Every in-process server test runs twice: on the embedded default (SQLite file,
    in-process bus) and on the production pair (Postgres, Redis), so they never drift."""
    return str(request.param)


@pytest.fixture
def backend_urls(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, str | None]]:
    """The database URL and Redis URL (None: in-process bus) of this test's backend."""
    if backend == "embedded":
        yield f"sqlite:///{tmp_path / 'embedded.db'}", None
        return
    postgres = request.getfixturevalue("postgres_server")
    redis = request.getfixturevalue("redis_server")
    name = unique_database_name()
    dsn = postgres.create_database_blocking(name)
    yield dsn, redis.url
    postgres.drop_database_blocking(name)


@pytest.fixture
async def start_server(backend_urls: tuple[str, str | None]) -> AsyncIterator[StartServer]:
    """Start in-process servers on this test's backend; servers started in one test share
    their store and bus like instances of one deployment. All are closed at the end."""
    running: list[RunningServer] = []
    broker = MemoryBroker()
    presence_broker = MemoryPresenceBroker()
    database_url, redis_url = backend_urls

    async def start(
        settings: Settings | None = None,
        *,
        store: Database | None = None,
        bus: Bus | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> RunningServer:
        settings = settings or make_settings()
        # Tests that name a database or a bus keep it; the rest get the backend's.
        if settings.database_url == "memory://" and store is None:
            settings = settings.replace(database_url=database_url)
        presence_store = None
        if settings.redis_url is None and bus is None:
            if redis_url is None:
                bus = MemoryBus(broker)
                presence_store = MemoryPresenceStore(
                    3 * settings.presence_heartbeat_s, broker=presence_broker
                )
            else:
                settings = settings.replace(redis_url=redis_url)
        app = create_app(settings, store=store, bus=bus, presence_store=presence_store, clock=clock)
        server = TestServer(app, host="127.0.0.1", port=0)
        await server.start_server()
        instance = RunningServer(settings, app, server)
        running.append(instance)
        return instance

    yield start
    for instance in running:
        # Bounded, so a server that cannot shut down fails the test instead of hanging it,
        # and says where it is stuck.
        try:
            await asyncio.wait_for(asyncio.shield(instance.close()), scaled(30))
        except TimeoutError:
            for task in asyncio.all_tasks():
                task.print_stack(limit=5)
            raise


@pytest.fixture
async def server(start_server: StartServer) -> RunningServer:
    return await start_server()


@dataclass
class ProcessFactory:
    tmp_path: Path
    started: list[ServerProcess] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "COLLAB_DATABASE_URL": f"sqlite:///{self.tmp_path / 'collab.db'}",
            "COLLAB_JWT_SECRET": TEST_SECRET,
            "COLLAB_ROOM_GRACE_S": "1",
            **extra,
        }

    async def start(self, **extra: str) -> ServerProcess:
        process = ServerProcess(
            self.env(**extra), self.tmp_path / f"server-{len(self.started)}.log"
        )
        self.started.append(process)
        await process.start()
        return process


@pytest.fixture
async def server_processes(tmp_path: Path) -> AsyncIterator[ProcessFactory]:
    """Start `collab serve` processes sharing one SQLite file; all are killed at the end."""
    factory = ProcessFactory(tmp_path)
    yield factory
    for process in factory.started:
        await process.kill()


@pytest.fixture
def test_settings() -> Settings:
    return make_settings()
