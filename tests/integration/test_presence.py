"""Presence across instances: `PresenceService` pairs over a memory and a Redis backend.

Each backend is an instance pair sharing a bus and a presence store: `MemoryBus` and
`MemoryPresenceStore` on shared brokers, or `RedisBus` and `RedisPresenceStore` on the
throwaway `redis-server`. Unless a test is about expiry, the heartbeat is far longer than any
wait, so what arrives came through the nudges, not the periodic re-read. Every subscriber
applies the events to its snapshot and checks they are consistent with it (no join of a
present user, no leave or update of an absent one).
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from collab.bus import Bus, MemoryBroker, MemoryBus
from collab.bus.redis import RedisBus
from collab.errors import BusError
from collab.presence.base import Changes, InstanceEntries, PresenceEntry, PresenceStore
from collab.presence.memory import MemoryPresenceBroker, MemoryPresenceStore
from collab.presence.nudges import MAX_CHANGES, encode_changes
from collab.presence.redis import RedisPresenceStore
from collab.presence.registry import LocalPresence
from collab.presence.service import MIN_FLUSH_INTERVAL_S, PresenceService
from collab.presence.snapshots import PresenceEvent, merge_instances
from tests.support.redis_server import RedisServer
from tests.support.waiting import eventually, scaled

SLOW_HEARTBEAT_S = 600.0
FAST_HEARTBEAT_S = 0.2
FAST_TTL_S = 0.6

BUS_TUNING: dict[str, Any] = {
    "reconnect_min_s": 0.02,
    "reconnect_max_s": 0.2,
    "connect_timeout_s": scaled(2.0),
    "command_timeout_s": scaled(2.0),
    "probe_timeout_s": scaled(2.0),
}


class FlakyStore:
    """A `PresenceStore` that raises `BusError` while `failing` is set, and whose next read,
    once done, waits for `read_gate` if one is set."""

    def __init__(self, inner: PresenceStore) -> None:
        self.inner = inner
        self.failing = False
        self.failures = 0
        self.writes = 0
        self.changes_written = 0
        self.renew_calls: list[list[str]] = []
        self.read_many_calls: list[list[str]] = []
        self.read_seqs_calls: list[list[str]] = []
        self.read_gate: asyncio.Event | None = None
        self.reads_held = 0

    def _check(self) -> None:
        if self.failing:
            self.failures += 1
            raise BusError("the test broke the presence store")

    async def write(self, instance_id: str, workspace_id: str, written: InstanceEntries) -> None:
        self._check()
        await self.inner.write(instance_id, workspace_id, written)
        self.writes += 1

    async def write_changes(
        self,
        instance_id: str,
        workspace_id: str,
        changes: Changes,
        seq: int,
        before: InstanceEntries,
    ) -> None:
        self._check()
        await self.inner.write_changes(instance_id, workspace_id, changes, seq, before)
        self.writes += 1
        self.changes_written += len(changes)

    async def renew(self, instance_id: str, written: Mapping[str, InstanceEntries]) -> None:
        self._check()
        await self.inner.renew(instance_id, written)
        self.renew_calls.append(list(written))

    @property
    def renewals(self) -> int:
        """Workspaces renewed, over all calls."""
        return sum(len(call) for call in self.renew_calls)

    async def read(self, workspace_id: str) -> dict[str, PresenceEntry]:
        self._check()
        return await self.inner.read(workspace_id)

    async def is_present(self, user_id: str, workspace_ids: Collection[str]) -> bool:
        self._check()
        return await self.inner.is_present(user_id, workspace_ids)

    async def read_seqs(self, workspace_ids: Collection[str]) -> dict[str, dict[str, int]]:
        self._check()
        self.read_seqs_calls.append(list(workspace_ids))
        return await self.inner.read_seqs(workspace_ids)

    async def read_instances(
        self, workspace_ids: Collection[str]
    ) -> dict[str, dict[str, InstanceEntries]]:
        self._check()
        self.read_many_calls.append(list(workspace_ids))
        entries = await self.inner.read_instances(workspace_ids)
        if (gate := self.read_gate) is not None:
            self.read_gate = None
            self.reads_held += 1
            await gate.wait()
        return entries

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class Instance:
    """One instance: its LocalPresence, service, bus and store, and what its subscribers saw."""

    instance_id: str
    local: LocalPresence
    bus: Bus
    store: FlakyStore
    service: PresenceService = field(init=False)
    views: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    events: list[PresenceEvent] = field(default_factory=list)
    inconsistencies: list[str] = field(default_factory=list)

    def on_events(self, workspace_id: str, events: list[PresenceEvent]) -> None:
        self.events.extend(events)
        view = self.views.get(workspace_id)
        if view is None:
            self.inconsistencies.append(f"events for unsubscribed {workspace_id}: {events}")
            return
        for event in events:
            user = event["user"]
            user_id = user if event["type"] == "presence.leave" else user["user"]
            expected_present = event["type"] != "presence.join"
            if (user_id in view) != expected_present:
                self.inconsistencies.append(f"{event} against {view}")
            if event["type"] == "presence.leave":
                view.pop(user_id, None)
            else:
                view[user_id] = user

    # What the web layer does: mutate LocalPresence, then tell the service what changed.

    def changed(self, workspace_ids: frozenset[str]) -> None:
        for workspace_id in workspace_ids:
            self.service.changed(workspace_id)

    def connect(self, conn_id: str, user_id: str, *workspace_ids: str, name: str = "") -> None:
        self.changed(self.local.connect(conn_id, user_id, name or user_id.upper()))
        for workspace_id in workspace_ids:
            self.changed(self.local.join_workspace(conn_id, workspace_id))

    def open_note(self, conn_id: str, user_id: str, workspace_id: str, note_id: str) -> None:
        self.changed(self.local.open_note(conn_id, user_id, user_id.upper(), workspace_id, note_id))

    def disconnect(self, conn_id: str) -> None:
        self.changed(self.local.disconnect(conn_id))

    def set_status(self, conn_id: str, workspace_id: str, status: str | None) -> None:
        self.changed(self.local.set_status(conn_id, workspace_id, status))

    async def subscribe(self, workspace_id: str) -> list[dict[str, Any]]:
        users = await self.service.subscribe(workspace_id)
        self.views[workspace_id] = {user["user"]: user for user in users}
        return users

    def users(self, workspace_id: str = "w1") -> dict[str, dict[str, Any]]:
        return self.views[workspace_id]

    def events_of(self, kind: str) -> list[PresenceEvent]:
        return [event for event in self.events if event["type"] == kind]

    async def close(self) -> None:
        await self.service.close()
        await self.bus.close()
        await self.store.close()


StartInstance = Callable[..., Awaitable[Instance]]


async def bus_ready(bus: Bus) -> bool:
    try:
        await bus.ping()
    except BusError:
        return False
    return True


@pytest.fixture(params=["memory", "redis"])
async def start_instance(request: pytest.FixtureRequest) -> AsyncIterator[StartInstance]:
    """Start instances of one backend that share presence; close them all at the end."""
    bus_broker = MemoryBroker()
    store_broker = MemoryPresenceBroker()
    server: RedisServer | None = None
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
    prefix = f"test-{uuid.uuid4().hex}:"
    started: list[Instance] = []

    async def start(
        *,
        heartbeat_s: float = SLOW_HEARTBEAT_S,
        ttl_s: float | None = None,
        min_flush_interval_s: float = MIN_FLUSH_INTERVAL_S,
    ) -> Instance:
        instance_id = f"i{len(started)}-{uuid.uuid4().hex[:8]}"
        ttl_s = ttl_s or 3 * heartbeat_s
        bus: Bus
        store: PresenceStore
        if server is None:
            bus = MemoryBus(bus_broker, instance_id)
            store = MemoryPresenceStore(ttl_s, broker=store_broker)
        else:
            bus = RedisBus(server.url, instance_id=instance_id, channel_prefix=prefix, **BUS_TUNING)
            store = RedisPresenceStore(server.url, ttl_s=ttl_s, key_prefix=prefix)
        instance = Instance(instance_id, LocalPresence(), bus, FlakyStore(store))
        instance.service = PresenceService(
            instance.local,
            instance.store,
            bus,
            instance_id=instance_id,
            heartbeat_s=heartbeat_s,
            on_events=instance.on_events,
            min_flush_interval_s=min_flush_interval_s,
        )
        started.append(instance)
        await bus.start()
        await eventually(functools.partial(bus_ready, bus), what=f"{bus!r} ready")
        await instance.service.start()
        return instance

    yield start
    for instance in started:
        await instance.close()
    for instance in started:
        assert instance.inconsistencies == [], instance.instance_id


async def test_a_user_connecting_on_one_instance_joins_on_the_other(
    start_instance: StartInstance,
) -> None:
    """B's subscriber gets a join for a user who connects on A."""
    a, b = await start_instance(), await start_instance()
    assert await b.subscribe("w1") == []
    a.connect("c1", "u1", "w1", name="Ann")
    await eventually(lambda: "u1" in b.users(), what="u1 joined on B")
    [join] = b.events_of("presence.join")
    assert join == {
        "type": "presence.join",
        "workspace": "w1",
        "user": {
            "user": "u1",
            "name": "Ann",
            "status": None,
            "notes": [],
            "since": join["user"]["since"],
        },
    }


