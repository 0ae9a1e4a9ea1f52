"""SIGTERM with a paced drain: clients are closed with 1012 in waves, every edit the server
applied is stored, and stock clients move to the surviving instance and converge."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pycrdt import Doc, Map, Text

from collab.protocol.close_codes import CloseCode
from collab.store.postgres import PostgresStore
from tests.conftest import ProcessFactory
from tests.e2e.conftest import token
from tests.support.balancer import Balancer
from tests.support.node_agent import NodeAgent
from tests.support.postgres_server import PostgresServer
from tests.support.redis_server import RedisServer
from tests.support.servers import ServerProcess
from tests.support.waiting import eventually
from tests.support.yclient import YClient

ROOMS = [f"w1/drain{r}" for r in range(4)]
CLIENTS_PER_ROOM = 10
WAVE_LINE = re.compile(r"drain wave (\d+)/(\d+): closed (\d+) of (\d+)")
# A pace for the editing clients, so that edits are in flight when the drain starts.
EDIT_PACE_S = 0.02


def drain_waves(server: ServerProcess) -> list[tuple[int, int, int]]:
    """(wave, waves, closed) of each wave the server's log reports."""
    return [(int(m[1]), int(m[2]), int(m[3])) for m in WAVE_LINE.finditer(server.log_text())]


def assert_paced_and_bounded(server: ServerProcess, clients: int) -> None:
    """The log shows more than one wave, numbered in order, closing every client once, and
    no overrun of the shutdown bound."""
    waves = drain_waves(server)
    assert len(waves) > 1, server.log_text()[-3000:]
    assert [number for number, _, _ in waves] == list(range(1, len(waves) + 1))
    assert {total for _, total, _ in waves} == {len(waves)}
    assert sum(closed for _, _, closed in waves) == clients
    assert "shutdown took longer" not in server.log_text()


async def keep_editing(client: YClient, name: str) -> None:
    """Set a new key of the room's map until the connection closes."""
    edits = client.doc.get("m", type=Map)
    count = 0
    while not client.closed:
        edits[f"{name}:{count}"] = count
        count += 1
        await asyncio.sleep(EDIT_PACE_S)


def keys_seen_from_others(client: YClient, name: str) -> set[str]:
    """The edits of other clients this client received: the server applied each of them."""
    return {key for key in client.doc.get("m", type=Map) if not key.startswith(f"{name}:")}


async def test_sigterm_closes_clients_in_waves_and_stores_every_applied_edit(
    server_processes: ProcessFactory,
) -> None:
    """40 editing clients over 4 rooms, SIGTERM with COLLAB_DRAIN_S=2: each gets 1012, in
    more than one wave; the process exits 0; every edit the server relayed is stored."""
    served = await server_processes.start(
        COLLAB_DRAIN_S="2", COLLAB_FLUSH_INTERVAL_MS="60000", COLLAB_LOG_LEVEL="INFO"
    )
    names = {room: [f"{room}-c{c}" for c in range(CLIENTS_PER_ROOM)] for room in ROOMS}
    async with contextlib.AsyncExitStack() as stack:
        clients: dict[str, tuple[str, YClient]] = {}
        for room, members in names.items():
            for name in members:
                url = f"{served.ws}/ws/docs/{room}?token={token(name)}"
                client = await stack.enter_async_context(YClient.connect(url))
                await client.wait_synced()
                clients[name] = (room, client)
        editing = [
            asyncio.create_task(keep_editing(client, name)) for name, (_, client) in clients.items()
        ]
        # Everyone is editing: each room's first client has seen an edit of every other.
        for room, members in names.items():
            first = clients[members[0]][1]
            await first.wait_until(
                lambda first=first, members=members: all(
                    any(key.startswith(f"{other}:") for key in first.doc.get("m", type=Map))
                    for other in members[1:]
                ),
                what=f"edits of every client of {room}",
            )
        assert await served.stop(signal.SIGTERM) == 0
        for _, client in clients.values():
            assert await client.wait_closed() == CloseCode.SERVICE_RESTART
        await asyncio.gather(*editing)
        applied = {room: set[str]() for room in ROOMS}
        for name, (room, client) in clients.items():
            applied[room] |= keys_seen_from_others(client, name)
    assert_paced_and_bounded(served, len(clients))
    restarted = await server_processes.start()
    for room in ROOMS:
        url = f"{restarted.ws}/ws/docs/{room}?token={token('reader')}"
        async with YClient.connect(url) as reader:
            await reader.wait_synced()
            stored = set(reader.doc.get("m", type=Map).keys())
        assert applied[room] - stored == set(), room
        assert len(applied[room]) >= CLIENTS_PER_ROOM - 1


