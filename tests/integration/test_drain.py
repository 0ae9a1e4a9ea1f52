"""The paced drain inside a running server: readiness and refused upgrades meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
from pycrdt import Doc, Text

from collab.bus.memory import MemoryBus
from collab.protocol.close_codes import CloseCode
from collab.rooms.manager import RoomLimits, RoomManager
from collab.rooms.peer import OutboxLimits, Peer
from collab.web.keys import ROOMS
from tests.conftest import StartServer, make_settings
from tests.support.stores import ScriptedStore
from tests.support.transports import ClosingPeerTransport
from tests.support.waiting import eventually
from tests.support.yclient import YClient, connect_http_error


async def test_while_draining_readyz_fails_and_upgrades_are_refused(
    start_server: StartServer,
) -> None:
    """Once the drain has begun, /readyz answers 503 naming the shutdown and a new upgrade
    gets 503; every client connected before gets 1012."""
    server = await start_server(make_settings(drain_s=2.0))
    async with contextlib.AsyncExitStack() as stack, aiohttp.ClientSession() as http:

        async def ready() -> bool:
            return (await http.get(f"{server.http}/readyz")).status == 200

        await eventually(ready, what="ready before the drain")
        clients = []
        for index in range(30):
            url = server.doc_url(f"w1/n{index % 3}", sub=f"u{index}")
            client = await stack.enter_async_context(YClient.connect(url))
            await client.wait_synced()
            clients.append(client)
        draining = asyncio.create_task(server.app[ROOMS].close(drain_s=2.0))
        await eventually(lambda: server.app[ROOMS].shutting_down, what="the drain has begun")
        response = await http.get(f"{server.http}/readyz")
        assert response.status == 503
        assert (await response.json())["checks"]["instance"].startswith("failed: shutting down")
        status, _ = await connect_http_error(server.doc_url("w1/n0", sub="late"))
        assert status == 503
        for client in clients:
            assert await client.wait_closed() == CloseCode.SERVICE_RESTART
        await draining


async def test_a_slow_flush_does_not_hold_up_the_waves() -> None:
    """With the store stuck, the flush between waves is waited for only until the next wave:
    every wave still closes its peers, and once the store answers the edit is stored."""
    store = ScriptedStore()
    store.append_gate = asyncio.Event()  # every append waits until it is set
    await store.open()
    bus = MemoryBus()
    await bus.start()
    manager = RoomManager(store, bus, RoomLimits(flush_interval_s=3600))
    await manager.start()
    live = await manager.acquire("w1/n1")
    sockets = [ClosingPeerTransport() for _ in range(30)]
    for index, socket in enumerate(sockets):
        peer = Peer(
            f"p{index}",
            user_id=f"u{index}",
            can_write=True,
            transport=socket,
            limits=OutboxLimits(max_bytes=1 << 20, max_frames=100),
        )
        manager.join(live, peer)
    author: Doc[Any] = Doc()
    author.get("t", type=Text).insert(0, "kept")
    await manager.apply_server_update(live, author.get_update())
    closing = asyncio.create_task(manager.close(drain_s=2.0))
    await eventually(lambda: all(socket.closed for socket in sockets), what="every wave closed")
    assert store.appends_waiting == 1
    assert not closing.done()
    store.append_gate.set()
    manager.release(live)
    await closing
    assert {(socket.closed or (None,))[0] for socket in sockets} == {CloseCode.SERVICE_RESTART}
    stored = await store.load("w1/n1")
    doc: Doc[Any] = Doc()
    for part in ([stored.snapshot] if stored.snapshot else []) + stored.updates:
        doc.apply_update(part)
    assert str(doc.get("t", type=Text)) == "kept"
