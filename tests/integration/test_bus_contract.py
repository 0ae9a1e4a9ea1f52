"""One contract suite for every `Bus` backend, plus the faults only a Redis bus meets.

The contract runs over two `MemoryBus`es on one broker and two `RedisBus`es on a throwaway
`redis-server`. "Nothing else arrived" is checked with a marker published afterwards by the
same sender: both buses deliver one sender's messages in order, so once the marker is in,
anything published before it would be too.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from redis.asyncio import Redis

from collab.bus import Bus, MemoryBroker, MemoryBus
from collab.bus.envelope import encode_envelope
from collab.bus.redis import RedisBus
from collab.bus.redis_session import _Session
from collab.errors import BusError
from tests.support.redis_proxy import FreezableProxy
from tests.support.redis_server import RedisServer, free_port
from tests.support.waiting import eventually, scaled

ROOM = "w1/n1"
OTHER_ROOM = "w1/n2"
THIRD_ROOM = "w2/n1"

# Fast reconnection for tests. The probe keeps its production pace except in the probe test:
# a probe failing on a slow machine would add a resync to tests that count them.
TEST_TUNING: dict[str, Any] = {
    "reconnect_min_s": 0.02,
    "reconnect_max_s": 0.2,
    "connect_timeout_s": scaled(2.0),
    "command_timeout_s": scaled(2.0),
    "probe_timeout_s": scaled(2.0),
}


@dataclass
class Inbox:
    """Everything a bus delivered to one instance, per room, and its resync calls."""

    messages: defaultdict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    resyncs: list[str] = field(default_factory=list)

    def on_message(self, room_id: str, frame: bytes) -> None:
        self.messages[room_id].append(frame)

    def on_resync(self, room_id: str) -> None:
        self.resyncs.append(room_id)

    def of(self, room_id: str) -> list[bytes]:
        return list(self.messages.get(room_id, []))

    def resynced(self, *room_ids: str) -> bool:
        return set(room_ids) <= set(self.resyncs)


@dataclass
class Node:
    """One instance's bus and what it received."""

    bus: Bus
    inbox: Inbox = field(default_factory=Inbox)

    async def subscribe(self, *room_ids: str) -> None:
        for room_id in room_ids:
            await self.bus.subscribe(room_id, self.inbox.on_message, self.inbox.on_resync)


NodeFactory = Callable[[], Awaitable[Node]]


async def ping_ok(bus: Bus) -> bool:
    try:
        await bus.ping()
    except BusError:
        return False
    return True


async def ping_fails(bus: Bus) -> bool:
    return not await ping_ok(bus)


async def wait_connected(*nodes: Node) -> None:
    for node in nodes:
        await eventually(functools.partial(ping_ok, node.bus), what=f"{node.bus!r} connected")


async def wait_for(node: Node, room_id: str, frame: bytes) -> None:
    await eventually(lambda: frame in node.inbox.of(room_id), what=f"{frame!r} in {room_id}")


@pytest.fixture(params=["memory", "redis"])
async def make_node(request: pytest.FixtureRequest) -> AsyncIterator[NodeFactory]:
    """Start connected buses of one backend that reach each other; close them all."""
    broker = MemoryBroker()
    server: RedisServer | None = None
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
    prefix = f"test-{uuid.uuid4().hex}:"
    nodes: list[Node] = []

    async def make() -> Node:
        bus: Bus
        if server is None:
            bus = MemoryBus(broker)
        else:
            bus = RedisBus(server.url, channel_prefix=prefix, **TEST_TUNING)
        node = Node(bus)
        nodes.append(node)
        await bus.start()
        await wait_connected(node)
        return node

    yield make
    for node in nodes:
        await node.bus.close()


@dataclass
class RedisNodes:
    """Makes `RedisBus` nodes sharing one channel prefix, and a raw client to meddle with."""

    prefix: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex}:")
    nodes: list[Node] = field(default_factory=list)
    clients: list[Redis] = field(default_factory=list)

    async def make(self, url: str, *, connected: bool = True, **tuning: Any) -> Node:
        node = Node(RedisBus(url, channel_prefix=self.prefix, **{**TEST_TUNING, **tuning}))
        self.nodes.append(node)
        await node.bus.start()
        if connected:
            await wait_connected(node)
        return node

    def raw_client(self, url: str) -> Redis:
        client = Redis.from_url(url)
        self.clients.append(client)
        return client

    def channel(self, room_id: str) -> str:
        return f"{self.prefix}room:{room_id}"

    async def close(self) -> None:
        for node in self.nodes:
            await node.bus.close()
        for client in self.clients:
            await client.aclose()


