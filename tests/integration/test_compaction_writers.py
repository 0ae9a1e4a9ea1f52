"""The group commit's compactions as a writer (`Store.compact`): a room's own rows are taken
as held by the state it encodes, so no row of it may be logged between that encoding and
the store's read of the log."""

from __future__ import annotations

import asyncio
from typing import Any

from pycrdt import Doc, Text

from collab.rooms.commit import GroupCommit
from collab.rooms.document import DocumentRoom
from collab.rooms.live import LiveRoom, RoomLimits
from collab.store import MemoryStore

ROOM = "w1/n1"


class HeldCompactionStore(MemoryStore):
    """Holds every compaction, before it reads anything, until `released` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.compacting = asyncio.Event()
        self.released = asyncio.Event()

    async def compact(self, room_id: str, state: bytes, writer: int | None = None) -> None:
        self.compacting.set()
        await self.released.wait()
        await super().compact(room_id, state, writer)


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