# -- two instances: the drained clients move to the survivor -----------------------------------


async def _stored_text(dsn: str, room_id: str) -> str:
    store = PostgresStore(dsn)
    await store.open()
    try:
        stored = await store.load(room_id)
    finally:
        await store.close()
    doc: Doc[Any] = Doc()
    for part in ([stored.snapshot] if stored.snapshot else []) + stored.updates:
        doc.apply_update(part)
    return str(doc.get("text", type=Text))


@pytest.fixture
async def balanced_pair(
    server_processes: ProcessFactory, fresh_redis: RedisServer, fresh_postgres: PostgresServer
) -> AsyncIterator[tuple[ServerProcess, ServerProcess, Balancer, str]]:
    """Instances A and B on one Redis and one Postgres, and a balancer that sends new
    connections to A only until the test adds B."""
    dsn = await fresh_postgres.create_database()
    env = {
        "COLLAB_DATABASE_URL": dsn,
        "COLLAB_REDIS_URL": fresh_redis.url,
        "COLLAB_FLUSH_INTERVAL_MS": "50",
        "COLLAB_DRAIN_S": "2",
        "COLLAB_LOG_LEVEL": "INFO",
    }
    a = await server_processes.start(**env)
    b = await server_processes.start(**env)
    balancer = Balancer([("127.0.0.1", a.port)])
    await balancer.start()
    yield a, b, balancer, dsn
    await balancer.close()


async def test_drained_stock_clients_reconnect_to_the_survivor_and_converge(
    agent: NodeAgent, balanced_pair: tuple[ServerProcess, ServerProcess, Balancer, str]
) -> None:
    """40 stock y-websocket clients on A keep typing while A is SIGTERMed: they are closed
    with 1012 in waves, reconnect through the balancer to B, and every word of every client
    ends up in every client of its room and in the store."""
    a, b, balancer, dsn = balanced_pair
    room_of = {f"c{r}-{c}": room for r, room in enumerate(ROOMS) for c in range(CLIENTS_PER_ROOM)}
    for name, room in room_of.items():
        await agent.connect(name, f"{balancer.ws}/ws/docs", room, token(name))
        await agent.wait_synced(name)
    balancer.backends.append(("127.0.0.1", b.port))
    words = {name: [f"<{name}:{i}>" for i in range(10)] for name in room_of}

    async def type_words(name: str) -> None:
        for word in words[name]:
            await agent.text_insert(name, "text", 0, word)

    first = next(iter(room_of))
    typing = [asyncio.create_task(type_words(name)) for name in room_of]
    await eventually(
        lambda: _read_text(agent, first, lambda text: words[first][1] in text),
        what="typing under way",
    )
    assert await a.stop(signal.SIGTERM) == 0
    await asyncio.gather(*typing)
    live: dict[str, str] = {}
    for room in ROOMS:
        members = [name for name, of in room_of.items() if of == room]
        live[room] = await _converged(agent, members)
        for name in members:
            for word in words[name]:
                assert word in live[room]
    for name in room_of:
        closes = [e for e in await agent.events(name) if e["type"] == "connection-close"]
        assert closes, name
        assert closes[0]["code"] == CloseCode.SERVICE_RESTART, name
    assert_paced_and_bounded(a, len(room_of))
    for name in room_of:
        await agent.destroy(name)
    assert await b.stop(signal.SIGTERM) == 0
    for room in ROOMS:
        assert await _stored_text(dsn, room) == live[room]


async def _read_text(agent: NodeAgent, client: str, check: Any) -> bool:
    return bool(check((await agent.read(client, {"text": "text"}))["text"]))


async def _converged(agent: NodeAgent, clients: list[str]) -> str:
    texts: list[str] = []

    async def same_text() -> bool:
        nonlocal texts
        texts = [(await agent.read(c, {"text": "text"}))["text"] for c in clients]
        return len(set(texts)) == 1

    await eventually(same_text, timeout=30, what="clients converge")
    return texts[0]
