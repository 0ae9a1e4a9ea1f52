"""Awareness batched per tick, with pycrdt clients on real sockets, on one instance and two."""

from __future__ import annotations

from collab.protocol.messages import AwarenessUpdate, decode_message
from tests.conftest import StartServer, make_settings
from tests.support.yclient import YClient

AWARENESS = 1
MOVES = 20


def awareness_messages_about(client: YClient, client_id: int) -> list[AwarenessUpdate]:
    """The awareness messages `client` received that carry an entry of `client_id`."""
    messages = []
    for frame in client.frames(AWARENESS):
        decoded = decode_message(frame)
        assert isinstance(decoded, AwarenessUpdate)
        if any(entry.client_id == client_id for entry in decoded.entries):
            messages.append(decoded)
    return messages


def cursor_of(client: YClient, client_id: int) -> object:
    return client.awareness_states().get(client_id, {}).get("cursor")


async def move_cursor(mover: YClient, times: int = MOVES) -> None:
    """Set the mover's cursor `times` times back to back and hand every message to the socket."""
    for position in range(times):
        mover.set_awareness({"cursor": position})
    await mover.flush()


async def test_a_burst_of_cursor_moves_reaches_a_peer_as_fewer_messages_ending_on_the_last(
    start_server: StartServer,
) -> None:
    """20 moves sent back to back within one long tick: the peer gets the last one, in fewer
    messages than moves, and so does the mover (one message for every peer)."""
    server = await start_server(make_settings(awareness_batch_ms=500, awareness_max_per_s=1000))
    async with (
        YClient.connect(server.doc_url()) as mover,
        YClient.connect(server.doc_url(sub="u2")) as watcher,
    ):
        await mover.wait_synced()
        await watcher.wait_synced()
        await move_cursor(mover)
        mover_id = mover.client_id
        await watcher.wait_until(lambda: cursor_of(watcher, mover_id) == MOVES - 1)
        assert len(awareness_messages_about(watcher, mover_id)) < MOVES
        # The tick's message went to the mover too: its own entry, at a clock it already has.
        await mover.wait_until(lambda: awareness_messages_about(mover, mover_id) != [])


async def test_changes_of_several_clients_in_one_tick_share_one_message(
    start_server: StartServer,
) -> None:
    server = await start_server(make_settings(awareness_batch_ms=500))
    async with YClient.connect(server.doc_url(sub="watcher")) as watcher:
        await watcher.wait_synced()
        movers = [YClient.connect(server.doc_url(sub=f"m{i}")) for i in range(4)]
        clients = [await mover.__aenter__() for mover in movers]
        try:
            for client in clients:
                await client.wait_synced()
            for index, client in enumerate(clients):
                client.set_awareness({"cursor": index})
            ids = {client.client_id for client in clients}
            await watcher.wait_until(lambda: ids <= set(watcher.awareness_states()))
            largest = max(
                len(decoded.entries)
                for frame in watcher.frames(AWARENESS)
                if isinstance(decoded := decode_message(frame), AwarenessUpdate)
            )
            assert largest > 1
        finally:
            for mover in movers:
                await mover.__aexit__(None, None, None)
        # Their leaving is batched too, and reaches the watcher.
        await watcher.wait_until(lambda: not ids & set(watcher.awareness_states()))


async def test_a_connection_over_its_awareness_rate_is_held_not_closed(
    start_server: StartServer,
) -> None:
    """At 2 messages a second, 20 moves at once: the connection stays open, the peer ends on
    the last move."""
    server = await start_server(make_settings(awareness_batch_ms=20, awareness_max_per_s=2))
    async with (
        YClient.connect(server.doc_url()) as mover,
        YClient.connect(server.doc_url(sub="u2")) as watcher,
    ):
        await mover.wait_synced()
        await watcher.wait_synced()
        await move_cursor(mover)
        mover_id = mover.client_id
        await watcher.wait_until(lambda: cursor_of(watcher, mover_id) == MOVES - 1)
        assert not mover.closed
        assert len(awareness_messages_about(watcher, mover_id)) <= 3


async def test_what_goes_on_the_bus_is_batched_too(start_server: StartServer) -> None:
    """Moves made on A reach a client on B in fewer messages than moves, ending on the last;
    the mover's leaving reaches B."""
    settings = make_settings(awareness_batch_ms=500, awareness_max_per_s=1000)
    a = await start_server(settings)
    b = await start_server(settings)
    async with YClient.connect(b.doc_url(sub="u2")) as on_b:
        await on_b.wait_synced()
        async with YClient.connect(a.doc_url()) as mover:
            await mover.wait_synced()
            await move_cursor(mover)
            mover_id = mover.client_id
            await on_b.wait_until(lambda: cursor_of(on_b, mover_id) == MOVES - 1)
            assert len(awareness_messages_about(on_b, mover_id)) < MOVES
        await on_b.wait_until(lambda: mover_id not in on_b.awareness_states())
