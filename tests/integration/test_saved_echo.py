"""The durable "saved" echo: a `?saved=1` connection gets each of its updates back, as a sync
Update message, only once the store holds it; nobody else gets anything more."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pycrdt import Doc, Map, Text, create_sync_message

from collab.errors import StoreError
from collab.protocol.messages import encode_update, update_payload
from collab.store.base import StoredDocument
from collab.store.memory import MemoryStore
from collab.web.keys import ROOMS, STORE
from tests.conftest import RunningServer, StartServer, make_settings
from tests.support.metrics import scrape
from tests.support.rest import rest_call
from tests.support.stores import ScriptedStore
from tests.support.waiting import eventually
from tests.support.yclient import YClient, connect_http_error

ROOM = "w1/n1"
SYNC_STEP2_PREFIX = b"\x00\x01"
# A flush interval no test waits out: these tests flush when they choose to.
NO_TIMER_MS = 60_000


def saved_url(server: RunningServer, sub: str = "u1") -> str:
    return server.doc_url(sub=sub) + "&saved=1"


@contextlib.asynccontextmanager
async def synced_pair(server: RunningServer) -> AsyncIterator[tuple[YClient, YClient]]:
    """A `?saved=1` connection of u1 and a plain one of u2, both synced."""
    async with (
        YClient.connect(saved_url(server)) as saver,
        YClient.connect(server.doc_url(sub="u2")) as other,
    ):
        await saver.wait_synced()
        await other.wait_synced()
        yield saver, other


def updates_received(client: YClient) -> list[bytes]:
    """The updates of the sync Update messages the client received, oldest first."""
    payloads = (update_payload(frame) for _, frame in client.received)
    return [payload for payload in payloads if payload is not None]


def updates_sent(client: YClient) -> list[bytes]:
    """The updates of the sync Update messages the client sent (its local edits)."""
    payloads = (update_payload(frame) for frame in client.sent if isinstance(frame, bytes))
    return [payload for payload in payloads if payload is not None]


def text_of(doc: Doc[Any]) -> str:
    return str(doc.get("t", type=Text))


def text_of_updates(updates: Sequence[bytes]) -> str:
    doc: Doc[Any] = Doc()
    for update in updates:
        doc.apply_update(update)
    return text_of(doc)


def text_stored(stored: StoredDocument) -> str:
    return text_of_updates(([stored.snapshot] if stored.snapshot else []) + stored.updates)


async def round_trip(client: YClient) -> None:
    """Send a sync step 1 and wait for the server's step 2: every message the server sent the
    client before answering has arrived."""

    def answers() -> int:
        return sum(frame.startswith(SYNC_STEP2_PREFIX) for _, frame in client.received)

    before = answers()
    await client.send_raw(create_sync_message(client.doc))
    await client.wait_until(lambda: answers() > before, what="the answer to a sync step 1")


async def saved_echoes_metric(server: RunningServer) -> float:
    text = await scrape(server)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "collab_saved_echoes_total":
                return float(sample.value)
    raise AssertionError("no collab_saved_echoes_total series")


async def test_a_saved_connection_gets_its_update_back_only_once_the_store_has_it(
    start_server: StartServer,
) -> None:
    """The edit reaches the other client at once, but comes back to its sender only after the
    flush that stored it: as the very update it sent, and nothing more reaches the other."""
    server = await start_server(make_settings(flush_interval_ms=NO_TIMER_MS, room_grace_s=60))
    manager, store = server.app[ROOMS], server.app[STORE]
    async with synced_pair(server) as (saver, other):
        saver.doc.get("t", type=Text).insert(0, "hello")
        await other.wait_until(lambda: text_of(other.doc) == "hello")
        await round_trip(saver)
        assert updates_received(saver) == []
        assert text_stored(await store.load(ROOM)) == ""

        await manager.flush()
        await saver.wait_until(lambda: updates_received(saver), what="the echo")
        assert text_stored(await store.load(ROOM)) == "hello"
        assert updates_received(saver) == updates_sent(saver)
        assert text_of(saver.doc) == "hello"
        await round_trip(other)
        assert len(updates_received(other)) == 1
    assert manager.saved_echoes == 1
    assert await saved_echoes_metric(server) == 1


async def test_updates_stored_in_one_flush_come_back_in_one_message(
    start_server: StartServer,
) -> None:
    """Several updates written by one flush are echoed merged, as one Update message."""
    server = await start_server(make_settings(flush_interval_ms=NO_TIMER_MS, room_grace_s=60))
    async with YClient.connect(saved_url(server)) as saver:
        await saver.wait_synced()
        text = saver.doc.get("t", type=Text)
        for index, word in enumerate(("one ", "two ", "three")):
            text.insert(len(str(text)) if index else 0, word)
        await round_trip(saver)
        assert len(updates_sent(saver)) == 3
        await server.app[ROOMS].flush()
        await saver.wait_until(lambda: updates_received(saver), what="the echo")
        await round_trip(saver)
        [echo] = updates_received(saver)
        assert text_of_updates([echo]) == "one two three"


async def test_connections_that_do_not_ask_get_no_echo(start_server: StartServer) -> None:
    """A stock connection's own edit never comes back to it, even after it is stored."""
    server = await start_server()
    async with (
        YClient.connect(server.doc_url()) as plain,
        YClient.connect(saved_url(server, "u2")) as saver,
    ):
        await plain.wait_synced()
        await saver.wait_synced()
        plain.doc.get("t", type=Text).insert(0, "plain")
        await saver.wait_until(lambda: text_of(saver.doc) == "plain")
        # The saver's edit is stored with or after the plain one (one log, in order): once its
        # echo is back, an echo of the plain edit would have been sent too, and the saver's
        # next edit reaches the plain connection after it.
        saver_text = saver.doc.get("t", type=Text)
        saver_text.insert(5, " saved")
        await saver.wait_until(lambda: len(updates_received(saver)) == 2, what="the echo")
        saver_text.insert(11, "!")
        await plain.wait_until(lambda: text_of(plain.doc) == "plain saved!")
        assert updates_received(plain) == updates_sent(saver)