@pytest.fixture
async def redis_nodes() -> AsyncIterator[RedisNodes]:
    nodes = RedisNodes()
    yield nodes
    await nodes.close()


@pytest.fixture
async def redis_proxy(redis_server: RedisServer) -> AsyncIterator[FreezableProxy]:
    proxy = FreezableProxy(redis_server.port)
    await proxy.start()
    yield proxy
    await proxy.close()


# -- the contract, for every backend -------------------------------------------------------------


async def test_message_reaches_the_other_instance_in_its_room(make_node: NodeFactory) -> None:
    """A frame published by one instance reaches the other's handler of that room only."""
    a, b = await make_node(), await make_node()
    await a.subscribe(ROOM, OTHER_ROOM)
    await b.subscribe(ROOM, OTHER_ROOM)
    a.bus.publish(ROOM, b"to-room")
    a.bus.publish(OTHER_ROOM, b"to-other-room")
    await wait_for(b, OTHER_ROOM, b"to-other-room")
    assert b.inbox.of(ROOM) == [b"to-room"]
    assert b.inbox.of(OTHER_ROOM) == [b"to-other-room"]


async def test_instance_never_receives_its_own_messages(make_node: NodeFactory) -> None:
    """What an instance publishes reaches the others, never itself."""
    a, b = await make_node(), await make_node()
    await a.subscribe(ROOM)
    await b.subscribe(ROOM)
    a.bus.publish(ROOM, b"from-a")
    await wait_for(b, ROOM, b"from-a")
    b.bus.publish(ROOM, b"from-b")
    await wait_for(a, ROOM, b"from-b")
    assert a.inbox.of(ROOM) == [b"from-b"]
    assert b.inbox.of(ROOM) == [b"from-a"]


async def test_unsubscribed_room_receives_nothing_more(make_node: NodeFactory) -> None:
    """After `unsubscribe`, the room's handler gets no further messages."""
    a, b = await make_node(), await make_node()
    await a.subscribe(ROOM, OTHER_ROOM)
    await b.subscribe(ROOM, OTHER_ROOM)
    a.bus.publish(ROOM, b"before")
    await wait_for(b, ROOM, b"before")
    await b.bus.unsubscribe(ROOM)
    a.bus.publish(ROOM, b"after")
    a.bus.publish(OTHER_ROOM, b"marker")
    await wait_for(b, OTHER_ROOM, b"marker")
    assert b.inbox.of(ROOM) == [b"before"]


async def test_rooms_are_isolated(make_node: NodeFactory) -> None:
    """An instance gets nothing of the rooms it did not subscribe to."""
    a, b = await make_node(), await make_node()
    await a.subscribe(ROOM, OTHER_ROOM, THIRD_ROOM)
    await b.subscribe(ROOM)
    a.bus.publish(OTHER_ROOM, b"other")
    a.bus.publish(THIRD_ROOM, b"third")
    a.bus.publish(ROOM, b"marker")
    await wait_for(b, ROOM, b"marker")
    assert dict(b.inbox.messages) == {ROOM: [b"marker"]}


async def test_messages_of_one_sender_arrive_in_order(make_node: NodeFactory) -> None:
    """A sender's messages of a room are delivered in the order it published them."""
    a, b = await make_node(), await make_node()
    await a.subscribe(ROOM)
    await b.subscribe(ROOM)
    frames = [f"frame-{i}".encode() for i in range(500)]
    for frame in frames:
        a.bus.publish(ROOM, frame)
    await wait_for(b, ROOM, frames[-1])
    assert b.inbox.of(ROOM) == frames


async def test_ping_succeeds_while_started_and_raises_after_close(make_node: NodeFactory) -> None:
    """`ping` returns while the bus runs and raises `BusError` once it is closed (twice)."""
    a = await make_node()
    await a.bus.ping()
    await a.bus.close()
    await a.bus.close()
    with pytest.raises(BusError):
        await a.bus.ping()


