"""`MemberDirectory` over the memory store and bus: roles as owners cap them, removals,
recording what was seen (at most once per interval), and decisions reaching every instance."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from collab.auth.tokens import Identity, Role
from collab.bus.memory import MemoryBroker, MemoryBus
from collab.errors import ForbiddenError
from collab.rooms.directory import DIRECTORY_ROOM, MemberChange, MemberDirectory
from collab.store.memory import MemoryStore
from tests.support.waiting import eventually


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Instance:
    def __init__(self, store: MemoryStore, broker: MemoryBroker, clock: Clock) -> None:
        self.bus = MemoryBus(broker)
        self.changes: list[MemberChange] = []
        self.directory = MemberDirectory(
            store, self.bus, on_change=self.changes.append, seen_interval_s=60.0, clock=clock
        )

    async def start(self) -> None:
        await self.bus.start()
        await self.directory.start()

    async def close(self) -> None:
        await self.directory.close()
        await self.bus.close()


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    opened = MemoryStore()
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def pair(store: MemoryStore, clock: Clock) -> AsyncIterator[tuple[Instance, Instance]]:
    broker = MemoryBroker()
    a, b = Instance(store, broker, clock), Instance(store, broker, clock)
    await a.start()
    await b.start()
    yield a, b
    await a.close()
    await b.close()


def who(user_id: str, role: Role = Role.EDITOR, name: str | None = None) -> Identity:
    return Identity(user_id, name, {"w1": role, "w2": role})


async def test_an_assigned_role_caps_the_token_and_a_removal_refuses_it(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    assert a.directory.role(who("u1", Role.OWNER), "w1") is Role.OWNER
    await a.directory.put("w1", "u1", role=Role.VIEWER, name=None, email=None)
    assert a.directory.role(who("u1", Role.OWNER), "w1") is Role.VIEWER
    # A role above the token's grants nothing more.
    await a.directory.put("w1", "u2", role=Role.OWNER, name=None, email=None)
    assert a.directory.role(who("u2", Role.VIEWER), "w1") is Role.VIEWER
    assert await a.directory.remove("w1", "u1") is not None
    with pytest.raises(ForbiddenError, match="removed from workspace 'w1'"):
        a.directory.role(who("u1"), "w1")
    # Only in that workspace; and a token without the workspace is refused as before.
    assert a.directory.role(who("u1"), "w2") is Role.EDITOR
    with pytest.raises(ForbiddenError, match="grants no role"):
        a.directory.role(Identity("u3", None, {}), "w1")

    async def on_b() -> bool:
        try:
            b.directory.role(who("u1"), "w1")
        except ForbiddenError:
            return b.directory.role(who("u2", Role.OWNER), "w1") is Role.OWNER
        return False

    await eventually(on_b, what="the decisions applied on the other instance")
    assert [c.removed for c in b.changes if c.user_id == "u1"] == [False, True]


async def test_removing_a_stranger_or_twice_changes_nothing(
    pair: tuple[Instance, Instance],
) -> None:
    a, _ = pair
    assert await a.directory.remove("w1", "stranger") is None
    await a.directory.seen(who("u1"))
    assert await a.directory.remove("w1", "u1") is not None
    assert await a.directory.remove("w1", "u1") is None
    assert [c.user_id for c in a.changes] == ["u1"]


async def test_seen_is_written_once_per_interval_unless_name_or_role_change(
    pair: tuple[Instance, Instance], store: MemoryStore, clock: Clock
) -> None:
    a, _ = pair
    await a.directory.seen(who("u1", name="Ann"))
    first = await store.get_member("w1", "u1")
    assert first is not None
    assert (first.name, first.role) == ("Ann", "editor")
    clock.now += 30
    await a.directory.seen(who("u1", name="Ann"))
    assert await store.get_member("w1", "u1") == first
    await a.directory.seen(who("u1", Role.VIEWER, name="Ann"))
    changed = await store.get_member("w1", "u1")
    assert changed is not None
    assert changed.role == "viewer"
    clock.now += 61
    await a.directory.seen(who("u1", Role.VIEWER, name="Ann"))
    later = await store.get_member("w1", "u1")
    assert later is not None
    assert later.last_seen_at is not None
    assert changed.last_seen_at is not None
    assert later.last_seen_at > changed.last_seen_at
    assert set(await store.non_members("w2", ["u1", "u9"])) == {"u9"}


async def test_a_tokens_email_is_recorded_at_once_when_it_changes(
    pair: tuple[Instance, Instance], store: MemoryStore, clock: Clock
) -> None:
    """The token's address is recorded with the member, and a new one within the interval is
    written at once, as a new name is."""
    a, _ = pair
    await a.directory.seen(Identity("u1", "Ann", {"w1": Role.EDITOR}, email="a@example.com"))
    assert (await store.email_recipient("u1")).email == "a@example.com"
    clock.now += 1
    await a.directory.seen(Identity("u1", "Ann", {"w1": Role.EDITOR}, email="b@example.com"))
    assert (await store.email_recipient("u1")).email == "b@example.com"


async def test_a_removed_member_seen_again_stays_removed(
    pair: tuple[Instance, Instance], store: MemoryStore, clock: Clock
) -> None:
    a, _ = pair
    await a.directory.seen(who("u1"))
    await a.directory.remove("w1", "u1")
    clock.now += 3600
    await a.directory.seen(who("u1"))
    assert await store.non_members("w1", ["u1"]) == ["u1"]
    member, added = await a.directory.put("w1", "u1", role=Role.EDITOR, name=None, email=None)
    assert added is True
    assert member.removed_at is None
    assert a.directory.role(who("u1"), "w1") is Role.EDITOR


async def test_a_late_instance_loads_the_decisions_and_a_resync_reloads_them(
    store: MemoryStore, clock: Clock
) -> None:
    broker = MemoryBroker()
    a = Instance(store, broker, clock)
    await a.start()
    await a.directory.remove("w1", "nobody")  # not a member: nothing decided
    await a.directory.put("w1", "u1", role=Role.VIEWER, name=None, email=None)
    await a.directory.seen(who("u2"))
    await a.directory.remove("w1", "u2")
    late = Instance(store, broker, clock)
    await late.start()
    try:
        assert late.directory.role(who("u1"), "w1") is Role.VIEWER
        assert late.directory.is_removed("w1", "u2")
        # A decision the bus lost: the store has it, and a resync applies it.
        await store.put_member("w1", "u2", role="editor", name=None, email=None, at="2026")
        assert late.directory.is_removed("w1", "u2")
        late.directory._on_resync(DIRECTORY_ROOM)

        async def reloaded() -> bool:
            return not late.directory.is_removed("w1", "u2")

        await eventually(reloaded, what="the reload after a resync")
        assert late.directory.role(who("u2", Role.OWNER), "w1") is Role.EDITOR
    finally:
        await late.close()
        await a.close()


async def test_an_invalid_bus_message_is_dropped(pair: tuple[Instance, Instance]) -> None:
    a, b = pair
    for frame in (
        b"{",
        b'{"workspace": "w1"}',
        b'{"workspace":1,"user":"u","role":null,"removed":true}',
        b'{"workspace":"w1","user":"u","role":"root","removed":false}',
    ):
        a.bus.publish(DIRECTORY_ROOM, frame)
    await a.directory.put("w1", "u1", role=Role.VIEWER, name=None, email=None)

    async def applied() -> bool:
        return b.directory.role(who("u1"), "w1") is Role.VIEWER

    await eventually(applied, what="a valid decision after invalid ones")
    assert [c.user_id for c in b.changes] == ["u1"]


async def test_names_are_listed_clean_and_ids_no_member_can_have_are_not_recorded(
    pair: tuple[Instance, Instance], store: MemoryStore
) -> None:
    a, _ = pair
    await a.directory.seen(Identity("u1", "Ann\x00\n  Lee" + "x" * 300, {"w1": Role.EDITOR}))
    member = await store.get_member("w1", "u1")
    assert member is not None
    assert member.name == ("Ann Lee" + "x" * 300)[:200]
    await a.directory.seen(Identity("u\x00", None, {"w1": Role.EDITOR}))
    await a.directory.seen(Identity("u" * 257, None, {"w1": Role.EDITOR}))
    assert [m.user_id for m in await store.list_members("w1")] == ["u1"]