async def test_the_snapshot_lists_users_of_every_instance(start_instance: StartInstance) -> None:
    """Subscribing returns the users present on both instances, own ones included."""
    a, b = await start_instance(), await start_instance()
    a.connect("c1", "u1", "w1")
    await eventually(lambda: _present(b, "u1"), what="u1 stored")
    b.connect("c2", "u2", "w1")
    users = await b.subscribe("w1")
    assert [user["user"] for user in users] == ["u1", "u2"]


async def test_other_workspaces_are_not_reported(start_instance: StartInstance) -> None:
    """A subscriber of w1 hears nothing about w2."""
    a, b = await start_instance(), await start_instance()
    await b.subscribe("w1")
    a.connect("c1", "u1", "w2")
    a.connect("c2", "u2", "w1")
    await eventually(lambda: "u2" in b.users(), what="u2 joined on B")
    assert all(event["workspace"] == "w1" for event in b.events)
    assert "u1" not in b.users()


async def test_a_change_made_while_subscribing_arrives_after_the_snapshot(
    start_instance: StartInstance,
) -> None:
    """A join that misses B's first read reaches B as an event after the snapshot."""
    a, b = await start_instance(), await start_instance()
    b.store.read_gate = gate = asyncio.Event()
    subscribing = asyncio.create_task(b.subscribe("w1"))
    await eventually(lambda: b.store.reads_held == 1, what="B's first read done")
    a.connect("c1", "u1", "w1")
    await eventually(lambda: _present(a, "u1"), what="u1 stored")
    gate.set()
    assert await subscribing == []
    await eventually(lambda: "u1" in b.users(), what="u1 joined on B")


