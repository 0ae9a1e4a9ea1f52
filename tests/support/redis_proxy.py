"""A TCP proxy in front of a throwaway Redis (`FreezableProxy`): the bus tests decide when an
instance reaches Redis, and can make its path half-open."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

from tests.support.waiting import scaled


class FreezableProxy:
    """A TCP proxy to a Redis on 127.0.0.1 that can refuse new connections, or go silent on
    its open ones without closing them: a half-open network path, which no socket error
    reveals."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.accepting = True
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: dict[int, list[asyncio.StreamWriter]] = {}
        self._frozen: set[int] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._ids = itertools.count()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def freeze_open_connections(self) -> None:
        self._frozen.update(self._open)

    async def close(self) -> None:
        """Stop listening and close every connection; the handlers end on their own."""
        if self._server is not None:
            self._server.close()
        for writers in self._open.values():
            for writer in writers:
                writer.close()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=scaled(10))
        if self._server is not None:
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        connection_id = next(self._ids)
        writers = [writer]
        try:
            if not self.accepting:
                return
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.upstream_port
            )
            writers.append(upstream_writer)
            self._open[connection_id] = writers
            await asyncio.gather(
                self._pump(reader, upstream_writer, connection_id),
                self._pump(upstream_reader, writer, connection_id),
            )
        finally:
            self._open.pop(connection_id, None)
            for each in writers:
                each.close()
                with contextlib.suppress(OSError):
                    await each.wait_closed()
            self._handlers.discard(task)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection_id: int
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if connection_id not in self._frozen:
                    writer.write(data)
                    await writer.drain()
        writer.close()
