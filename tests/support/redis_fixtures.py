"""Pytest fixtures for throwaway Redis servers (load with `pytest_plugins`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.redis_server import REDIS_SERVER_BINARY, RedisServer, find_redis_server


def _require_redis_server() -> None:
    if find_redis_server() is None:
        pytest.skip(f"redis-server not found at {REDIS_SERVER_BINARY} or on PATH; install it")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One server for the whole run; tests share it through channel prefixes of their own.

    Fault tests that stop or kill the server use `fresh_redis` instead.
    """
    _require_redis_server()
    server = RedisServer()
    try:
        server.start_blocking()
        yield server
    finally:
        server.close_blocking()


@pytest.fixture
async def fresh_redis() -> AsyncIterator[RedisServer]:
    """A server of this test's own, which it may stop, kill and restart."""
    _require_redis_server()
    server = RedisServer()
    try:
        await server.start()
        yield server
    finally:
        await server.close()