# -- Redis only: sequence numbers, bad input ------------------------------------------------------


async def test_gap_in_sequence_numbers_triggers_one_resync(
    redis_server: RedisServer,
    redis_nodes: RedisNodes,
) -> None:
    """A skipped sequence number calls the room's resync handler exactly once."""
    b = await redis_nodes.make(redis_server.url)
    await b.subscribe(ROOM)
    raw = redis_nodes.raw_client(redis_server.url)
    channel = redis_nodes.channel(ROOM)
    for seq in (1, 3, 4):
        await raw.publish(channel, encode_envelope(b"other", 7, seq, f"f{seq}".encode()))
    await wait_for(b, ROOM, b"f4")
    assert b.inbox.of(ROOM) == [b"f1", b"f3", b"f4"]
    assert b.inbox.resyncs == [ROOM]
    assert isinstance(b.bus, RedisBus)
    assert b.bus.gaps_detected == 1


async def test_storm_of_gaps_is_coalesced(
    redis_server: RedisServer,
    redis_nodes: RedisNodes,
) -> None:
    """Many gaps within the resync interval cost one immediate resync, not one each."""
    b = await redis_nodes.make(redis_server.url, resync_min_interval_s=3600)
    await b.subscribe(ROOM)
    raw = redis_nodes.raw_client(redis_server.url)
    for seq in (1, 3, 5, 7, 9, 11):
        await raw.publish(redis_nodes.channel(ROOM), encode_envelope(b"other", 7, seq, b"f"))
    await raw.publish(redis_nodes.channel(ROOM), encode_envelope(b"other", 7, 12, b"marker"))
    await wait_for(b, ROOM, b"marker")
    assert isinstance(b.bus, RedisBus)
    assert b.bus.gaps_detected == 5
    assert b.inbox.resyncs == [ROOM]


async def test_new_epoch_resets_tracking_without_resync(
    redis_server: RedisServer,
    redis_nodes: RedisNodes,
) -> None:
    """A sender that starts a new epoch at seq 1 is not a gap."""
    b = await redis_nodes.make(redis_server.url)
    await b.subscribe(ROOM)
    raw = redis_nodes.raw_client(redis_server.url)
    stamps = [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)]
    for epoch, seq in stamps:
        await raw.publish(
            redis_nodes.channel(ROOM),
            encode_envelope(b"other", epoch, seq, f"{epoch}.{seq}".encode()),
        )
    await wait_for(b, ROOM, b"2.2")
    assert b.inbox.of(ROOM) == [f"{e}.{s}".encode() for e, s in stamps]
    assert b.inbox.resyncs == []


async def test_malformed_messages_are_dropped_and_later_ones_arrive(
    redis_server: RedisServer,
    redis_nodes: RedisNodes,
) -> None:
    """Bytes that are no envelope are counted and dropped; the reader keeps going."""
    b = await redis_nodes.make(redis_server.url)
    await b.subscribe(ROOM)
    raw = redis_nodes.raw_client(redis_server.url)
    valid = encode_envelope(b"other", 7, 1, b"valid")
    garbage = [
        b"",
        b"\x01",
        b"\x02" + valid[1:],  # unknown version
        b"\x01\x00" + valid[2:],  # empty instance id
        valid[:10],  # truncated counters
        b"\x01\x02\xff\xfe" + valid[7:],  # instance id not UTF-8
        b"\x01\x05other" + (7).to_bytes(8, "big") + (0).to_bytes(8, "big") + b"x",  # seq 0
        "plain text ☃".encode(),
    ]
    for payload in garbage:
        await raw.publish(redis_nodes.channel(ROOM), payload)
    await raw.publish(redis_nodes.channel(ROOM), valid)
    await wait_for(b, ROOM, b"valid")
    assert b.inbox.of(ROOM) == [b"valid"]
    assert isinstance(b.bus, RedisBus)
    assert b.bus.malformed_dropped == len(garbage)
    assert b.inbox.resyncs == []


# -- Redis only: faults ---------------------------------------------------------------------------