async def test_a_status_change_is_an_update_on_the_other_instance(
    start_instance: StartInstance,
) -> None:
    """Setting and clearing a status on A updates B's view."""
    a, b = await start_instance(), await start_instance()
    await b.subscribe("w1")
    a.connect("c1", "u1", "w1")
    await eventually(lambda: "u1" in b.users(), what="u1 joined on B")
    a.set_status("c1", "w1", "in a meeting")
    await eventually(lambda: b.users()["u1"]["status"] == "in a meeting", what="status on B")
    a.set_status("c1", "w1", None)
    await eventually(lambda: b.users()["u1"]["status"] is None, what="status cleared on B")
    assert len(b.events_of("presence.update")) == 2


async def test_changes_reach_the_other_instance_without_a_read(
    start_instance: StartInstance,
) -> None:
    """Once a workspace is written and followed, a change is written as that user alone
    and applied on the other instance from the bus: neither instance reads the store for
    it, however many users the workspace has. (B may re-read once: its first message from
    A on the workspace's room can look like a gap to the Redis bus.)"""
    a, b = await start_instance(), await start_instance()
    for n in range(50):
        a.connect(f"c{n}", f"u{n}", "w1")
    await b.subscribe("w1")
    await eventually(lambda: len(b.users()) == 50, what="50 users on B")
    await a.subscribe("w1")
    reads_a, reads_b = len(a.store.read_many_calls), len(b.store.read_many_calls)
    changes_written = a.store.changes_written
    for n in range(10):
        a.set_status(f"c{n}", "w1", "away")
        a.disconnect(f"c{n + 10}")
        a.connect(f"x{n}", f"new{n}", "w1")
        await eventually(
            lambda n=n: (
                b.users()[f"u{n}"]["status"] == "away"
                and f"u{n + 10}" not in b.users()
                and f"new{n}" in b.users()
            ),
            what=f"change {n} on B",
        )
        await eventually(lambda n=n: f"new{n}" in a.users(), what=f"change {n} on A")
    assert a.store.changes_written - changes_written == 30
    assert len(a.store.read_many_calls) == reads_a
    assert len(b.store.read_many_calls) - reads_b <= 1


async def test_a_change_that_does_not_follow_what_an_instance_holds_makes_it_reread(
    start_instance: StartInstance,
) -> None:
    """A frame that does not follow the write B holds of A (a lost message, another
    instance's mistake) is not applied: B re-reads and shows what the store holds."""
    a, b, c = await start_instance(), await start_instance(), await start_instance()
    await b.subscribe("w1")
    a.connect("c1", "u1", "w1")
    await eventually(lambda: "u1" in b.users(), what="u1 joined on B")
    reads = len(b.store.read_many_calls)
    forged: dict[str, PresenceEntry | None] = {
        user_id: PresenceEntry(user_id, "MALLORY", "forged", frozenset(), 1.0, 9e9)
        for user_id in ("u1", "u9")
    }
    c.bus.publish("presence:w1", encode_changes(a.instance_id, 10**9, 10**9 + 1, forged))
    await eventually(lambda: len(b.store.read_many_calls) > reads, what="B re-read")
    a.set_status("c1", "w1", "here")
    await eventually(lambda: b.users()["u1"]["status"] == "here", what="A's change on B")
    assert b.users()["u1"]["name"] == "U1"
    assert set(b.users()) == {"u1"}


async def test_a_write_too_large_for_one_message_is_reread(
    start_instance: StartInstance,
) -> None:
    """More users changed at once than one message carries: the others re-read once."""
    a = await start_instance(min_flush_interval_s=0.5)
    b = await start_instance()
    await b.subscribe("w1")
    a.connect("c0", "u0", "w1")
    await eventually(lambda: "u0" in b.users(), what="u0 joined on B")
    reads = len(b.store.read_many_calls)
    for n in range(1, MAX_CHANGES + 2):
        a.connect(f"c{n}", f"u{n}", "w1")
    await eventually(lambda: len(b.users()) == MAX_CHANGES + 2, what="all joined on B")
    assert len(b.store.read_many_calls) > reads
    assert len(b.events_of("presence.join")) == MAX_CHANGES + 2


async def test_notes_opened_by_document_connections_are_updates(
    start_instance: StartInstance,
) -> None:
    """Document connections on A add and remove notes in B's view of the user."""
    a, b = await start_instance(), await start_instance()
    await b.subscribe("w1")
    a.connect("c1", "u1", "w1")
    await eventually(lambda: "u1" in b.users(), what="u1 joined on B")
    a.open_note("d1", "u1", "w1", "n1")
    a.open_note("d2", "u1", "w1", "n2")
    await eventually(lambda: b.users()["u1"]["notes"] == ["n1", "n2"], what="notes on B")
    a.disconnect("d1")
    await eventually(lambda: b.users()["u1"]["notes"] == ["n2"], what="n1 closed on B")


async def test_a_document_connection_alone_makes_the_user_join(
    start_instance: StartInstance,
) -> None:
    """A note opened on A, with no live connection, makes the user present on B."""
    a, b = await start_instance(), await start_instance()
    await b.subscribe("w1")
    a.open_note("d1", "u1", "w1", "n1")
    await eventually(lambda: "u1" in b.users(), what="u1 joined on B")
    assert b.users()["u1"]["notes"] == ["n1"]


