"""The y-websocket endpoint with a pycrdt client on real sockets."""

from __future__ import annotations

import asyncio

import pytest
from pycrdt import Array, Doc, Map, Text, write_var_uint

from collab.errors import StoreError
from collab.rooms.manager import LiveRoom
from collab.store.base import StoredDocument
from collab.store.memory import MemoryStore
from collab.web.keys import ROOMS, STORE
from tests.conftest import RunningServer, StartServer, make_settings
from tests.support.waiting import eventually, scaled
from tests.support.yclient import YClient, connect_http_error


def text_of(client: YClient, root: str = "t") -> str:
    return str(client.doc.get(root, type=Text))


async def test_two_clients_converge_on_text_map_and_array(server: RunningServer) -> None:
    """Edits of one client reach the other for text, map and array roots."""
    async with YClient.connect(server.doc_url()) as a, YClient.connect(server.doc_url()) as b:
        await a.wait_synced()
        await b.wait_synced()
        a.doc.get("t", type=Text).insert(0, "hello")
        a.doc.get("m", type=Map)["k"] = "v"
        b.doc.get("arr", type=Array).append(42)
        await b.wait_until(
            lambda: text_of(b) == "hello" and b.doc.get("m", type=Map).get("k") == "v"
        )
        await a.wait_until(lambda: a.doc.get("arr", type=Array).to_py() == [42.0])


async def test_late_joiner_receives_the_full_state(server: RunningServer) -> None:
    """A client that joins after edits were made gets all of them."""
    async with YClient.connect(server.doc_url()) as a:
        await a.wait_synced()
        a.doc.get("t", type=Text).insert(0, "written before you came")
        async with YClient.connect(server.doc_url()) as late:
            await late.wait_until(lambda: text_of(late) == "written before you came")


async def test_rooms_are_isolated(server: RunningServer) -> None:
    """An edit in one note never reaches a client of another note."""
    async with (
        YClient.connect(server.doc_url("w1/n1")) as a,
        YClient.connect(server.doc_url("w1/n2")) as other,
        YClient.connect(server.doc_url("w1/n1")) as b,
    ):
        for client in (a, other, b):
            await client.wait_synced()
        a.doc.get("t", type=Text).insert(0, "only n1")
        await b.wait_until(lambda: text_of(b) == "only n1")
        assert text_of(other) == ""
        live = server.app[ROOMS].get("w1/n2")
        assert live is not None
        assert str(live.room.doc.get("t", type=Text)) == ""


async def test_awareness_is_relayed_and_removed_when_a_connection_closes(
    server: RunningServer,
) -> None:
    """A client's awareness reaches the others and disappears as soon as it disconnects."""
    async with YClient.connect(server.doc_url()) as observer:
        await observer.wait_synced()
        async with YClient.connect(server.doc_url()) as peer:
            await peer.wait_synced()
            peer.set_awareness({"user": {"name": "Peer"}})
            peer_id = peer.doc.client_id
            await observer.wait_until(lambda: peer_id in observer.awareness_states())
            assert observer.awareness_states()[peer_id] == {"user": {"name": "Peer"}}
        await observer.wait_until(lambda: peer_id not in observer.awareness_states())


async def test_new_client_receives_current_awareness_on_connect(server: RunningServer) -> None:
    """On connect the server sends sync step 1 and the awareness states it holds."""
    async with YClient.connect(server.doc_url()) as first:
        await first.wait_synced()
        first.set_awareness({"cursor": 3})
        first_id = first.doc.client_id
        await eventually(
            lambda: (
                (live := _room(server, "w1/n1")) is not None
                and bool(live.room.awareness.present_states())
            ),
            what="server holds the awareness state",
        )
        async with YClient.connect(server.doc_url()) as second:
            await second.wait_until(lambda: first_id in second.awareness_states())
            kinds = [kind for kind, _ in second.received[:2]]
            assert kinds == [0, 1]  # sync step 1, then awareness


async def test_awareness_for_foreign_client_ids_is_not_relayed(server: RunningServer) -> None:
    """A connection cannot set or remove the awareness state of a client id it did not introduce."""
    from collab.protocol.messages import AwarenessEntry, encode_awareness

    async with (
        YClient.connect(server.doc_url()) as victim,
        YClient.connect(server.doc_url()) as spoofer,
        YClient.connect(server.doc_url()) as observer,
    ):
        for client in (victim, spoofer, observer):
            await client.wait_synced()
        victim.set_awareness({"name": "victim"})
        victim_id = victim.doc.client_id
        await observer.wait_until(lambda: victim_id in observer.awareness_states())
        await spoofer.send_raw(encode_awareness([AwarenessEntry(victim_id, 999, None)]))
        await spoofer.send_raw(encode_awareness([AwarenessEntry(victim_id, 1000, '{"name":"x"}')]))
        # A marker from the spoofer's own id proves the earlier frames were processed.
        spoofer.set_awareness({"name": "marker"})
        await observer.wait_until(lambda: spoofer.doc.client_id in observer.awareness_states())
        assert observer.awareness_states()[victim_id] == {"name": "victim"}