async def test_unreachable_redis_neither_fails_start_nor_publish(
    redis_nodes: RedisNodes, caplog: pytest.LogCaptureFixture
) -> None:
    """With no Redis: `start` and `publish` do not raise, `ping` raises `BusError`, the outage
    is logged once whatever the retries, and the URL's password never shows."""
    caplog.set_level(logging.INFO, logger="collab.bus.redis")
    url = f"redis://user:s3cret-password@127.0.0.1:{free_port()}/0"
    a = await redis_nodes.make(url, connected=False, reconnect_max_s=0.02)
    await a.subscribe(ROOM)
    a.bus.publish(ROOM, b"queued")
    assert isinstance(a.bus, RedisBus)
    bus = a.bus
    await eventually(lambda: bus.connect_failures >= 3, what="several connection attempts")
    with pytest.raises(BusError, match="not connected"):
        await bus.ping()
    outage_logs = [r for r in caplog.records if "cannot reach Redis" in r.getMessage()]
    assert len(outage_logs) == 1
    assert bus.instance_id in outage_logs[0].getMessage()
    assert "s3cret" not in caplog.text
    assert "s3cret" not in repr(bus)


async def test_publishes_wait_in_a_bounded_queue_until_redis_is_reachable(
    redis_server: RedisServer,
    redis_proxy: FreezableProxy,
    redis_nodes: RedisNodes,
) -> None:
    """While disconnected, publishes are queued up to the bound (the oldest dropped), then
    delivered in order once the bus connects."""
    redis_proxy.accepting = False
    a = await redis_nodes.make(redis_proxy.url, connected=False, publish_queue_max_messages=3)
    b = await redis_nodes.make(redis_server.url)
    await a.subscribe(ROOM)
    await b.subscribe(ROOM)
    for i in range(5):
        a.bus.publish(ROOM, f"m{i}".encode())
    assert isinstance(a.bus, RedisBus)
    assert a.bus.dropped_publishes == 2
    redis_proxy.accepting = True
    await wait_for(b, ROOM, b"m4")
    assert b.inbox.of(ROOM) == [b"m2", b"m3", b"m4"]