async def test_a_user_on_both_instances_counts_once_with_both_notes(
    start_instance: StartInstance,
) -> None:
    """Tabs on A and B make one user, with the notes of both, on both instances."""
    a, b = await start_instance(), await start_instance()
    await a.subscribe("w1")
    await b.subscribe("w1")
    a.connect("c1", "u1", "w1")
    a.open_note("d1", "u1", "w1", "n1")
    b.connect("c2", "u1", "w1")
    b.open_note("d2", "u1", "w1", "n2")

    def once_with_both_notes(instance: Instance) -> bool:
        users = instance.users()
        return list(users) == ["u1"] and users["u1"]["notes"] == ["n1", "n2"]

    for instance in (a, b):
        await eventually(
            functools.partial(once_with_both_notes, instance),
            what=f"u1 with both notes on {instance.instance_id}",
        )
        assert len(instance.events_of("presence.join")) <= 1
    a.disconnect("c1")
    a.disconnect("d1")
    await eventually(lambda: a.users()["u1"]["notes"] == ["n2"], what="only n2 left on A")
    assert a.events_of("presence.leave") == []


async def test_a_status_set_on_one_instance_survives_notes_opened_on_the_other(
    start_instance: StartInstance,
) -> None:
    """A later note on B does not reset the status the user set on A."""
    a, b = await start_instance(), await start_instance()
    await b.subscribe("w1")
    a.connect("c1", "u1", "w1")
    a.set_status("c1", "w1", "busy")
    await eventually(lambda: b.users().get("u1", {}).get("status") == "busy", what="status")
    b.open_note("d1", "u1", "w1", "n1")
    await eventually(lambda: b.users()["u1"]["notes"] == ["n1"], what="note on B")
    assert b.users()["u1"]["status"] == "busy"


async def test_disconnecting_the_last_connection_is_a_leave(
    start_instance: StartInstance,
) -> None:
    """The user leaves B's view once their last connection on A is gone."""
    a, b = await start_instance(), await start_instance()
    await b.subscribe("w1")
    a.connect("c1", "u1", "w1")
    a.connect("c2", "u1", "w1")
    await eventually(lambda: "u1" in b.users(), what="u1 joined on B")
    a.disconnect("c1")
    a.disconnect("c2")
    await eventually(lambda: "u1" not in b.users(), what="u1 left on B")
    assert b.events_of("presence.leave") == [
        {"type": "presence.leave", "workspace": "w1", "user": "u1"}
    ]


async def test_an_instance_that_closes_removes_its_users_at_once(
    start_instance: StartInstance,
) -> None:
    """A graceful close removes A's entries and nudges B, well before they would expire."""
    a, b = await start_instance(), await start_instance()
    await b.subscribe("w1")
    a.connect("c1", "u1", "w1")
    await eventually(lambda: "u1" in b.users(), what="u1 joined on B")
    await a.service.close()
    await eventually(lambda: "u1" not in b.users(), what="u1 left on B")


async def test_users_of_a_dead_instance_leave_once_its_entries_expire(
    start_instance: StartInstance,
) -> None:
    """A stops renewing without removing anything; B notices the expiry and emits a leave."""
    a = await start_instance(heartbeat_s=FAST_HEARTBEAT_S, ttl_s=FAST_TTL_S)
    b = await start_instance(heartbeat_s=FAST_HEARTBEAT_S, ttl_s=FAST_TTL_S)
    await b.subscribe("w1")
    b.connect("c0", "u0", "w1")
    a.connect("c1", "u1", "w1")
    await eventually(lambda: {"u0", "u1"} <= b.users().keys(), what="both users on B")
    a.store.failing = True  # dead: no renewal, no removal, no nudge
    await a.service.close()
    await eventually(lambda: "u1" not in b.users(), what="u1 expired on B")
    assert b.users().keys() == {"u0"}


async def test_a_store_outage_is_retried_at_the_next_heartbeat(
    start_instance: StartInstance,
) -> None:
    """Changes made while B's store fails reach B's subscribers once it answers again."""
    a = await start_instance(heartbeat_s=FAST_HEARTBEAT_S, ttl_s=FAST_TTL_S)
    b = await start_instance(heartbeat_s=FAST_HEARTBEAT_S, ttl_s=FAST_TTL_S)
    await b.subscribe("w1")
    b.store.failing = True
    a.connect("c1", "u1", "w1")
    await eventually(lambda: b.store.failures >= 2, what="B's reads failed")
    assert "u1" not in b.users()
    b.store.failing = False
    await eventually(lambda: "u1" in b.users(), what="u1 joined on B after the outage")


async def test_a_change_whose_write_failed_is_written_once_the_store_answers(
    start_instance: StartInstance,
) -> None:
    """A's status change fails to be written; A's next heartbeat writes it rather than
    renewing the entries it wrote before the outage."""
    a = await start_instance(heartbeat_s=FAST_HEARTBEAT_S, ttl_s=FAST_TTL_S)
    b = await start_instance()
    await b.subscribe("w1")
    a.connect("c1", "u1", "w1")
    await eventually(lambda: "u1" in b.users(), what="u1 joined on B")
    a.store.failing = True
    a.set_status("c1", "w1", "away")
    await eventually(lambda: a.store.failures >= 1, what="A's write failed")
    a.store.failing = False
    await eventually(lambda: _status(b, "u1") == "away", what="u1's status on B")


