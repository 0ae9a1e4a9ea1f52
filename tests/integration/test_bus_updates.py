"""Large updates and updates from other instances: read like every update, large ones off
the event loop (in order, for the bus), a re-sent large one known without a read, a gap
resynced rather than applied in part. Two room managers share an in-process bus broker, as
two instances share Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pycrdt import Doc, Text

from collab.bus.memory import MemoryBroker, MemoryBus
from collab.protocol.messages import encode_update
from collab.rooms.effects import ServerOrigin
from collab.rooms.manager import RoomLimits, RoomManager
from collab.store.base import Held
from collab.store.memory import MemoryStore
from tests.support.waiting import eventually

ROOM_ID = "w1/n1"


class CountingStore(MemoryStore):
    """A memory store that counts compactions (each rewrites a room's whole state)."""

    def __init__(self) -> None:
        super().__init__()
        self.compactions = 0

    async def compact(self, room_id: str, state: bytes, held: Held | None = None) -> None:
        self.compactions += 1
        await super().compact(room_id, state, held)


async def two_instances(
    limits: RoomLimits,
) -> tuple[tuple[RoomManager, CountingStore], tuple[RoomManager, CountingStore]]:
    """Two started managers on one bus, each with a store of its own: what the second stores
    of the first one's changes, only its own compactions put there."""
    broker = MemoryBroker()
    made = []
    for _ in range(2):
        store = CountingStore()
        await store.open()
        bus = MemoryBus(broker)
        await bus.start()
        manager = RoomManager(store, bus, limits)
        await manager.start()
        made.append((manager, store))
    return made[0], made[1]


@pytest.fixture
async def instances() -> AsyncIterator[tuple[RoomManager, RoomManager]]:
    (first, _), (second, _) = await two_instances(RoomLimits(flush_interval_s=0.01))
    yield first, second
    for manager in (first, second):
        await manager.close()


def text_of(manager: RoomManager) -> str:
    live = manager.get(ROOM_ID)
    assert live is not None
    return str(live.room.doc.get("t", type=Text))


async def test_a_large_update_reaches_the_other_instance_and_later_ones_keep_their_order(
    instances: tuple[RoomManager, RoomManager],
) -> None:
    """An update of thousands of structs is read in the receiving instance's trial worker;
    a small edit published right after it is applied after it, not before."""
    first, second = instances
    live_first = await first.acquire(ROOM_ID)
    await second.acquire(ROOM_ID)
    author: Doc[Any] = Doc(client_id=77)
    updates: list[bytes] = []
    author.observe(lambda event: updates.append(event.update))
    text = author.get("t", type=Text)
    with author.transaction():
        for index in range(3000):
            text.insert(0, "ab"[index % 2])  # 3,000 structs: over every inline limit
    text.insert(0, "!")

    assert await first.apply_server_update(live_first, updates[0])
    assert await first.apply_server_update(live_first, updates[1])

    await eventually(lambda: text_of(second) == str(text), what="the second instance converges")
    assert first.tried_updates == 1
    # Had the small edit overtaken the large one, its gap would have made the second
    # instance publish a sync step 1 besides the one it publishes when it loads the room.
    assert second_bus(second).published == 1


async def test_a_bus_update_with_a_gap_is_resynced_not_applied_in_part(
    instances: tuple[RoomManager, RoomManager],
) -> None:
    """When a bus message is lost, the next one is not applied alone: the instance asks the
    others (sync step 1 on the bus) and gets both."""
    first, second = instances
    live_first = await first.acquire(ROOM_ID)
    live_second = await second.acquire(ROOM_ID)
    author: Doc[Any] = Doc(client_id=78)
    updates: list[bytes] = []
    author.observe(lambda event: updates.append(event.update))
    text = author.get("t", type=Text)
    text.insert(0, "lost ")
    text.insert(5, "found")
    # The first update reaches only the first instance (its bus message "lost").
    live_first.room.apply_local_update(updates[0], ServerOrigin())
    version = live_second.room.version

    first._bus.publish(ROOM_ID, encode_update(updates[1]))
    await first.apply_server_update(live_first, updates[1])

    await eventually(lambda: text_of(second) == "lost found", what="the gap is resynced")
    assert live_second.room.version > version
    # A sync step 1 on load, then one for each copy of the update with the gap (published
    # by hand above and as the first instance's edit), both before any answer came back.
    assert second_bus(second).published == 3


def second_bus(manager: RoomManager) -> MemoryBus:
    bus = manager._bus
    assert isinstance(bus, MemoryBus)
    return bus


async def test_a_large_update_sent_again_is_known_without_a_read(
    instances: tuple[RoomManager, RoomManager],
) -> None:
    """A client re-sending a large update the room took whole costs a digest, not a read
    and a trial in the worker: it changes nothing and is not tried again."""
    first, _ = instances
    live = await first.acquire(ROOM_ID)
    author: Doc[Any] = Doc(client_id=79)
    text = author.get("t", type=Text)
    with author.transaction():
        for index in range(3000):
            text.insert(0, "ab"[index % 2])
    update = author.get_update()

    assert await first.apply_server_update(live, update, actor="u1")
    assert first.tried_updates == 1
    version = live.room.version
    for _ in range(3):
        assert not await first.apply_server_update(live, update, actor="u1")
    assert first.tried_updates == 1
    assert live.room.version == version


def backing_up_after(remote_backup_s: float) -> RoomLimits:
    return RoomLimits(flush_interval_s=0.01, grace_s=0.01, remote_backup_s=remote_backup_s)


async def edit_on_both(first: RoomManager, second: RoomManager, rounds: int) -> Text:
    """Each round, an edit on the first instance reaches the second, then the second makes one
    of its own and writes it to its log. Returns the text as the edits left it."""
    live_first, live_second = await first.acquire(ROOM_ID), await second.acquire(ROOM_ID)
    author: Doc[Any] = Doc(client_id=90)
    text = author.get("t", type=Text)
    for index in range(rounds):
        before = author.get_state()
        text.insert(len(text), f"a{index}")
        assert await first.apply_server_update(live_first, author.get_update(before))
        await eventually(lambda: text_of(second) == str(text), what="the first's edit on B")
        before = author.get_state()
        text.insert(len(text), f"b{index}")
        assert await second.apply_server_update(live_second, author.get_update(before))
        await eventually(lambda: not live_second.pending, what="B's edit written")
    return text


def stored_text(stored: Any) -> str:
    doc: Doc[Any] = Doc()
    for update in ([stored.snapshot] if stored.snapshot else []) + stored.updates:
        doc.apply_update(update)
    return str(doc.get("t", type=Text))


async def test_another_instances_changes_are_not_stored_again_at_every_flush() -> None:
    """A room edited on two instances: each one's flushes append its own edits, and neither
    rewrites the room's whole state for the other's changes before `remote_backup_s`."""
    (first, first_store), (second, second_store) = await two_instances(backing_up_after(3600))
    try:
        text = await edit_on_both(first, second, rounds=5)
        live_second = second.get(ROOM_ID)
        assert live_second is not None
        assert live_second.remote_changes_at is not None
        assert second_store.compactions == 0
        assert first_store.compactions == 0
        assert stored_text(await second_store.load(ROOM_ID)) != str(text)  # B's edits only
    finally:
        await first.close()
        await second.close()


async def test_another_instances_changes_are_stored_at_a_flush_once_the_backup_is_due() -> None:
    (first, _), (second, second_store) = await two_instances(backing_up_after(0))
    try:
        text = await edit_on_both(first, second, rounds=1)
        await eventually(lambda: second_store.compactions > 0, what="B's backup compaction")
        assert stored_text(await second_store.load(ROOM_ID)) == str(text)
    finally:
        await first.close()
        await second.close()


async def test_another_instances_changes_are_stored_when_the_room_unloads() -> None:
    """Should the instance that logged them have died before its flush, the room's other
    instances still store them when they let go of it."""
    (first, _), (second, second_store) = await two_instances(backing_up_after(3600))
    try:
        text = await edit_on_both(first, second, rounds=2)
        live_second = second.get(ROOM_ID)
        assert live_second is not None
        second.release(live_second)
        await eventually(lambda: second.get(ROOM_ID) is None, what="B unloaded the room")
        assert second_store.compactions == 1
        assert stored_text(await second_store.load(ROOM_ID)) == str(text)
    finally:
        await first.close()
        await second.close()
