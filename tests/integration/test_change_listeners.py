"""Document-change listeners: registered when a room manager is built, told of every change
applied to a loaded room (a client's edit, the server's, another instance's), in order, from
one place, with the room, the acting user and whether the change was made on this instance.
Two room managers share an in-process bus broker, as two instances share Redis."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pycrdt import Doc, Text

from collab.bus.memory import MemoryBroker, MemoryBus
from collab.protocol.messages import encode_update
from collab.rooms.live import DocumentChange
from collab.rooms.manager import RoomLimits, RoomManager
from collab.rooms.peer import OutboxLimits, Peer
from collab.store.memory import MemoryStore
from tests.support.waiting import eventually

ROOM_ID = "w1/n1"


class Recorder:
    """A listener that keeps what it was told, as (name, room id, actor, local)."""

    def __init__(self, name: str, log: list[tuple[str, str, str | None, bool]]) -> None:
        self.name = name
        self.log = log

    def __call__(self, change: DocumentChange) -> None:
        self.log.append((self.name, change.live.room_id, change.actor, change.local))


class SilentSocket:
    def write_now(self, frame: Any) -> bool:
        return True

    async def drain(self) -> None:
        pass

    async def send_frame(self, frame: bytes) -> None:
        pass

    async def close(self, code: Any, reason: str) -> None:
        pass


def failing_listener(change: DocumentChange) -> None:
    raise RuntimeError("a listener's bug")


@pytest.fixture
async def told() -> list[tuple[str, str, str | None, bool]]:
    return []


@pytest.fixture
async def instances(
    told: list[tuple[str, str, str | None, bool]],
) -> AsyncIterator[tuple[RoomManager, RoomManager]]:
    broker = MemoryBroker()
    managers = []
    for index in range(2):
        store = MemoryStore()
        await store.open()
        bus = MemoryBus(broker)
        await bus.start()
        listeners = (
            [Recorder("first", told), failing_listener, Recorder("second", told)]
            if index == 0
            else [Recorder("other instance", told)]
        )
        manager = RoomManager(store, bus, RoomLimits(flush_interval_s=0.01), listeners=listeners)
        await manager.start()
        managers.append(manager)
    yield managers[0], managers[1]
    for manager in managers:
        await manager.close()


def typed(client_id: int, text: str) -> bytes:
    doc: Doc[Any] = Doc(client_id=client_id)
    doc.get("t", type=Text).insert(0, text)
    return doc.get_update()


async def test_every_change_is_told_to_every_listener_in_order(
    instances: tuple[RoomManager, RoomManager],
    told: list[tuple[str, str, str | None, bool]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A client's edit and a server edit on one instance are local there (with their
    user); the other instance is told of each as a change that was not made there. A
    listener that raises is logged with its traceback and the next one is still told."""
    here, there = instances
    live_here = await here.acquire(ROOM_ID)
    await there.acquire(ROOM_ID)
    peer = Peer(
        "p1",
        user_id="alice",
        can_write=True,
        transport=SilentSocket(),
        limits=OutboxLimits(1 << 20, 100),
    )
    here.join(live_here, peer)

    with caplog.at_level(logging.ERROR, logger="collab.rooms.manager"):
        assert here.receive(live_here, peer, encode_update(typed(1, "hello"))) is None
        assert await here.apply_server_update(live_here, typed(2, "!"), actor="bob")
    await eventually(
        lambda: told.count(("other instance", ROOM_ID, None, False)) == 2,
        what="the other instance told of both changes",
    )

    assert [entry for entry in told if entry[0] != "other instance"] == [
        ("first", ROOM_ID, "alice", True),
        ("second", ROOM_ID, "alice", True),
        ("first", ROOM_ID, "bob", True),
        ("second", ROOM_ID, "bob", True),
    ]
    failures = [r for r in caplog.records if "a change listener failed" in r.getMessage()]
    assert len(failures) == 2
    assert all(record.exc_info is not None for record in failures)


async def test_an_update_that_changes_nothing_is_not_a_change(
    instances: tuple[RoomManager, RoomManager],
    told: list[tuple[str, str, str | None, bool]],
) -> None:
    """The same update applied twice tells the listeners once."""
    here, _ = instances
    live = await here.acquire(ROOM_ID)
    update = typed(3, "once")
    assert await here.apply_server_update(live, update, actor="carol")
    assert not await here.apply_server_update(live, update, actor="carol")
    assert [entry for entry in told if entry[0] == "first"] == [("first", ROOM_ID, "carol", True)]