async def test_heartbeats_and_changes_never_rebuild_a_written_workspace(
    start_instance: StartInstance,
) -> None:
    """Renewing what was written costs no pass over the workspace's users, and neither
    does a change once the workspace was written: only the changed user is written."""
    a = await start_instance(heartbeat_s=FAST_HEARTBEAT_S, ttl_s=FAST_TTL_S)
    a.connect("c1", "u1", "w1")
    await eventually(lambda: _present(a, "u1"), what="u1 stored")
    rebuilt: list[str] = []
    entries = a.local.entries

    def counting_entries(workspace_id: str) -> dict[str, PresenceEntry]:
        rebuilt.append(workspace_id)
        return entries(workspace_id)

    a.local.entries = counting_entries  # type: ignore[method-assign]
    writes, renewals = a.store.writes, a.store.renewals
    await eventually(lambda: a.store.renewals >= renewals + 2, what="two renewals")
    assert rebuilt == []
    assert a.store.writes == writes
    assert await _present(a, "u1")
    changes_written = a.store.changes_written
    a.set_status("c1", "w1", "away")
    await eventually(
        lambda: a.store.changes_written == changes_written + 1, what="the change written"
    )
    assert rebuilt == []
    assert (await a.store.read("w1"))["u1"].status == "away"


async def test_changes_between_two_flushes_are_written_together(
    start_instance: StartInstance,
) -> None:
    """Joins that come while the worker waits out the interval since its last flush are
    all written by the next one (the test below shows that it does wait)."""
    a = await start_instance(min_flush_interval_s=0.3)
    a.connect("c1", "u1", "w1")
    await eventually(lambda: a.store.writes == 1, what="the first change written at once")
    for index in range(2, 6):
        a.connect(f"c{index}", f"u{index}", "w1")
    await eventually(lambda: _present(a, "u5"), what="the later joins written")
    assert a.store.writes == 2
    for index in range(1, 6):
        assert await _present(a, f"u{index}")


async def test_no_flush_runs_before_the_interval_since_the_last_one(
    start_instance: StartInstance,
) -> None:
    """A change right after a flush waits for the interval to pass (here, longer than the
    test): the worker is asleep, not writing."""
    a = await start_instance(min_flush_interval_s=3600)
    a.connect("c1", "u1", "w1")
    await eventually(lambda: a.store.writes == 1, what="the first change written at once")
    a.connect("c2", "u2", "w1")
    for _ in range(50):
        await asyncio.sleep(0)
    assert a.store.writes == 1
    assert not await _present(a, "u2")


async def test_a_heartbeat_renews_and_checks_every_workspace_in_one_store_call_each(
    start_instance: StartInstance,
) -> None:
    """With several unchanged workspaces, one heartbeat makes one `renew` for all of them
    and one `read_seqs` for all it follows (with Redis: one round trip, and two), and reads
    no entries: nothing changed."""
    a = await start_instance(heartbeat_s=FAST_HEARTBEAT_S, ttl_s=FAST_TTL_S)
    workspaces = ["w1", "w2", "w3"]
    a.connect("c1", "u1", *workspaces)
    for workspace_id in workspaces:
        await a.subscribe(workspace_id)
    await eventually(
        lambda: any(call == workspaces for call in a.store.renew_calls[-2:]),
        what="a renewal of all three workspaces",
    )
    await eventually(
        lambda: any(call == workspaces for call in a.store.read_seqs_calls[-2:]),
        what="a check of all three workspaces",
    )
    reads, checks = len(a.store.read_many_calls), len(a.store.read_seqs_calls)
    await eventually(lambda: len(a.store.read_seqs_calls) >= checks + 2, what="two more")
    assert len(a.store.read_many_calls) == reads
    assert all(len(call) == len(workspaces) for call in a.store.renew_calls)
    for workspace_id in workspaces:
        assert set(a.users(workspace_id)) == {"u1"}
    assert a.inconsistencies == []


async def test_a_heartbeat_finds_a_change_whose_message_was_lost(
    start_instance: StartInstance,
) -> None:
    """A write B never heard of (its message lost) does not match the number B holds of
    A's last write: B's next heartbeat re-reads the workspace and shows it."""
    a = await start_instance()
    b = await start_instance(heartbeat_s=FAST_HEARTBEAT_S, ttl_s=FAST_TTL_S)
    a.connect("c1", "u1", "w1")
    await b.subscribe("w1")
    await eventually(lambda: "u1" in b.users(), what="u1 on B")
    [held] = (await a.store.read_instances(["w1"]))["w1"].values()
    unheard = PresenceEntry("u9", "U9", None, frozenset(), 1.0, 0.0)
    # Written as A would, but sent to nobody.
    await a.store.inner.write_changes(a.instance_id, "w1", {"u9": unheard}, held.seq + 1, held)
    await eventually(lambda: "u9" in b.users(), what="the unheard change on B")
    assert b.events_of("presence.join")[-1]["user"]["user"] == "u9"


async def test_subscribing_while_the_store_fails_returns_the_local_view(
    start_instance: StartInstance,
) -> None:
    """With the store down, a subscriber gets this instance's own users, then the rest."""
    a = await start_instance(heartbeat_s=FAST_HEARTBEAT_S, ttl_s=FAST_TTL_S)
    b = await start_instance(heartbeat_s=FAST_HEARTBEAT_S, ttl_s=FAST_TTL_S)
    a.connect("c1", "u1", "w1")
    await eventually(lambda: _present(b, "u1"), what="u1 stored")
    b.store.failing = True
    b.connect("c2", "u2", "w1")
    assert [user["user"] for user in await b.subscribe("w1")] == ["u2"]
    b.store.failing = False
    await eventually(lambda: b.users().keys() == {"u1", "u2"}, what="both users on B")


