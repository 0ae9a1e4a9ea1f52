"""Several `collab serve` processes on one Redis and one Postgres, behind a load balancer.

Each test owns its Redis and its Postgres database, so it can kill them without touching
anything else.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from pycrdt import Doc, Text

from collab.store.postgres import PostgresStore
from tests.conftest import ProcessFactory
from tests.e2e.conftest import token
from tests.support.balancer import Balancer
from tests.support.live import LiveClient
from tests.support.node_agent import NodeAgent
from tests.support.postgres_server import PostgresServer
from tests.support.redis_server import RedisServer
from tests.support.servers import ServerProcess
from tests.support.waiting import eventually

ROOM = "w1/n1"


@dataclass
class Cluster:
    processes: ProcessFactory
    redis: RedisServer
    postgres: PostgresServer
    dsn: str
    instances: list[ServerProcess]
    balancer: Balancer

    def instance_env(self) -> dict[str, str]:
        return {
            "COLLAB_DATABASE_URL": self.dsn,
            "COLLAB_REDIS_URL": self.redis.url,
            "COLLAB_FLUSH_INTERVAL_MS": "50",
        }

    async def stored_text(self, root: str = "text") -> str:
        store = PostgresStore(self.dsn)
        await store.open()
        try:
            stored = await store.load(ROOM)
        finally:
            await store.close()
        doc: Doc = Doc()
        for part in ([stored.snapshot] if stored.snapshot else []) + stored.updates:
            doc.apply_update(part)
        return str(doc.get(root, type=Text))


@pytest.fixture
async def cluster(
    server_processes: ProcessFactory, fresh_redis: RedisServer, fresh_postgres: PostgresServer
) -> AsyncIterator[Cluster]:
    """Two instances on this test's own Redis and Postgres, behind a balancer."""
    dsn = await fresh_postgres.create_database()
    partial = Cluster(server_processes, fresh_redis, fresh_postgres, dsn, [], Balancer([]))
    for _ in range(2):
        partial.instances.append(await server_processes.start(**partial.instance_env()))
    partial.balancer.backends = [("127.0.0.1", p.port) for p in partial.instances]
    await partial.balancer.start()
    yield partial
    await partial.balancer.close()


async def _connect(agent: NodeAgent, base: str, name: str, **kw: object) -> int:
    client_id = await agent.connect(
        name,
        f"{base}/ws/docs",
        ROOM,
        token(name),
        max_backoff_ms=300,
        awareness={"user": {"name": name}},
        **kw,  # type: ignore[arg-type]
    )
    await agent.wait_synced(name)
    return client_id


async def _converged(agent: NodeAgent, clients: list[str], timeout_s: float = 30) -> str:
    """Wait until every client reads the same text; return it."""
    texts: list[str] = []

    async def same_text() -> bool:
        nonlocal texts
        texts = [(await agent.read(c, {"text": "text"}))["text"] for c in clients]
        return len(set(texts)) == 1

    await eventually(same_text, timeout=timeout_s, what="clients converge")
    return texts[0]


async def _type_words(agent: NodeAgent, client: str, words: list[str]) -> None:
    for word in words:
        await agent.text_insert(client, "text", 0, word)


async def test_clients_on_different_instances_converge_and_late_joiners_see_everything(
    agent: NodeAgent, cluster: Cluster
) -> None:
    """Edits and awareness cross instances; a late joiner on B sees edits made on A."""
    a, b = cluster.instances
    a_id = await _connect(agent, a.ws, "on-a")
    b_id = await _connect(agent, b.ws, "on-b")
    await agent.text_insert("on-a", "text", 0, "from A. ")
    await agent.wait_for("on-b", {"text": "text"}, {"text": "from A. "})
    await agent.text_insert("on-b", "text", 8, "from B.")
    await agent.wait_for("on-a", {"text": "text"}, {"text": "from A. from B."})
    await agent.wait_awareness("on-a", {a_id, b_id})
    await agent.wait_awareness("on-b", {a_id, b_id})
    late_id = await _connect(agent, b.ws, "late-on-b")
    await agent.wait_for("late-on-b", {"text": "text"}, {"text": "from A. from B."})
    await agent.destroy("on-a")
    await agent.wait_awareness("late-on-b", {b_id, late_id})


