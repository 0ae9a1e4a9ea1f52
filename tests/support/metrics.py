"""Reading a running server's `/metrics` (no metrics token configured)."""

from __future__ import annotations

import aiohttp

from tests.conftest import RunningServer


async def scrape(server: RunningServer) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{server.http}/metrics") as response:
        assert response.status == 200, await response.text()
        return await response.text()
