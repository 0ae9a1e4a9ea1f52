"""Fixtures for end-to-end tests: a server process and the Node agent with stock Yjs clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import TEST_SECRET, ProcessFactory, token_for
from tests.support.node_agent import NodeAgent
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