async def test_rest_edits_are_not_echoed(start_server: StartServer) -> None:
    """An edit posted over REST reaches a saved connection once, as any edit: no echo."""
    server = await start_server()
    async with YClient.connect(saved_url(server)) as saver:
        await saver.wait_synced()
        author: Doc[Any] = Doc()
        author.get("t", type=Text).insert(0, "rest ")
        status, _ = await rest_call(
            server.http,
            server.token(),
            "POST",
            f"/api/v1/docs/{ROOM}/updates",
            data=author.get_update(),
        )
        assert status == 200
        await saver.wait_until(lambda: text_of(saver.doc) == "rest ")
        # Stored after the REST edit: its echo comes after any the REST edit could get.
        saver.doc.get("t", type=Text).insert(5, "mine")
        await saver.wait_until(
            lambda: updates_received(saver)[-1:] == updates_sent(saver), what="the echo"
        )
        assert len(updates_received(saver)) == 2


async def test_an_update_the_server_already_has_is_echoed_too(start_server: StartServer) -> None:
    """Sending an update again (after a reconnect, say) gets it back once stored, though it
    changes nothing and nobody else hears of it."""
    server = await start_server()
    async with synced_pair(server) as (saver, other):
        saver.doc.get("t", type=Text).insert(0, "twice")
        await saver.wait_until(lambda: len(updates_received(saver)) == 1, what="the echo")
        [update] = updates_sent(saver)
        await saver.send_raw(b"\x00\x02" + _var_bytes(update))
        await saver.wait_until(lambda: len(updates_received(saver)) == 2, what="a second echo")
        assert updates_received(saver) == [update, update]
        await round_trip(other)
        assert updates_received(other) == [update]


