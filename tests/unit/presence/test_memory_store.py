"""`MemoryPresenceStore`: shared through its broker, entries expire by TTL (a fake clock)."""

from __future__ import annotations

import pytest

from collab.errors import BusError, ConfigError
from collab.presence.base import InstanceEntries, PresenceEntry
from collab.presence.memory import MemoryPresenceBroker, MemoryPresenceStore


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def entry(user_id: str, *notes: str) -> PresenceEntry:
    return PresenceEntry(user_id, user_id.upper(), None, frozenset(notes), 1.0, 0.0)


def written(entries: dict[str, PresenceEntry], seq: int = 1) -> InstanceEntries:
    return InstanceEntries(seq, entries)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def broker() -> MemoryPresenceBroker:
    return MemoryPresenceBroker()


async def test_entries_of_an_instance_not_rewritten_within_the_ttl_are_dropped(
    clock: FakeClock, broker: MemoryPresenceBroker
) -> None:
    """An instance that stops writing drops out `ttl_s` after its last write."""
    a = MemoryPresenceStore(3.0, clock, broker)
    b = MemoryPresenceStore(3.0, clock, broker)
    await a.write("A", "w1", written({"u1": entry("u1")}))
    await b.write("B", "w1", written({"u2": entry("u2")}))
    clock.now += 2.0
    await b.write("B", "w1", written({"u2": entry("u2")}))
    clock.now += 0.9
    assert set(await b.read("w1")) == {"u1", "u2"}
    clock.now += 0.1
    assert set(await b.read("w1")) == {"u2"}
    assert set(await a.read("w1")) == {"u2"}


async def test_rewriting_renews_the_expiry(clock: FakeClock) -> None:
    """Writing again within the TTL keeps the entries alive past the first deadline."""
    store = MemoryPresenceStore(3.0, clock)
    for _ in range(5):
        await store.write("A", "w1", written({"u1": entry("u1")}))
        clock.now += 2.5
    assert set(await store.read("w1")) == {"u1"}


async def test_renewing_extends_the_expiry_of_what_was_written(clock: FakeClock) -> None:
    """`renew` keeps the entries stored (not the ones passed, which are the same by
    contract) alive for another TTL."""
    store = MemoryPresenceStore(3.0, clock)
    await store.write("A", "w1", written({"u1": entry("u1", "n1")}))
    for _ in range(5):
        clock.now += 2.5
        await store.renew("A", {"w1": written({"u1": entry("u1", "n1")})})
    clock.now += 2.5
    assert (await store.read("w1"))["u1"].notes == frozenset({"n1"})
    clock.now += 1.0
    assert await store.read("w1") == {}


async def test_renewing_entries_that_expired_writes_them_again(clock: FakeClock) -> None:
    store = MemoryPresenceStore(3.0, clock)
    await store.write("A", "w1", written({"u1": entry("u1")}))
    clock.now += 3.5
    assert await store.read("w1") == {}
    await store.renew("A", {"w1": written({"u1": entry("u1")}), "w2": written({"u2": entry("u2")})})
    # w1 had expired, w2 was never written at all: both are written.
    assert await store.read_instances(["w1", "w2", "w3"]) == {
        "w1": {"A": written({"u1": entry("u1")})},
        "w2": {"A": written({"u2": entry("u2")})},
        "w3": {},
    }


async def test_stores_on_one_broker_merge_per_user(
    clock: FakeClock, broker: MemoryPresenceBroker
) -> None:
    """A user written by two instances is read once, with both notes."""
    a = MemoryPresenceStore(3.0, clock, broker)
    b = MemoryPresenceStore(3.0, clock, broker)
    await a.write("A", "w1", written({"u1": entry("u1", "n1")}))
    await b.write("B", "w1", written({"u1": entry("u1", "n2")}))
    assert (await a.read("w1"))["u1"].notes == {"n1", "n2"}
    assert await a.read("w2") == {}


async def test_writing_nothing_removes_the_instance_entries(
    clock: FakeClock, broker: MemoryPresenceBroker
) -> None:
    """An empty write replaces the instance's entries with none, and leaves no residue."""
    store = MemoryPresenceStore(3.0, clock, broker)
    await store.write("A", "w1", written({"u1": entry("u1")}))
    await store.write("A", "w1", written({}))
    assert await store.read("w1") == {}
    assert broker.workspaces == {}


async def test_a_closed_store_raises_bus_error_and_keeps_what_it_wrote(
    clock: FakeClock, broker: MemoryPresenceBroker
) -> None:
    """Closing is idempotent, refuses further use, and removes nothing (like a dead instance)."""
    a = MemoryPresenceStore(3.0, clock, broker)
    await a.write("A", "w1", written({"u1": entry("u1")}))
    await a.close()
    await a.close()
    with pytest.raises(BusError):
        await a.read("w1")
    with pytest.raises(BusError):
        await a.write("A", "w1", written({}))
    with pytest.raises(BusError):
        await a.renew("A", {"w1": written({"u1": entry("u1")})})
    with pytest.raises(BusError):
        await a.read_instances(["w1"])
    with pytest.raises(BusError):
        await a.is_present("u1", ["w1"])
    assert set(await MemoryPresenceStore(3.0, clock, broker).read("w1")) == {"u1"}


def test_a_ttl_that_is_not_positive_is_a_config_error() -> None:
    """`ttl_s` must be positive."""
    with pytest.raises(ConfigError, match="ttl_s"):
        MemoryPresenceStore(0)