async def test_viewer_receives_everything_but_cannot_edit(server: RunningServer) -> None:
    """A viewer's updates are neither applied, relayed nor stored; it still gets edits and its
    awareness is relayed."""
    viewer_token = server.token("v1", {"w1": "viewer"})
    async with (
        YClient.connect(server.doc_url()) as editor,
        YClient.connect(server.doc_url(token=viewer_token)) as viewer,
    ):
        await editor.wait_synced()
        await viewer.wait_synced()
        viewer.doc.get("t", type=Text).insert(0, "vandalism")
        viewer.set_awareness({"name": "viewer"})
        await editor.wait_until(lambda: viewer.doc.client_id in editor.awareness_states())
        editor.doc.get("t", type=Text).insert(0, "legit ")
        await viewer.wait_until(lambda: "legit " in text_of(viewer))
        assert text_of(editor) == "legit "
        live = _room(server, "w1/n1")
        assert live is not None
        assert "vandalism" not in str(live.room.doc.get("t", type=Text))
    async with server.app[ROOMS].holding("w1/n1"):
        pass
    await _until_unloaded(server, "w1/n1")
    stored = await server.app[STORE].load("w1/n1")
    doc = Doc()
    for part in ([stored.snapshot] if stored.snapshot else []) + stored.updates:
        doc.apply_update(part)
    assert str(doc.get("t", type=Text)) == "legit "


@pytest.mark.parametrize(
    ("token_kind", "status"),
    [("missing", 401), ("garbage", 401), ("expired", 401), ("other-workspace", 403)],
)
async def test_upgrade_is_refused_with_http_status_before_the_socket(
    server: RunningServer, token_kind: str, status: int
) -> None:
    """Bad credentials get an HTTP error and never a WebSocket."""
    tokens = {
        "missing": "",
        "garbage": "not.a.jwt",
        "expired": server.token("u1", ttl_s=-3600),  # beyond COLLAB_JWT_LEEWAY_S
        "other-workspace": server.token("u1", {"w2": "owner"}),
    }
    url = f"{server.ws}/ws/docs/w1/n1?token={tokens[token_kind]}"
    got_status, body = await connect_http_error(url)
    assert got_status == status
    assert b'"error"' in body


async def test_clients_joining_an_unloaded_document_share_one_load(
    start_server: StartServer,
) -> None:
    """Several clients connecting at once to a stored document wait for one single load."""
    store = GatedStore()
    server = await start_server(store=store)
    await store.open()
    seed = Doc()
    seed.get("t", type=Text).insert(0, "stored text")
    await store.append_updates([("w1/n1", seed.get_update(), None)])
    store.gate.clear()
    clients = [YClient.connect(server.doc_url()) for _ in range(5)]
    entered = [asyncio.create_task(client.__aenter__()) for client in clients]
    await eventually(lambda: store.loads_started >= 1, what="load started")
    await asyncio.sleep(0)  # let the other upgrades reach the manager
    store.gate.set()
    opened = await asyncio.gather(*entered)
    try:
        for client in opened:
            await client.wait_until(lambda c=client: text_of(c) == "stored text")
        assert store.loads_started == 1
    finally:
        for client in clients:
            await client.__aexit__(None, None, None)


async def test_a_failed_load_refuses_the_room_and_keeps_the_stored_document(
    start_server: StartServer,
) -> None:
    """When the store cannot load a document, clients get 503 and nothing is overwritten."""

    store = FailingLoadStore()
    server = await start_server(store=store)
    seed = Doc()
    seed.get("t", type=Text).insert(0, "precious")
    await store.append_updates([("w1/n1", seed.get_update(), None)])
    store.fail_next_load = StoreError("disk on fire")
    status, body = await connect_http_error(server.doc_url())
    assert status == 503
    assert b"room_unavailable" in body
    async with YClient.connect(server.doc_url()) as client:
        await client.wait_until(lambda: text_of(client) == "precious")


class FailingLoadStore(MemoryStore):
    """A MemoryStore whose next `load` raises `fail_next_load`: the room's load fails, and
    nothing else the server asks of the store in the meantime (recording members, reloading
    decisions after a bus resync) takes the fault instead."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next_load: StoreError | None = None

    async def load(self, room_id: str) -> StoredDocument:
        if self.fail_next_load is not None:
            fault, self.fail_next_load = self.fail_next_load, None
            raise fault
        return await super().load(room_id)


class GatedStore(MemoryStore):
    """A MemoryStore whose loads wait for `gate`, counting how many started."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.loads_started = 0

    async def load(self, room_id: str) -> StoredDocument:
        self.loads_started += 1
        await asyncio.wait_for(self.gate.wait(), scaled(10))
        return await super().load(room_id)