async def test_a_large_update_the_server_already_has_is_echoed_too(
    start_server: StartServer,
) -> None:
    """The same for an update large enough to be known by its digest (over 16 KiB and 16
    structs), which the server recognises without reading it again."""
    server = await start_server()
    async with YClient.connect(saved_url(server)) as saver:
        await saver.wait_synced()
        fields = saver.doc.get("m", type=Map)
        with saver.doc.transaction():
            for index in range(24):
                fields[f"k{index}"] = "x" * 1000
        await saver.wait_until(lambda: len(updates_received(saver)) == 1, what="the echo")
        [update] = updates_sent(saver)
        assert len(update) > 16 * 1024
        await saver.send_raw(b"\x00\x02" + _var_bytes(update))
        await saver.wait_until(lambda: len(updates_received(saver)) == 2, what="a second echo")
        assert updates_received(saver) == [update, update]


def _var_bytes(data: bytes) -> bytes:
    length, prefix = len(data), bytearray()
    while length >= 0x80:
        prefix.append(length & 0x7F | 0x80)
        length >>= 7
    prefix.append(length)
    return bytes(prefix) + data


async def test_no_echo_while_the_store_fails_and_one_once_it_is_back(
    start_server: StartServer,
) -> None:
    """While every store write fails the edit is relayed but not echoed; once the store takes
    it, the echo comes and the store has it."""
    store = MemoryStore()
    server = await start_server(make_settings(room_grace_s=60), store=store)
    manager = server.app[ROOMS]
    async with YClient.connect(saved_url(server)) as saver:
        await saver.wait_synced()
        store.fail_with = StoreError("database down")
        saver.doc.get("t", type=Text).insert(0, "kept")
        await eventually(lambda: not manager.store_healthy, what="a failed flush")
        await round_trip(saver)
        assert updates_received(saver) == []
        store.fail_with = None
        await saver.wait_until(lambda: updates_received(saver), what="the echo")
        assert text_stored(await store.load(ROOM)) == "kept"
        assert updates_received(saver) == updates_sent(saver)


async def append_text(client: YClient, others: Sequence[YClient], word: str) -> None:
    """Type `word` at the end of `client`'s text and wait until the server relayed it."""
    text = client.doc.get("t", type=Text)
    text.insert(len(str(text)), word)
    expected = str(text)
    for other in others:
        await other.wait_until(lambda other=other: text_of(other.doc) == expected)


@pytest.mark.parametrize("collapsing", [False, True], ids=["queued-before", "collapsing"])
async def test_a_collapsed_backlog_is_echoed_only_after_its_snapshot_is_stored(
    start_server: StartServer, collapsing: bool
) -> None:
    """A saved edit whose backlog collapsed while the store was down (queued before the
    collapse, or the edit that collapsed it) is only in the snapshot still to write:
    appending what came after it does not echo it, the snapshot does."""
    store = ScriptedStore()
    settings = make_settings(room_grace_s=60, store_backlog_per_room=3)
    server = await start_server(settings, store=store)
    manager = server.app[ROOMS]
    async with synced_pair(server) as (saver, plain):
        store.fail_with = StoreError("database down")
        # Three queued updates fill the backlog; the fourth collapses it.
        writers = [plain, plain, plain, saver] if collapsing else [saver, plain, plain, plain]
        for index, writer in enumerate(writers):
            await append_text(writer, [saver, plain], str(index))
        live = manager.get(ROOM)
        assert live is not None
        assert live.unsaved_state
        assert not live.pending
        store.fail_compactions = True
        appends = store.appends
        store.fail_with = None
        for word in ("e", "f"):  # queued after the collapse: appended, not compacted
            await append_text(plain, [saver], word)
        await eventually(
            lambda: store.appends > appends and store.failed_compactions > 0 and not live.pending,
            what="the appends, then a failed compaction",
        )
        await round_trip(saver)
        assert updates_received(saver)[-1:] == updates_sent(plain)[-1:]
        assert len(updates_received(saver)) == 5
        store.fail_compactions = False
        await saver.wait_until(lambda: len(updates_received(saver)) == 6, what="the echo")
        assert updates_received(saver)[-1:] == updates_sent(saver)
        assert text_stored(await store.load(ROOM)) == "0123ef"


