"""A minimal aiohttp y-websocket relay with no CRDT: the ceiling of any aiohttp server design.

    python relay.py [PORT]      (0 or nothing: a free port; prints "listening on PORT")

Each binary frame a socket sends is forwarded to the other sockets of its room (room = URL
path), awaiting `send_bytes` on each in turn, in the receiving handler: no task per message,
no document, no store. So that y-websocket clients sync unchanged, a sync step 1 is answered
with an empty sync step 2, and sync steps 1 and 2 are not forwarded; updates and awareness
are. Same WebSocket settings as collab's defaults (8 MiB messages, no compression), with
aiohttp's own 30 s heartbeat (collab sweeps all connections itself, with the same timing);
uvloop; 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import sys

import uvloop
from aiohttp import WSMsgType, web

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
HEARTBEAT_S = 30.0
MESSAGE_SYNC = 0
MESSAGE_AWARENESS = 1
SYNC_STEP1 = 0
SYNC_UPDATE = 2
# Sync step 2 carrying the empty update (0 structs, empty delete set), length-prefixed.
EMPTY_SYNC_STEP2 = bytes([MESSAGE_SYNC, 1, 2, 0, 0])

ROOMS = web.AppKey("rooms", dict[str, set[web.WebSocketResponse]])


def forwarded(frame: bytes) -> bool:
    """Updates and awareness go to the other sockets; sync steps 1 and 2 stay between one
    client and the relay."""
    if not frame:
        return False
    if frame[0] == MESSAGE_AWARENESS:
        return True
    return frame[0] == MESSAGE_SYNC and len(frame) > 1 and frame[1] == SYNC_UPDATE


async def relay(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(
        max_msg_size=MAX_MESSAGE_BYTES, compress=False, heartbeat=HEARTBEAT_S
    )
    await ws.prepare(request)
    rooms = request.app[ROOMS]
    room = rooms.setdefault(request.path, set())
    room.add(ws)
    try:
        async for message in ws:
            if message.type is not WSMsgType.BINARY:
                continue
            frame: bytes = message.data
            if frame[:2] == bytes([MESSAGE_SYNC, SYNC_STEP1]):
                await ws.send_bytes(EMPTY_SYNC_STEP2)
            elif forwarded(frame):
                for other in tuple(room):
                    if other is not ws and not other.closed:
                        try:
                            await other.send_bytes(frame)
                        except ConnectionResetError:
                            continue  # that peer is going away; its own handler cleans up
    finally:
        room.discard(ws)
        if not room:
            del rooms[request.path]
    return ws


async def serve(port: int) -> None:
    app = web.Application()
    app[ROOMS] = {}
    app.router.add_get("/{path:.*}", relay)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(f"listening on {runner.addresses[0][1]}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    try:
        uvloop.run(serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
    except KeyboardInterrupt:
        pass
