"""The app served the way `collab serve` serves it (its runner: JSON errors for requests the
parser refuses, no handler cancellation on disconnect), and raw HTTP exchanges with it, for
tests of the HTTP edges."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from collab.settings import Settings
from collab.web.app import create_app
from collab.web.http.access_log import AccessLogger
from collab.web.http.errors import JsonErrorAppRunner
from tests.conftest import token_for
from tests.support.waiting import scaled


@dataclass
class Served:
    settings: Settings
    app: web.Application
    port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, sub: str = "u1", role: str = "editor") -> str:
        return token_for(self.settings, sub, {"w1": role})


@asynccontextmanager
async def served_app(settings: Settings) -> AsyncIterator[Served]:
    """The app on port 0, run as `collab serve` runs it."""
    app = create_app(settings)
    runner = JsonErrorAppRunner(app, access_log_class=AccessLogger, shutdown_timeout=5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield Served(settings, app, runner.addresses[0][1])
    finally:
        await runner.cleanup()


async def exchange(served: Served, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `raw` on a new connection (it must ask `Connection: close`, or be refused); the
    status, headers (lowercase names) and body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    try:
        writer.write(raw)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), scaled(10))
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body