async def test_an_edit_queued_after_a_collapse_during_an_append_waits_for_its_own_write(
    start_server: StartServer,
) -> None:
    """The backlog collapses while an append is in flight; the saved edit queued after the
    collapse is not in that append, so its end must not count it written: when the snapshot
    then fails, there is no echo until a write holds the edit."""
    store = ScriptedStore()
    settings = make_settings(room_grace_s=60, store_backlog_per_room=3, flush_interval_ms=10)
    server = await start_server(settings, store=store)
    manager = server.app[ROOMS]
    async with synced_pair(server) as (saver, plain):
        store.append_gate = asyncio.Event()
        await append_text(plain, [saver], "a")
        await eventually(lambda: store.appends_waiting == 1, what="an append in flight")
        for word in ("b", "c", "d"):  # "d" collapses the backlog
            await append_text(plain, [saver], word)
        live = manager.get(ROOM)
        assert live is not None
        assert live.unsaved_state
        assert not live.pending
        await append_text(saver, [plain], "X")
        assert live.pending
        store.fail_compactions = True
        store.append_gate.set()
        store.append_gate = None
        await eventually(lambda: store.failed_compactions > 0, what="a failed compaction")
        await round_trip(saver)
        stored = text_stored(await store.load(ROOM))
        assert "X" not in stored, stored
        assert updates_received(saver)[-1:] != updates_sent(saver)[-1:]

        store.fail_compactions = False
        await saver.wait_until(
            lambda: updates_received(saver)[-1:] == updates_sent(saver)[-1:], what="the echo"
        )
        assert text_stored(await store.load(ROOM)) == "abcdX"
        assert manager.pending_updates == 0


@pytest.mark.parametrize("backup", ["fails", "succeeds"])
async def test_an_update_resent_while_a_backup_of_remote_changes_is_under_way_waits_for_it(
    start_server: StartServer, backup: str
) -> None:
    """Instance B holds an edit that reached it over the bus from A, which died before its
    flush: B's backup compaction stores it. The user's device sends the edit again to B
    while that compaction is under way. If the compaction fails, the echo waits for one
    that stores the edit; if it succeeds, the echo still comes, from the next compaction,
    with nobody editing any more."""
    store_a, store_b = MemoryStore(), ScriptedStore()
    a = await start_server(make_settings(room_grace_s=60, flush_interval_ms=10), store=store_a)
    b = await start_server(make_settings(room_grace_s=60, flush_interval_ms=10), store=store_b)
    try:
        async with YClient.connect(b.doc_url(sub="u2")) as plain:
            await plain.wait_synced()
            async with YClient.connect(saved_url(a)) as saver:
                await saver.wait_synced()
                store_a.fail_with = StoreError("instance A dies before its flush")
                await append_text(saver, [plain], "a")
                [edit] = updates_sent(saver)
            live = b.app[ROOMS].get(ROOM)
            assert live is not None
            changed_at = live.remote_changes_at
            assert changed_at is not None
            # B backs the change up at its next flush from `remote_backup_s` (2 s) on.
            await eventually(
                lambda: time.monotonic() - changed_at > 2.1, what="the backup due", timeout=10
            )
            store_b.compact_gate = asyncio.Event()
            await append_text(plain, [], "p")
            await eventually(lambda: store_b.compactions_waiting > 0, what="the backup under way")
            async with YClient.connect(saved_url(b)) as again:
                await again.wait_synced()
                await again.send_raw(encode_update(edit))
                await round_trip(again)
                if backup == "succeeds":
                    store_b.compact_gate.set()
                    store_b.compact_gate = None
                    await again.wait_until(lambda: updates_received(again), what="the echo")
                    assert "a" in text_stored(await store_b.load(ROOM))
                    return
                store_b.fail_compactions = True
                store_b.compact_gate.set()
                store_b.compact_gate = None
                await eventually(lambda: store_b.failed_compactions >= 2, what="a failed retry")
                await round_trip(again)
                assert "a" not in text_stored(await store_b.load(ROOM))
                assert updates_received(again) == []

                store_b.fail_compactions = False
                await again.wait_until(lambda: updates_received(again), what="the echo")
                assert "a" in text_stored(await store_b.load(ROOM))
    finally:
        store_a.fail_with = None  # lets A shut down