async def test_the_rest_snapshot_needs_no_subscription(start_instance: StartInstance) -> None:
    """`snapshot` reads the store: users of both instances, merged."""
    a, b = await start_instance(), await start_instance()
    a.open_note("d1", "u1", "w1", "n1")
    b.open_note("d2", "u1", "w1", "n2")
    b.connect("c3", "u2", "w1")

    async def both_there() -> bool:
        users = await a.service.snapshot("w1")
        return [(user["user"], user["notes"]) for user in users] == [
            ("u1", ["n1", "n2"]),
            ("u2", []),
        ]

    await eventually(both_there, what="both users in the snapshot")


async def test_unsubscribing_is_reference_counted(start_instance: StartInstance) -> None:
    """The workspace is followed until its last subscriber goes."""
    a, b = await start_instance(), await start_instance()
    await b.subscribe("w1")
    await b.subscribe("w1")
    await b.service.unsubscribe("w1")
    a.connect("c1", "u1", "w1")
    await eventually(lambda: "u1" in b.users(), what="u1 joined on B")
    await b.service.unsubscribe("w1")
    del b.views["w1"]
    a.connect("c2", "u2", "w1")
    await eventually(lambda: _present(b, "u2"), what="u2 stored")
    assert [event["type"] for event in b.events] == ["presence.join"]


async def _present(instance: Instance, user_id: str, workspace_id: str = "w1") -> bool:
    users = await instance.service.snapshot(workspace_id)
    return any(user["user"] == user_id for user in users)


def _status(instance: Instance, user_id: str, workspace_id: str = "w1") -> str | None:
    user = instance.users(workspace_id).get(user_id)
    return None if user is None else user.get("status")


# -- the Redis store alone ---------------------------------------------------------------------


def _entry(user_id: str) -> PresenceEntry:
    return PresenceEntry(user_id, None, None, frozenset(), 1.0, 0.0)


def written(entries: dict[str, PresenceEntry], seq: int = 1) -> InstanceEntries:
    return InstanceEntries(seq, entries)


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@dataclass
class StoreUnderTest:
    store: PresenceStore
    lose: Callable[[str, str], Awaitable[None]]
    """Make the backend lose what an instance wrote for a workspace (as in an expiry)."""


@pytest.fixture(params=["memory", "redis"])
async def store_under_test(request: pytest.FixtureRequest) -> AsyncIterator[StoreUnderTest]:
    """A `PresenceStore` of each backend, and a way to make it lose entries."""
    if request.param == "memory":
        broker = MemoryPresenceBroker()

        async def lose_memory(instance_id: str, workspace_id: str) -> None:
            broker.workspaces[workspace_id].pop(instance_id)

        memory = MemoryPresenceStore(60, broker=broker)
        yield StoreUnderTest(memory, lose_memory)
        await memory.close()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    prefix = f"test-{uuid.uuid4().hex}:"
    client = Redis.from_url(server.url)

    async def lose_redis(instance_id: str, workspace_id: str) -> None:
        await client.delete(f"{prefix}presence:{workspace_id}:{instance_id}")

    redis_store = RedisPresenceStore(server.url, ttl_s=60, key_prefix=prefix)
    yield StoreUnderTest(redis_store, lose_redis)
    await redis_store.close()
    await client.aclose()


async def test_a_store_writes_changes_and_numbers_them(store_under_test: StoreUnderTest) -> None:
    """`write_changes` sets and removes the changed users only, and the next read has the
    write's number; another instance's entries are untouched."""
    store = store_under_test.store
    before = written({"u1": _entry("u1"), "u2": _entry("u2")}, seq=4)
    await store.write("A", "w1", before)
    await store.write("B", "w1", written({"u2": _entry("u2")}, seq=1))
    moved = PresenceEntry("u1", "Ann", "away", frozenset({"n1"}), 1.0, 2.0)
    await store.write_changes("A", "w1", {"u1": moved, "u2": None, "u3": _entry("u3")}, 9, before)
    assert await store.read_instances(["w1", "w2"]) == {
        "w1": {
            "A": written({"u1": moved, "u3": _entry("u3")}, seq=9),
            "B": written({"u2": _entry("u2")}, seq=1),
        },
        "w2": {},
    }
    assert set(await store.read("w1")) == {"u1", "u2", "u3"}


async def test_a_store_that_lost_an_instance_entries_writes_them_whole(
    store_under_test: StoreUnderTest,
) -> None:
    """Changes on top of entries the backend lost (expired, a Redis restart) write what
    the instance holds: the entries before, with the changes."""
    store = store_under_test.store
    before = written({"u1": _entry("u1"), "u2": _entry("u2")}, seq=4)
    await store.write("A", "w1", before)
    await store_under_test.lose("A", "w1")
    await store.write_changes("A", "w1", {"u2": None, "u3": _entry("u3")}, 5, before)
    assert await store.read_instances(["w1"]) == {
        "w1": {"A": written({"u1": _entry("u1"), "u3": _entry("u3")}, seq=5)}
    }


async def test_a_store_removes_an_instance_whose_changes_leave_nothing(
    store_under_test: StoreUnderTest,
) -> None:
    """The last user leaving removes the instance from the workspace, as an empty write
    does."""
    store = store_under_test.store
    before = written({"u1": _entry("u1")}, seq=4)
    await store.write("A", "w1", before)
    await store.write_changes("A", "w1", {"u1": None}, 5, before)
    assert await store.read_instances(["w1"]) == {"w1": {}}
    assert await store.read("w1") == {}


