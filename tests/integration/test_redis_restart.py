"""Redis restarted while two instances edit: every instance ends with every edit.

After a restart each instance reconnects at its own time. The first one back resyncs its
rooms (a sync step 1 on the bus) while the other is not subscribed yet, so nobody hears it;
what the other published during the outage may have been dropped from its bounded publish
queue. The second one's resync, a step 1 showing changes the first lacks, must make the
first ask again (`DocumentRoom._answer_step1`); a deletion shows in no state vector, so a
resync publishes its delete set too (`DocumentRoom.resync`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pycrdt import Doc, Text

from collab.bus.redis import RedisBus
from collab.errors import BusError
from collab.rooms.live import LiveRoom
from collab.rooms.manager import RoomLimits, RoomManager
from collab.store.base import StoredDocument
from collab.store.memory import MemoryStore
from tests.support.redis_proxy import FreezableProxy
from tests.support.redis_server import RedisServer
from tests.support.waiting import eventually

QUIET, BUSY = "w1/quiet", "w1/busy"
QUICK_RECONNECTS = {"reconnect_min_s": 0.02, "reconnect_max_s": 0.1}
# No backups of remote changes and no unloads while the test runs: only the bus carries edits.
LIMITS = RoomLimits(flush_interval_s=0.01, remote_backup_s=3600, grace_s=3600)


@pytest.fixture
async def proxy(fresh_redis: RedisServer) -> AsyncIterator[FreezableProxy]:
    proxy = FreezableProxy(fresh_redis.port)
    await proxy.start()
    yield proxy
    await proxy.close()


def text_of(live: LiveRoom) -> str:
    return str(live.room.doc.get("t", type=Text))


def stored_text(stored: StoredDocument) -> str:
    doc: Doc[Any] = Doc()
    for part in ([stored.snapshot] if stored.snapshot else []) + stored.updates:
        doc.apply_update(part)
    return str(doc.get("t", type=Text))


async def type_text(manager: RoomManager, live: LiveRoom, text: str) -> None:
    """Append `text` as a server edit of a fresh client."""
    doc: Doc[Any] = Doc()
    doc.apply_update(live.room.encode_state())
    before = doc.get_state()
    shared = doc.get("t", type=Text)
    shared.insert(len(str(shared)), text)
    await manager.apply_server_update(live, doc.get_update(before))


async def is_up(bus: RedisBus) -> bool:
    try:
        await bus.ping()
    except BusError:
        return False
    return True


async def delete_tail(manager: RoomManager, live: LiveRoom, keep: int) -> None:
    """Delete all but the first `keep` characters, as a server edit of a fresh client."""
    doc: Doc[Any] = Doc()
    doc.apply_update(live.room.encode_state())
    before = doc.get_state()
    shared = doc.get("t", type=Text)
    del shared[keep : len(str(shared))]
    await manager.apply_server_update(live, doc.get_update(before))


@pytest.mark.parametrize("edit", ["insert", "delete"])
async def test_an_edit_made_during_a_restart_reaches_the_instance_back_first(
    fresh_redis: RedisServer, proxy: FreezableProxy, edit: str
) -> None:
    """The outage edit is an insertion, or a deletion alone (which no state vector shows)."""
    store = MemoryStore()
    await store.open()
    prefix = f"restart-{uuid.uuid4().hex}:"
    # B reaches Redis through the proxy, so it comes back second; its publish queue is
    # small, so its outage edit of the quiet room is pushed out by those of the busy one.
    a_bus = RedisBus(fresh_redis.url, channel_prefix=prefix, **QUICK_RECONNECTS)
    b_bus = RedisBus(
        proxy.url, channel_prefix=prefix, publish_queue_max_messages=8, **QUICK_RECONNECTS
    )
    managers = []
    try:
        for bus in (a_bus, b_bus):
            await bus.start()
            managers.append(RoomManager(store, bus, LIMITS))
            await managers[-1].start()
        a, b = managers
        await eventually(lambda: is_up(a_bus), what="A connected")
        await eventually(lambda: is_up(b_bus), what="B connected")
        a_quiet, b_quiet = await a.acquire(QUIET), await b.acquire(QUIET)
        a_busy, b_busy = await a.acquire(BUSY), await b.acquire(BUSY)
        before = "hello " if edit == "insert" else "hello from A"
        await type_text(a, a_quiet, before)
        await eventually(lambda: text_of(b_quiet) == before, what="relayed before")

        resyncs_before = a_bus.resyncs_requested
        await fresh_redis.kill()

        async def both_down() -> bool:
            return not await is_up(a_bus) and not await is_up(b_bus)

        await eventually(both_down, what="the outage noticed")
        proxy.accepting = False
        if edit == "insert":
            await type_text(b, b_quiet, "from B")
        else:
            await delete_tail(b, b_quiet, keep=len("hello"))
        expected = text_of(b_quiet)
        for number in range(12):
            await type_text(b, b_busy, f"{number} ")
        await fresh_redis.restart()
        await eventually(lambda: is_up(a_bus), what="A back first")
        await eventually(
            lambda: a_bus.resyncs_requested >= resyncs_before + 2, what="A resynced its rooms"
        )
        proxy.accepting = True
        await eventually(lambda: is_up(b_bus), what="B back second")
        await eventually(lambda: text_of(a_busy) == text_of(b_busy), what="the busy room")
        await eventually(lambda: text_of(a_quiet) == text_of(b_quiet), what="the quiet room")
        assert text_of(a_quiet) == expected
        await eventually(lambda: not b_quiet.pending, what="B's edits written")
        assert stored_text(await store.load(QUIET)) == expected
    finally:
        for manager in managers:
            await manager.close()
        for bus in (a_bus, b_bus):
            await bus.close()