async def test_sigkill_of_an_instance_loses_no_edit(agent: NodeAgent, cluster: Cluster) -> None:
    """Clients of a killed instance reconnect to the other one; every edit of every client
    survives, and after a clean shutdown the stored state equals the live state."""
    names = [f"c{i}" for i in range(4)]
    for name in names:
        await _connect(agent, cluster.balancer.ws, name)
    words = {name: [f"<{name}:{i}>" for i in range(40)] for name in names}
    typing = [asyncio.create_task(_type_words(agent, n, words[n])) for n in names]
    await _until_typed(agent, names[0], "<c0:5>")
    victim, survivor = cluster.instances
    await victim.kill()
    await asyncio.gather(*typing)
    live = await _converged(agent, names)
    for name in names:
        for word in words[name]:
            assert word in live
    for name in names:
        await agent.destroy(name)
    assert await survivor.stop(signal.SIGTERM) == 0
    assert await cluster.stored_text() == live


async def test_redis_restart_heals_without_client_action(
    agent: NodeAgent, cluster: Cluster
) -> None:
    """With Redis down each instance keeps serving its own clients; once Redis is back the
    instances reconnect, resubscribe and converge by themselves."""
    a, b = cluster.instances
    await _connect(agent, a.ws, "a1")
    await _connect(agent, a.ws, "a2")
    await _connect(agent, b.ws, "b1")
    await cluster.redis.kill()
    await agent.text_insert("a1", "text", 0, "[during outage on A]")
    await agent.wait_for("a2", {"text": "text"}, {"text": "[during outage on A]"})
    await agent.text_insert("b1", "text", 0, "[during outage on B]")
    async with aiohttp.ClientSession() as http:
        await eventually(
            lambda: _status(http, f"{a.http}/readyz", 503), what="A reports the bus outage"
        )
        await cluster.redis.restart()
        await eventually(lambda: _status(http, f"{a.http}/readyz", 200), timeout=30, what="A ready")
    text = await _converged(agent, ["a1", "a2", "b1"])
    assert "[during outage on A]" in text
    assert "[during outage on B]" in text


async def test_postgres_outage_keeps_editing_and_loses_nothing(
    agent: NodeAgent, cluster: Cluster
) -> None:
    """While Postgres is down, editing goes on and /readyz says so; once it is back every
    edit is stored."""
    a, b = cluster.instances
    await _connect(agent, a.ws, "a1")
    await _connect(agent, b.ws, "b1")
    await agent.text_insert("a1", "text", 0, "before. ")
    await agent.wait_for("b1", {"text": "text"}, {"text": "before. "})
    await cluster.postgres.stop()
    try:
        await agent.text_insert("a1", "text", 8, "during A. ")
        await agent.text_insert("b1", "text", 0, "during B. ")
        live = await _converged(agent, ["a1", "b1"])
        async with aiohttp.ClientSession() as http:
            await eventually(
                lambda: _status(http, f"{a.http}/readyz", 503), what="A reports the store outage"
            )
    finally:
        await cluster.postgres.start()
    async with aiohttp.ClientSession() as http:
        await eventually(lambda: _status(http, f"{a.http}/readyz", 200), timeout=30, what="ready")
    await agent.text_insert("b1", "text", 0, "after. ")
    live = await _converged(agent, ["a1", "b1"])
    for name in ("a1", "b1"):
        await agent.destroy(name)
    for instance in (a, b):
        assert await instance.stop(signal.SIGTERM) == 0
    assert await cluster.stored_text() == live