async def test_echoes_waiting_for_a_store_that_is_down_stay_bounded(
    start_server: StartServer,
) -> None:
    """A saved connection typing on while the store is down holds no more echoes than the
    room's backlog bound; once the store is back, what comes back holds every edit."""
    store = MemoryStore()
    settings = make_settings(room_grace_s=60, store_backlog_per_room=3)
    server = await start_server(settings, store=store)
    manager = server.app[ROOMS]
    async with YClient.connect(saved_url(server)) as saver:
        await saver.wait_synced()
        store.fail_with = StoreError("database down")
        text = saver.doc.get("t", type=Text)
        for index in range(10):
            text.insert(index, "x")
        await round_trip(saver)
        live = manager.get(ROOM)
        assert live is not None
        assert len(live.saved_echoes) <= 3
        store.fail_with = None
        await saver.wait_until(
            lambda: text_of_updates(updates_received(saver)) == "x" * 10, what="the echoes"
        )
        assert text_stored(await store.load(ROOM)) == "x" * 10


@pytest.mark.parametrize("backend", ["embedded"])
async def test_no_echo_while_another_process_holds_the_sqlite_write_lock(
    start_server: StartServer, tmp_path: Path
) -> None:
    """A real SQLite file whose write lock another connection holds: the append waits and
    fails, no echo comes; once the lock is let go the update is written, then echoed."""
    path = tmp_path / "locked.db"
    server = await start_server(make_settings(database_url=f"sqlite:///{path}", room_grace_s=60))
    manager = server.app[ROOMS]
    async with YClient.connect(saved_url(server)) as saver:
        await saver.wait_synced()
        locker = sqlite3.connect(path, isolation_level=None)
        try:
            locker.execute("BEGIN IMMEDIATE")
            saver.doc.get("t", type=Text).insert(0, "locked out")
            # SQLite's busy timeout (5 s) passes before the append gives up.
            await eventually(lambda: not manager.store_healthy, timeout=30, what="a failed flush")
            await round_trip(saver)
            assert updates_received(saver) == []
            locker.execute("ROLLBACK")
            await saver.wait_until(lambda: updates_received(saver), timeout=30, what="the echo")
            rows = locker.execute(
                "SELECT data FROM document_updates WHERE room_id = ?", (ROOM,)
            ).fetchall()
        finally:
            locker.close()
        assert updates_sent(saver) == updates_received(saver)
        assert text_of_updates([bytes(row[0]) for row in rows]) == "locked out"


async def test_the_echo_of_a_connection_that_left_is_dropped(start_server: StartServer) -> None:
    """An update stored after its sender left is echoed to nobody; the others of that flush
    still get theirs."""
    server = await start_server(make_settings(flush_interval_ms=NO_TIMER_MS, room_grace_s=60))
    manager = server.app[ROOMS]
    async with YClient.connect(saved_url(server, "u2")) as stays:
        await stays.wait_synced()
        async with YClient.connect(saved_url(server)) as leaves:
            await leaves.wait_synced()
            leaves.doc.get("t", type=Text).insert(0, "gone ")
            await stays.wait_until(lambda: text_of(stays.doc) == "gone ")
        live = manager.get(ROOM)
        assert live is not None
        await eventually(lambda: len(live.peers) == 1, what="the first connection left")
        stays.doc.get("t", type=Text).insert(5, "here")
        await round_trip(stays)
        await manager.flush()
        await stays.wait_until(
            lambda: updates_received(stays)[-1:] == updates_sent(stays), what="the echo"
        )
    assert manager.saved_echoes == 1


@pytest.mark.parametrize("value", ["0", "true", "", "2"])
async def test_any_other_saved_value_is_refused_before_the_upgrade(
    server: RunningServer, value: str
) -> None:
    """`?saved=` takes only 1: anything else is a 400 naming the parameter, and no socket."""
    status, body = await connect_http_error(server.doc_url() + f"&saved={value}")
    assert status == 400
    error = orjson.loads(body)["error"]
    assert error["code"] == "bad_request"
    assert "'saved'" in error["message"]