async def test_buses_heal_by_themselves_after_redis_is_killed_and_restarted(
    fresh_redis: RedisServer,
    redis_nodes: RedisNodes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis SIGKILLed: publishing does not raise, `ping` raises; once it is back, both buses
    reconnect, resync every room, and messages flow again. Loss and recovery are logged once
    each, however many attempts it took."""
    caplog.set_level(logging.INFO, logger="collab.bus.redis")
    a = await redis_nodes.make(fresh_redis.url)
    b = await redis_nodes.make(fresh_redis.url)
    for node in (a, b):
        await node.subscribe(ROOM, OTHER_ROOM)
    await fresh_redis.kill()
    for node in (a, b):
        await eventually(functools.partial(ping_fails, node.bus), what="outage noticed")
    a.bus.publish(ROOM, b"during-outage")
    with pytest.raises(BusError):
        await a.bus.ping()
    assert isinstance(a.bus, RedisBus)
    bus = a.bus
    await eventually(lambda: bus.connect_failures >= 2, what="several reconnection attempts")
    await fresh_redis.restart()
    await wait_connected(a, b)
    for node in (a, b):
        await eventually(
            functools.partial(node.inbox.resynced, ROOM, OTHER_ROOM), what="every room resynced"
        )
        assert isinstance(node.bus, RedisBus)
        assert node.bus.reconnects >= 1
    a.bus.publish(ROOM, b"after-restart")
    b.bus.publish(OTHER_ROOM, b"back-again")
    await wait_for(b, ROOM, b"after-restart")
    await wait_for(a, OTHER_ROOM, b"back-again")
    for node in (a, b):
        logged = [r.getMessage() for r in caplog.records if node.bus.instance_id in r.getMessage()]
        assert [m.split(" at ")[0] for m in logged] == [
            f"bus {node.bus.instance_id}: connected to Redis",
            f"bus {node.bus.instance_id}: lost Redis",
            f"bus {node.bus.instance_id}: reconnected to Redis",
        ]


async def test_killed_pubsub_connection_is_replaced_and_resynced(
    fresh_redis: RedisServer,
    redis_nodes: RedisNodes,
) -> None:
    """`CLIENT KILL TYPE pubsub`: the bus reconnects, resubscribes, resyncs its rooms."""
    a = await redis_nodes.make(fresh_redis.url)
    b = await redis_nodes.make(fresh_redis.url)
    await a.subscribe(ROOM)
    await b.subscribe(ROOM)
    raw = redis_nodes.raw_client(fresh_redis.url)
    await raw.client_kill_filter(_type="pubsub")
    assert isinstance(b.bus, RedisBus)
    bus = b.bus
    await eventually(lambda: bus.reconnects >= 1, what="b reconnected")
    await eventually(lambda: ROOM in b.inbox.resyncs, what="b resynced")
    await wait_connected(a, b)
    a.bus.publish(ROOM, b"after-kill")
    await wait_for(b, ROOM, b"after-kill")


async def test_silently_dead_subscription_is_found_by_the_probe_and_healed(
    redis_server: RedisServer,
    redis_proxy: FreezableProxy,
    redis_nodes: RedisNodes,
) -> None:
    """A connection that stays open but carries nothing fails the probe; the bus drops it,
    reconnects, resyncs, delivers again, and publishes what it could not send meanwhile."""
    a = await redis_nodes.make(redis_server.url)
    b = await redis_nodes.make(redis_proxy.url, probe_interval_s=0.05, probe_timeout_s=scaled(0.5))
    await a.subscribe(ROOM)
    await b.subscribe(ROOM)
    redis_proxy.freeze_open_connections()
    b.bus.publish(ROOM, b"while-frozen")
    assert isinstance(b.bus, RedisBus)
    bus = b.bus
    await eventually(lambda: bus.probe_failures >= 1, what="the probe failed")
    await eventually(lambda: bus.reconnects >= 1, what="b reconnected")
    await eventually(lambda: ROOM in b.inbox.resyncs, what="b resynced")
    await wait_connected(b)
    a.bus.publish(ROOM, b"after-freeze")
    await wait_for(b, ROOM, b"after-freeze")
    await wait_for(a, ROOM, b"while-frozen")


async def test_a_room_unsubscribed_and_subscribed_again_while_connecting_stays_subscribed(
    redis_server: RedisServer,
    redis_nodes: RedisNodes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A room unloaded and loaded again while the bus subscribes its rooms after connecting
    (its UNSUBSCRIBE sent, its new subscription left to that pass) is subscribed when the
    session is ready: it was counted subscribed by the batch before, and got nothing more
    from other instances until the next reconnection."""
    original = _Session.subscribe
    meddled = False

    async def subscribe_then_reload(
        self: _Session, channels: list[bytes], timeout_s: float
    ) -> bool:
        nonlocal meddled
        confirmed = await original(self, channels, timeout_s)
        if not meddled and not self.ready:
            meddled = True
            await b.bus.unsubscribe(ROOM)
            await b.subscribe(ROOM)
        return confirmed

    monkeypatch.setattr(_Session, "subscribe", subscribe_then_reload)
    b = Node(RedisBus(redis_server.url, channel_prefix=redis_nodes.prefix, **TEST_TUNING))
    redis_nodes.nodes.append(b)
    await b.subscribe(ROOM)  # before the first connection: subscribed by its first pass
    await b.bus.start()
    await wait_connected(b)
    assert meddled
    a = await redis_nodes.make(redis_server.url)
    a.bus.publish(ROOM, b"after the reload")
    await wait_for(b, ROOM, b"after the reload")


async def test_rooms_unloaded_once_connected_leave_nothing_behind(
    redis_server: RedisServer,
    redis_nodes: RedisNodes,
) -> None:
    """Unsubscriptions are remembered only while the bus subscribes its rooms after
    connecting: hundreds of rooms loaded and unloaded later leave nothing in the session."""
    b = await redis_nodes.make(redis_server.url)
    for number in range(300):
        room_id = f"w1/n{number}"
        await b.subscribe(room_id)
        await b.bus.unsubscribe(room_id)
    assert isinstance(b.bus, RedisBus)
    session = b.bus._session
    assert session is not None
    assert session.ready
    assert session._dropped == set()