async def test_a_store_finds_a_user_present_in_any_of_the_workspaces(
    store_under_test: StoreUnderTest,
) -> None:
    """`is_present` looks at every instance of every workspace given, and not at entries the
    backend lost (as when an instance died and they expired)."""
    store = store_under_test.store
    await store.write("A", "w1", written({"u1": _entry("u1")}))
    await store.write("B", "w2", written({"u2": _entry("u2"), "u3": _entry("u3")}))
    assert await store.is_present("u2", ["w1", "w2"])
    assert await store.is_present("u1", ["w1"])
    assert not await store.is_present("u1", ["w2", "w3"])
    assert not await store.is_present("u4", ["w1", "w2"])
    assert not await store.is_present("u1", [])
    await store_under_test.lose("B", "w2")
    assert not await store.is_present("u2", ["w1", "w2"])


async def test_a_store_reads_the_numbers_of_the_last_writes(
    store_under_test: StoreUnderTest,
) -> None:
    """`read_seqs` gives each live instance's last write number per workspace, without its
    entries, and nothing for entries the backend lost."""
    store = store_under_test.store
    before = written({"u1": _entry("u1")}, seq=4)
    await store.write("A", "w1", before)
    await store.write("B", "w1", written({"u2": _entry("u2")}, seq=11))
    await store.write_changes("A", "w1", {"u3": _entry("u3")}, 6, before)
    assert await store.read_seqs(["w1", "w2"]) == {"w1": {"A": 6, "B": 11}, "w2": {}}
    await store_under_test.lose("B", "w1")
    assert await store.read_seqs(["w1"]) == {"w1": {"A": 6}}


async def test_redis_store_changes_leave_no_residue(
    redis_server: RedisServer, redis_client: Redis
) -> None:
    """Emptied by changes, an instance's hash and its membership of the workspace are
    gone; changes renew the hash's expiry."""
    prefix = f"test-{uuid.uuid4().hex}:"
    store = RedisPresenceStore(redis_server.url, ttl_s=60, key_prefix=prefix)
    key, instances_key = f"{prefix}presence:w1:A", f"{prefix}presence-instances:w1"
    try:
        before = written({"u1": _entry("u1")}, seq=1)
        await store.write("A", "w1", before)
        await redis_client.pexpire(key, 20_000)
        await store.write_changes("A", "w1", {"u2": _entry("u2")}, 2, before)
        assert 20_000 < await redis_client.pttl(key) <= 60_000
        assert await redis_client.hget(key, "") == b"2"
        after = written({"u1": _entry("u1"), "u2": _entry("u2")}, seq=2)
        await store.write_changes("A", "w1", {"u1": None, "u2": None}, 3, after)
        assert await redis_client.exists(key, instances_key) == 0
    finally:
        await store.close()


async def test_redis_store_reads_entries_written_before_writes_were_numbered(
    redis_server: RedisServer, redis_client: Redis
) -> None:
    """A hash without a number (an instance of an earlier version, in a rolling upgrade)
    reads as write 0, and its entries as they are."""
    prefix = f"test-{uuid.uuid4().hex}:"
    store = RedisPresenceStore(redis_server.url, ttl_s=60, key_prefix=prefix)
    try:
        record = orjson.dumps(_entry("u1").to_record())
        await redis_client.hset(f"{prefix}presence:w1:OLD", "u1", record)
        await redis_client.sadd(f"{prefix}presence-instances:w1", "OLD")
        assert await store.read_instances(["w1"]) == {
            "w1": {"OLD": written({"u1": _entry("u1")}, seq=0)}
        }
        assert await store.read_seqs(["w1"]) == {"w1": {"OLD": 0}}
        assert store.malformed_skipped == 0
    finally:
        await store.close()


