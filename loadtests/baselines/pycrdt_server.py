"""pycrdt-websocket as a baseline: its `WebsocketServer` behind its `ASGIServer`, on Uvicorn.

    loadtests/.venv-baselines/bin/python pycrdt_server.py [PORT]   (0 or nothing: a free port)

Runs in loadtests/.venv-baselines (installed by loadtests/setup.sh), which may hold another
pycrdt than collab's. Documents in memory (no YStore), room = URL path, one process and one
event loop (uvloop), 127.0.0.1 only. Prints "listening on PORT" when ready. WebSocket settings
as collab's defaults: 8 MiB messages, no compression. One change to the library's behaviour,
a lock around starting a room (`RoomStartLockedServer`), without which concurrent first
joins of a room hang.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import weakref

import uvicorn
import uvloop
from anyio import Lock
from pycrdt.websocket import ASGIServer, WebsocketServer, YRoom, exception_logger

MAX_MESSAGE_BYTES = 8 * 1024 * 1024


class RoomStartLockedServer(WebsocketServer):
    """pycrdt-websocket 0.16.5 as is, but each room is started under a lock.

    Without it, a client that joins a room while the room is still starting for another
    client hangs for ever: both call `YRoom.start`, whose start lock the first holds for the
    room's whole life. Every scenario opens a room's clients concurrently. This changes
    nothing once a room has started.
    """

    def __init__(self, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self._start_locks: weakref.WeakKeyDictionary[YRoom, Lock] = weakref.WeakKeyDictionary()

    async def start_room(self, room: YRoom) -> None:
        lock = self._start_locks.setdefault(room, Lock())
        async with lock:
            await super().start_room(room)


async def serve(port: int) -> None:
    # exception_logger: a client that goes away mid-send is logged, not fatal to its room.
    websocket_server = RoomStartLockedServer(exception_handler=exception_logger)
    config = uvicorn.Config(
        ASGIServer(websocket_server),
        host="127.0.0.1",
        port=port,
        loop="none",  # the loop is already uvloop (below)
        http="httptools",
        ws="websockets-sansio",
        ws_max_size=MAX_MESSAGE_BYTES,
        ws_per_message_deflate=False,
        lifespan="off",
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    async with websocket_server:
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()  # raises why it could not start
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()[1]
        print(f"listening on {bound}", flush=True)
        await task


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    try:
        uvloop.run(serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
    except KeyboardInterrupt:
        pass