def _room(server: RunningServer, room_id: str) -> LiveRoom | None:
    return server.app[ROOMS].get(room_id)


async def _until_unloaded(server: RunningServer, room_id: str) -> None:
    await eventually(lambda: _room(server, room_id) is None, what=f"{room_id} unloaded")


async def test_readiness_recovers_after_a_failed_load(start_server: StartServer) -> None:
    """A load that failed marks the store unhealthy only until the store answers again."""
    import aiohttp

    store = FailingLoadStore()
    server = await start_server(store=store)
    store.fail_next_load = StoreError("blip")
    status, _ = await connect_http_error(server.doc_url())
    assert status == 503
    async with YClient.connect(server.doc_url()) as client:
        await client.wait_synced()
    async with aiohttp.ClientSession() as http:

        async def ready() -> bool:
            return (await http.get(f"{server.http}/readyz")).status == 200

        await eventually(ready, what="ready again")


async def test_a_join_storm_on_a_big_note_is_served_one_sync_at_a_time(
    start_server: StartServer,
) -> None:
    """With one large initial sync at a time, six clients opening a 1.5 MB note at once all
    get all of it, and the gate is empty afterwards."""
    server = await start_server(make_settings(max_initial_syncs=1))
    big = "".join(f"paragraph {i:06d} " + "lorem ipsum " * 10 for i in range(11_000))
    async with YClient.connect(server.doc_url()) as writer:
        await writer.wait_synced()
        writer.doc.get("t", type=Text).insert(0, big)
        await writer.flush()
        live = _room(server, "w1/n1")
        assert live is not None
        await eventually(lambda: str(live.room.doc.get("t", type=Text)) == big, what="loaded")
        assert len(live.room.encoded_state()) > 1024 * 1024
        joiners = [YClient.connect(server.doc_url(sub=f"j{i}")) for i in range(6)]
        clients = await asyncio.gather(*(j.__aenter__() for j in joiners))
        try:
            await asyncio.gather(
                *(c.wait_until(lambda c=c: text_of(c) == big, timeout=60) for c in clients)
            )
        finally:
            for j in joiners:
                await j.__aexit__(None, None, None)
    gate = server.app[ROOMS].initial_syncs
    assert (gate.in_flight, gate.waiting) == (0, 0)


async def test_a_joiner_asking_again_and_again_while_it_waits_holds_one_answer(
    start_server: StartServer,
) -> None:
    """The gate's slot is taken by a joiner that does not read; another connection then
    alternates a keystroke (a new version) and a sync step 1 asking for everything. Each
    answer is a new copy of the note: it waits for one at a time, the latest, and gets the
    whole note once the slot is free."""
    server = await start_server(make_settings(max_initial_syncs=1, room_grace_s=60))
    gate = server.app[ROOMS].initial_syncs
    chunk = "lorem ipsum dolor sit amet " * 120_000  # 3.2 MB, twice: past the kernels' buffers
    async with YClient.connect(server.doc_url()) as writer:
        await writer.wait_synced()
        writer.doc.get("t", type=Text).insert(0, chunk + chunk)
        await writer.flush()
        live = _room(server, "w1/n1")
        assert live is not None
        await eventually(lambda: len(live.room.encoded_state()) > 6 * 1024 * 1024, what="loaded")
        async with YClient.connect(
            server.doc_url(sub="stalled"), recv_buffer_bytes=4096
        ) as stalled:
            stalled.pause_reading()
            await eventually(lambda: gate.in_flight == 1, what="the slot taken")
            async with YClient.connect(server.doc_url(sub="asker")) as asker:
                typed: Doc = Doc()
                keys = typed.get("x", type=Text)
                for index in range(12):
                    before = typed.get_state()
                    keys.insert(index, "a")
                    update = typed.get_update(before)
                    await asker.send_raw(b"\x00\x02" + write_var_uint(len(update)) + update)
                    await asker.send_raw(b"\x00\x00\x01\x00")  # sync step 1, empty state vector
                await writer.wait_until(lambda: text_of(writer, "x") == "a" * 12)
                asker_peer = next(p for p in live.peers.values() if p.user_id == "asker")
                assert [w.peer for w in gate._waiting].count(asker_peer) == 1
                stalled.resume_reading()
                await asker.wait_until(
                    lambda: text_of(asker, "x") == "a" * 12 and text_of(asker) == chunk + chunk,
                    timeout=60,
                )
    assert (gate.in_flight, gate.waiting) == (0, 0)