async def test_redis_store_skips_malformed_entries(
    redis_server: RedisServer, redis_client: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Entries that are not valid JSON of an entry are skipped, the rest are read."""
    prefix = f"test-{uuid.uuid4().hex}:"
    store = RedisPresenceStore(redis_server.url, ttl_s=60, key_prefix=prefix)
    try:
        await store.write("A", "w1", written({"u1": _entry("u1")}))
        key = f"{prefix}presence:w1:A"
        await redis_client.hset(
            key,
            mapping={
                "u2": b"{not json",
                "u3": b"[1, 2]",
                "u4": b'{"user": "u4"}',
                "u5": b'{"user": "someone-else", "since": 1}',
            },
        )
        assert set(await store.read("w1")) == {"u1"}
        assert store.malformed_skipped == 4
        assert "skipped a malformed entry" in caplog.text
    finally:
        await store.close()


async def test_redis_store_forgets_instances_whose_entries_expired(
    redis_server: RedisServer, redis_client: Redis
) -> None:
    """The per-workspace instance set loses an instance once its hash has expired."""
    prefix = f"test-{uuid.uuid4().hex}:"
    store = RedisPresenceStore(redis_server.url, ttl_s=60, key_prefix=prefix)
    instances_key = f"{prefix}presence-instances:w1"
    try:
        await store.write("A", "w1", written({"u1": _entry("u1")}))
        await store.write("B", "w1", written({"u2": _entry("u2")}))
        assert await redis_client.smembers(instances_key) == {b"A", b"B"}
        await redis_client.delete(f"{prefix}presence:w1:A")  # as if it had expired
        assert set(await store.read("w1")) == {"u2"}
        assert await redis_client.smembers(instances_key) == {b"B"}
        await store.write("B", "w1", written({}))
        assert await redis_client.exists(instances_key, f"{prefix}presence:w1:B") == 0
    finally:
        await store.close()


async def test_redis_store_entries_expire_after_the_ttl(
    redis_server: RedisServer, redis_client: Redis
) -> None:
    """An instance that stops writing drops out of reads once its TTL has passed."""
    prefix = f"test-{uuid.uuid4().hex}:"
    store = RedisPresenceStore(redis_server.url, ttl_s=0.2, key_prefix=prefix)
    try:
        await store.write("A", "w1", written({"u1": _entry("u1")}))
        assert 0 < await redis_client.pttl(f"{prefix}presence:w1:A") <= 200

        async def gone() -> bool:
            return await store.read("w1") == {}

        await eventually(gone, what="A's entries expired")
    finally:
        await store.close()


async def test_redis_store_renews_without_resending_and_rewrites_what_expired(
    redis_server: RedisServer, redis_client: Redis
) -> None:
    """`renew` extends the hash's TTL as it is (a field added behind the store's back
    survives it); once the hash has expired, `renew` writes the entries again."""
    prefix = f"test-{uuid.uuid4().hex}:"
    store = RedisPresenceStore(redis_server.url, ttl_s=60, key_prefix=prefix)
    key = f"{prefix}presence:w1:A"
    try:
        await store.write("A", "w1", written({"u1": _entry("u1")}))
        await redis_client.hset(key, "u2", await redis_client.hget(key, "u1") or b"")
        await redis_client.pexpire(key, 20_000)
        await store.renew("A", {"w1": written({"u1": _entry("u1")})})
        assert 20_000 < await redis_client.pttl(key) <= 60_000
        assert sorted(await redis_client.hkeys(key)) == [b"", b"u1", b"u2"]
        await redis_client.delete(key)  # as if it had expired
        await store.renew("A", {"w1": written({"u1": _entry("u1")})})
        assert sorted(await redis_client.hkeys(key)) == [b"", b"u1"]
        assert set(await store.read("w1")) == {"u1"}
    finally:
        await store.close()


async def test_redis_store_errors_are_bus_errors_without_the_password() -> None:
    """An unreachable Redis raises BusError; neither it nor repr shows the password."""
    store = RedisPresenceStore(
        "redis://user:hunter2@127.0.0.1:1/0", ttl_s=1, connect_timeout_s=scaled(2.0)
    )
    try:
        assert "hunter2" not in repr(store)
        with pytest.raises(BusError) as raised:
            await store.read("w1")
        assert "hunter2" not in str(raised.value)
        with pytest.raises(BusError):
            await store.write("A", "w1", written({"u1": _entry("u1")}))
    finally:
        await store.close()
    await store.close()
    with pytest.raises(BusError, match="closed"):
        await store.read("w1")


def _count_pipelines(store: RedisPresenceStore) -> list[int]:
    """Make `store` count the pipelines it opens (each is one round trip); returns the
    counter, a one-item list."""
    opened = [0]
    pipeline = store._client.pipeline

    def counting(*args: Any, **kwargs: Any) -> Any:
        opened[0] += 1
        return pipeline(*args, **kwargs)

    store._client.pipeline = counting  # type: ignore[method-assign]
    return opened


async def test_redis_store_renews_many_workspaces_in_one_round_trip(
    redis_server: RedisServer, redis_client: Redis
) -> None:
    """`renew` of three workspaces is one pipeline; one whose hash expired is written again
    (one more), and the others keep what they hold."""
    prefix = f"test-{uuid.uuid4().hex}:"
    store = RedisPresenceStore(redis_server.url, ttl_s=60, key_prefix=prefix)
    last = {f"w{n}": written({f"u{n}": _entry(f"u{n}")}) for n in (1, 2, 3)}
    try:
        for workspace_id, entries in last.items():
            await store.write("A", workspace_id, entries)
            await redis_client.pexpire(f"{prefix}presence:{workspace_id}:A", 20_000)
        opened = _count_pipelines(store)
        await store.renew("A", last)
        assert opened == [1]
        for workspace_id in last:
            assert 20_000 < await redis_client.pttl(f"{prefix}presence:{workspace_id}:A")
        await redis_client.delete(f"{prefix}presence:w2:A")  # as if it had expired
        await store.renew("A", last)
        assert opened == [3]
        assert sorted(await redis_client.hkeys(f"{prefix}presence:w2:A")) == [b"", b"u2"]
        assert await redis_client.smembers(f"{prefix}presence-instances:w2") == {b"A"}
    finally:
        await store.close()


async def test_redis_store_reads_many_workspaces_in_two_round_trips(
    redis_server: RedisServer, redis_client: Redis
) -> None:
    """`read_instances` answers what each instance wrote (merged, what `read` answers),
    empty where nobody is, an expired instance forgotten, with two pipelines in all."""
    prefix = f"test-{uuid.uuid4().hex}:"
    store = RedisPresenceStore(redis_server.url, ttl_s=60, key_prefix=prefix)
    try:
        await store.write("A", "w1", written({"u1": _entry("u1")}))
        await store.write("B", "w1", written({"u2": _entry("u2")}))
        await store.write("A", "w2", written({"u3": _entry("u3")}))
        await store.write("B", "w2", written({"u4": _entry("u4")}))
        await redis_client.delete(f"{prefix}presence:w2:B")  # as if it had expired
        opened = _count_pipelines(store)
        merged = {
            workspace_id: merge_instances(read.entries for read in instances.values())
            for workspace_id, instances in (await store.read_instances(["w1", "w2", "w3"])).items()
        }
        assert opened == [2]
        assert {w: set(entries) for w, entries in merged.items()} == {
            "w1": {"u1", "u2"},
            "w2": {"u3"},
            "w3": set(),
        }
        assert await redis_client.smembers(f"{prefix}presence-instances:w2") == {b"A"}
        for workspace_id, entries in merged.items():
            assert await store.read(workspace_id) == entries
    finally:
        await store.close()
