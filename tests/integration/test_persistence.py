"""Persistence through the room manager: group commit, compaction, unload, restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pycrdt import Doc, Text

from collab.bus.memory import MemoryBus
from collab.errors import StoreError
from collab.rooms.manager import RoomLimits, RoomManager
from collab.store.base import Held, StoredDocument
from collab.store.memory import MemoryStore
from collab.store.sqlite import SqliteStore
from collab.web.keys import ROOMS
from tests.conftest import StartServer, make_settings
from tests.support.rest import rest_call
from tests.support.stores import ScriptedStore
from tests.support.waiting import eventually
from tests.support.yclient import YClient


def text_of(stored: StoredDocument, root: str = "t") -> str:
    doc: Doc[Any] = Doc()
    for part in ([stored.snapshot] if stored.snapshot else []) + stored.updates:
        doc.apply_update(part)
    return str(doc.get(root, type=Text))


async def test_edits_survive_a_restart_with_the_same_sqlite_file(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Everything typed before a restart is there after it."""
    settings = make_settings(database_url=f"sqlite:///{tmp_path / 'c.db'}")
    first = await start_server(settings)
    async with YClient.connect(first.doc_url()) as client:
        await client.wait_synced()
        text = client.doc.get("t", type=Text)
        for word in ("one ", "two ", "three"):
            text.insert(len(text), word)
        await client.flush()
        await eventually(
            lambda: (
                str(first.app[ROOMS].get("w1/n1").room.doc.get("t", type=Text))  # type: ignore[union-attr]
                == "one two three"
            ),
            what="server applied every edit",
        )
    await first.close()
    second = await start_server(settings)
    async with YClient.connect(second.doc_url()) as fresh:
        await fresh.wait_until(lambda: str(fresh.doc.get("t", type=Text)) == "one two three")


async def test_updates_are_written_in_bounded_batches_without_waiting_for_the_timer(
    start_server: StartServer,
) -> None:
    """Group commit: a full batch is written at once, never more than the batch bound."""
    store = ScriptedStore()
    settings = make_settings(flush_interval_ms=60_000, flush_max_batch=10)
    server = await start_server(settings, store=store)
    async with YClient.connect(server.doc_url()) as client:
        await client.wait_synced()
        text = client.doc.get("t", type=Text)
        for index in range(40):
            text.insert(index, "x")
        await client.flush()
        await eventually(lambda: sum(store.batches) == 40, what="40 updates stored")
    assert store.batches
    assert max(store.batches) <= 10


async def test_the_log_is_compacted_into_a_snapshot(start_server: StartServer) -> None:
    """Once the log reaches the threshold it becomes one snapshot with the same content."""
    store = ScriptedStore()
    settings = make_settings(compact_after_updates=5, room_grace_s=60)
    server = await start_server(settings, store=store)
    async with YClient.connect(server.doc_url()) as client:
        await client.wait_synced()
        text = client.doc.get("t", type=Text)
        for index in range(12):
            text.insert(index, "ab"[index % 2])
        await client.flush()
        await eventually(lambda: sum(store.batches) == 12, what="all updates stored")
        assert store.compactions >= 1
        stored = await store.load("w1/n1")
        assert stored.snapshot is not None
        assert len(stored.updates) < 5
        expected = str(text)
    assert text_of(await store.load("w1/n1")) == expected


async def test_idle_rooms_are_flushed_and_unloaded(start_server: StartServer) -> None:
    """After the last client leaves and the grace period passes, the room is unloaded and
    its edits are in the store; memory does not grow with documents ever opened."""
    store = ScriptedStore()
    server = await start_server(
        make_settings(room_grace_s=0.05, flush_interval_ms=60_000), store=store
    )
    manager = server.app[ROOMS]
    for index in range(20):
        async with YClient.connect(server.doc_url(f"w1/note{index}")) as client:
            await client.wait_synced()
            client.doc.get("t", type=Text).insert(0, f"note {index}")
            await client.flush()
            room_id, text = f"w1/note{index}", f"note {index}"

            def applied(room_id: str = room_id, text: str = text) -> bool:
                live = manager.get(room_id)
                return live is not None and str(live.room.doc.get("t", type=Text)) == text

            await eventually(applied, what="edit applied")
    await eventually(lambda: manager.loaded_rooms == 0, what="every room unloaded")
    for index in range(20):
        assert text_of(await store.load(f"w1/note{index}")) == f"note {index}"


