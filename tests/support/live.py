"""A client of the live channel (`/ws/live`) for tests: JSON frames in, events recorded."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson

from tests.support.waiting import scaled


class LiveClient:
    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse):
        self._session = session
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self.close_code: int | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, base_ws: str, token: str, *, after: int | None = None
    ) -> AsyncIterator[LiveClient]:
        url = f"{base_ws}/ws/live?token={token}"
        if after is not None:
            url += f"&after={after}"
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(url, autoclose=True, max_msg_size=0)
            client = cls(session, ws)
            try:
                yield client
            finally:
                await ws.close()
                client._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await client._reader

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.events.append(orjson.loads(msg.data))
                self._changed.set()
        self.close_code = self.ws.close_code
        self._changed.set()

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        if isinstance(message, bytes):
            await self.ws.send_bytes(message)
        elif isinstance(message, str):
            await self.ws.send_str(message)
        else:
            await self.ws.send_str(orjson.dumps(message).decode())

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event.get("type") == kind]

    async def wait_for(
        self, predicate: Callable[[LiveClient], bool], timeout: float = 10, what: str = ""
    ) -> None:
        async with asyncio.timeout(scaled(timeout)):
            while not predicate(self):
                if self.close_code is not None and not predicate(self):
                    raise AssertionError(f"closed ({self.close_code}) before: {what}")
                self._changed.clear()
                await self._changed.wait()

    async def wait_event(
        self, kind: str, match: Callable[[dict[str, Any]], bool] = lambda e: True, **kw: Any
    ) -> dict[str, Any]:
        await self.wait_for(lambda c: any(match(e) for e in c.of_type(kind)), what=kind, **kw)
        return next(e for e in self.of_type(kind) if match(e))

    async def wait_closed(self, timeout: float = 10) -> int:
        async with asyncio.timeout(scaled(timeout)):
            while self.close_code is None:
                self._changed.clear()
                await self._changed.wait()
        return self.close_code
