"""The group commit's compactions as a writer (`Store.compact`): a room's own rows are taken
as held by the state it encodes, so no row of it may be logged between that encoding and
the store's read of the log."""

from __future__ import annotations

import asyncio
from typing import Any

from pycrdt import Doc, Text

from collab.bus import MemoryBus
from collab.rooms.commit import GroupCommit
from collab.rooms.document import DocumentRoom
from collab.rooms.live import LiveRoom, RoomLimits
from collab.rooms.manager import RoomManager
from collab.store import MemoryStore
from collab.store.base import Held, stored_digest

ROOM = "w1/n1"


class HeldCompactionStore(MemoryStore):
    """Holds every compaction, before it reads anything, until `released` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.compacting = asyncio.Event()
        self.released = asyncio.Event()

    async def compact(self, room_id: str, state: bytes, held: Held | None = None) -> None:
        self.compacting.set()
        await self.released.wait()
        await super().compact(room_id, state, held)


def type_into(room: DocumentRoom, word: str) -> bytes:
    """Append `word` to the room's text; the update it made."""
    updates: list[bytes] = []
    subscription = room.doc.observe(lambda event: updates.append(event.update))
    text = room.doc.get("t", type=Text)
    text.insert(len(text), word)
    room.doc.unobserve(subscription)
    [update] = updates
    return update


def text_of(snapshot: bytes | None, updates: list[bytes]) -> str:
    doc: Doc[Any] = Doc()
    for part in ([snapshot] if snapshot else []) + updates:
        doc.apply_update(part)
    return str(doc.get("t", type=Text))


async def test_an_edit_flushed_while_its_room_compacts_stays_in_the_log() -> None:
    """An edit made after a compaction encoded the room's state, and flushed while the store
    has not read the log yet, is not taken for part of that state: the flush waits for the
    compaction, and the edit is in the log after it."""
    store = HeldCompactionStore()
    await store.open()
    commit = GroupCommit(store, RoomLimits(flush_interval_s=3600, compact_after_updates=10**6))
    live = LiveRoom(DocumentRoom(ROOM))
    commit.note(live, type_into(live.room, "a"))
    await commit.flush()

    compaction = asyncio.create_task(commit.compact(live))
    await store.compacting.wait()
    later = type_into(live.room, "b")
    commit.note(live, later)
    flush = asyncio.create_task(commit.flush())
    for _ in range(5):
        await asyncio.sleep(0)
    store.released.set()
    await asyncio.gather(compaction, flush)

    stored = await store.load(ROOM)
    assert stored.updates == [later]
    assert text_of(stored.snapshot, stored.updates) == "ab"


class LoadedRecordingStore(MemoryStore):
    """Records the `loaded` digest of every compaction."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[bytes | None] = []

    async def compact(self, room_id: str, state: bytes, held: Held | None = None) -> None:
        self.loaded.append(None if held is None else held.loaded)
        await super().compact(room_id, state, held)


async def test_a_rooms_first_compaction_names_what_it_was_loaded_from() -> None:
    """A loaded room's first compaction passes the digest of the stored parts it was built
    from, the next ones none (those parts are the writer's own by then); nothing is lost."""
    store = LoadedRecordingStore()
    await store.open()
    before = DocumentRoom(ROOM)
    type_into(before, "a")
    await store.compact(ROOM, before.doc.get_update())
    await store.append_updates([(ROOM, type_into(before, "b"), None)])
    stored = await store.load(ROOM)
    assert stored.snapshot is not None
    loaded = stored_digest(stored.parts)
    store.loaded.clear()
    bus = MemoryBus()
    await bus.start()
    manager = RoomManager(store, bus, RoomLimits(flush_interval_s=3600, compact_after_updates=1))
    await manager.start()
    live = await manager.acquire(ROOM)
    for word in ("c", "d"):
        await manager.apply_server_update(live, type_into(DocumentRoom("scratch"), word))
        await manager.flush()
    manager.release(live)
    await manager.close()
    await bus.close()

    assert store.loaded[0] == loaded
    assert store.loaded[1:]
    assert set(store.loaded[1:]) == {None}
    assert sorted(text_of((await store.load(ROOM)).snapshot, [])) == list("abcd")