async def test_graceful_sigterm_moves_clients_to_another_instance(
    agent: NodeAgent, cluster: Cluster
) -> None:
    """SIGTERM during editing: the instance flushes and closes its clients with 1012; they
    reconnect through the balancer and nothing is lost."""
    names = [f"c{i}" for i in range(4)]
    for name in names:
        await _connect(agent, cluster.balancer.ws, name)
    words = {name: [f"<{name}:{i}>" for i in range(30)] for name in names}
    typing = [asyncio.create_task(_type_words(agent, n, words[n])) for n in names]
    await _until_typed(agent, names[0], "<c0:5>")
    leaving, staying = cluster.instances
    assert await leaving.stop(signal.SIGTERM) == 0
    await asyncio.gather(*typing)
    live = await _converged(agent, names)
    for name in names:
        for word in words[name]:
            assert word in live
    closes = [e for n in names for e in await agent.events(n) if e["type"] == "connection-close"]
    assert any(event["code"] == 1012 for event in closes)
    for name in names:
        await agent.destroy(name)
    assert await staying.stop(signal.SIGTERM) == 0
    assert await cluster.stored_text() == live


async def test_awareness_of_a_killed_instance_expires_everywhere(
    agent: NodeAgent, cluster: Cluster
) -> None:
    """The awareness of clients on an instance that died disappears on the others (after
    COLLAB_AWARENESS_TIMEOUT_S, here 3 s; stock clients alone would take 30 s)."""
    a, _ = cluster.instances
    quick = await cluster.processes.start(**cluster.instance_env(), COLLAB_AWARENESS_TIMEOUT_S="3")
    await _connect(agent, quick.ws, "observer")
    observer_id = await agent.client_id("observer")
    a_id = await _connect(agent, a.ws, "on-a")
    await agent.wait_awareness("observer", {a_id, observer_id})
    await a.kill()
    await agent.wait_awareness("observer", {observer_id}, timeout_s=20)


async def _until_typed(agent: NodeAgent, client: str, marker: str) -> None:
    async def typed() -> bool:
        return marker in (await agent.read(client, {"text": "text"}))["text"]

    await eventually(typed, what=f"{marker} typed")


async def _status(http: aiohttp.ClientSession, url: str, expected: int) -> bool:
    try:
        async with http.get(url) as response:
            return response.status == expected
    except aiohttp.ClientError:
        return False


async def test_presence_of_a_killed_instance_expires_and_notifications_cross(
    cluster: Cluster,
) -> None:
    """Presence crosses instances and a SIGKILLed instance's users leave by expiry; a
    notification posted on one instance reaches the user's connections on both."""
    a, b = cluster.instances
    fast = await cluster.processes.start(
        **cluster.instance_env(), COLLAB_PRESENCE_HEARTBEAT_S="0.3"
    )
    watcher_token = token("watcher", {"w1": "editor"})
    async with LiveClient.connect(fast.ws, watcher_token) as watcher:
        await watcher.send({"type": "subscribe", "workspace": "w1"})
        await watcher.wait_event("presence.snapshot")
        async with (
            LiveClient.connect(a.ws, token("doomed", {"w1": "editor"})) as doomed,
            LiveClient.connect(b.ws, token("doomed", {"w1": "editor"})) as doomed_on_b,
        ):
            await doomed.send({"type": "subscribe", "workspace": "w1"})
            await watcher.wait_event(
                "presence.join", lambda e: e["user"]["user"] == "doomed", timeout=20
            )
            await doomed_on_b.wait_event("notifications.synced")
            async with aiohttp.ClientSession() as http:
                response = await http.post(
                    f"{fast.http}/api/v1/notifications",
                    json={"workspace": "w1", "recipients": ["doomed"], "title": "ping"},
                    headers={"Authorization": f"Bearer {watcher_token}"},
                )
                assert response.status == 201
            for tab in (doomed, doomed_on_b):
                event = await tab.wait_event("notification", timeout=20)
                assert event["notification"]["payload"]["title"] == "ping"
            await a.kill()
            # Instance A wrote its presence with the default 5 s heartbeat: 15 s TTL.
            await watcher.wait_event("presence.leave", lambda e: e["user"] == "doomed", timeout=40)