async def test_closing_the_server_flushes_pending_updates(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Shutdown writes what the flush timer has not written yet."""
    path = tmp_path / "c.db"
    settings = make_settings(database_url=f"sqlite:///{path}", flush_interval_ms=60_000)
    server = await start_server(settings)
    async with YClient.connect(server.doc_url()) as client:
        await client.wait_synced()
        client.doc.get("t", type=Text).insert(0, "flush me on close")
        await client.flush()
        await eventually(
            lambda: (live := server.app[ROOMS].get("w1/n1")) is not None and live.room.version > 0,
            what="edit applied",
        )
        await server.close()
    store = SqliteStore(str(path))
    await store.open()
    try:
        assert text_of(await store.load("w1/n1")) == "flush me on close"
    finally:
        await store.close()


async def test_closing_the_server_retries_a_failed_final_flush(start_server: StartServer) -> None:
    """A store write that fails at shutdown is tried again within COLLAB_SHUTDOWN_TIMEOUT_S:
    an edit made over REST has no client holding a copy to send again."""
    store = ScriptedStore()
    settings = make_settings(flush_interval_ms=60_000, room_grace_s=60, shutdown_timeout_s=10)
    server = await start_server(settings, store=store)
    doc: Doc[Any] = Doc()
    doc.get("t", type=Text).insert(0, "server-side edit")
    status, body = await rest_call(
        server.http, server.token(), "POST", "/api/v1/docs/w1/n1/updates", data=doc.get_update()
    )
    assert status == 200, body
    store.append_failures = 2
    await server.close()
    assert store.appends_failed == 2
    await store.open()  # closed with the server; what it holds stays
    assert text_of(await store.load("w1/n1")) == "server-side edit"


async def test_store_outage_keeps_editing_and_loses_nothing_once_it_is_back(
    start_server: StartServer,
) -> None:
    """While the store fails, edits keep flowing between clients, the backlog stays bounded
    (it collapses into a snapshot), /readyz-style health reports it, and every edit is
    stored once the store is back."""
    store = ScriptedStore()
    settings = make_settings(store_backlog_per_room=5, room_grace_s=60)
    server = await start_server(settings, store=store)
    manager = server.app[ROOMS]
    async with YClient.connect(server.doc_url()) as a, YClient.connect(server.doc_url()) as b:
        await a.wait_synced()
        await b.wait_synced()
        store.fail_with = StoreError("database down")
        text = a.doc.get("t", type=Text)
        for index in range(30):
            text.insert(index, "z")
        await b.wait_until(lambda: str(b.doc.get("t", type=Text)) == "z" * 30)
        await eventually(lambda: not manager.store_healthy, what="outage noticed")
        live = manager.get("w1/n1")
        assert live is not None
        assert len(live.pending) <= 5
        store.fail_with = None
        await eventually(lambda: manager.store_healthy and not live.pending, what="recovered")
        await eventually(
            lambda: not live.unsaved_state and not live.pending, what="backlog written"
        )
    assert text_of(await store.load("w1/n1")) == "z" * 30


async def test_compactions_let_edits_through_between_rooms() -> None:
    """Busy rooms reach the compaction threshold together; each compaction encodes its
    document (and merges what other instances stored) on the event loop, so the flusher
    yields between rooms instead of holding the loop for all of them."""
    loop = asyncio.get_running_loop()
    turns = 0

    def count_turns() -> None:
        nonlocal turns
        turns += 1
        if ticking:
            loop.call_soon(count_turns)

    class TurnRecordingStore(MemoryStore):
        def __init__(self) -> None:
            super().__init__()
            self.turns_at_compaction: list[int] = []

        async def compact(self, room_id: str, state: bytes, held: Held | None = None) -> None:
            self.turns_at_compaction.append(turns)
            await super().compact(room_id, state, held)

    store = TurnRecordingStore()
    await store.open()
    bus = MemoryBus()
    await bus.start()
    limits = RoomLimits(flush_interval_s=3600, flush_max_batch=9, compact_after_updates=3)
    manager = RoomManager(store, bus, limits)
    await manager.start()
    rooms = [await manager.acquire(f"w1/n{index}") for index in range(3)]
    for live in rooms:
        for word in ("a", "b", "c"):
            author: Doc[Any] = Doc()
            author.get("t", type=Text).insert(0, word)
            await manager.apply_server_update(live, author.get_update())
    ticking = True
    loop.call_soon(count_turns)
    try:
        await eventually(lambda: len(store.turns_at_compaction) == 3, what="3 compactions")
    finally:
        ticking = False
    first, second, third = store.turns_at_compaction
    assert first < second < third
    for live in rooms:
        manager.release(live)
    await manager.close()
    for live in rooms:
        stored = await store.load(live.room_id)
        assert stored.updates == []
        assert text_of(stored) in {"cba", "bca", "acb", "abc", "bac", "cab"}


async def test_edits_during_a_store_outage_do_not_hurry_the_retries() -> None:
    """A failed flush is retried after a growing delay; the edits that keep arriving meanwhile
    arm no flush of their own (each would be another failed write to a store that is down)."""
    store = ScriptedStore()
    await store.open()
    bus = MemoryBus()
    await bus.start()
    manager = RoomManager(store, bus, RoomLimits(flush_interval_s=0.01))
    await manager.start()
    live = await manager.acquire("w1/n1")
    store.fail_with = StoreError("database down")
    attempts_before = len(store.batches)
    author: Doc[Any] = Doc()
    text = author.get("t", type=Text)
    # 0.5 s of edits every 10 ms: 50 flush intervals, in which the retries (after 0.2 s, then
    # 0.4 s more) make at most two attempts after the first failure.
    for index in range(50):
        before = author.get_state()
        text.insert(index, "x")
        await manager.apply_server_update(live, author.get_update(before))
        await asyncio.sleep(0.01)
    failed_attempts = len(store.batches) - attempts_before
    assert 1 <= failed_attempts <= 3
    store.fail_with = None
    await eventually(lambda: manager.store_healthy and not live.pending, what="recovered")
    manager.release(live)
    await manager.close()
    assert text_of(await store.load("w1/n1")) == "x" * 50
