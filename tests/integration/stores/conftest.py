"""The fixtures of the store contract suites (every interface of `Database`, each over every
backend): here they override the server tests' `backend` (embedded or scaled)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from collab.store import Database
from tests.support.store_backends import Backend, open_backend


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Every backend."""
    async with open_backend(request, tmp_path) as opened:
        yield opened


@pytest.fixture(params=["sqlite", "postgres"])
async def durable_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """The backends whose data outlives a store instance and is shared by several."""
    async with open_backend(request, tmp_path) as opened:
        yield opened


@pytest.fixture
async def store(backend: Backend) -> Database:
    """One open store of the backend under test."""
    return await backend.new_store()
