"""A large update waits for the trial worker before it is applied; what its sender may do is
decided again when the trial ends, not only when the frame arrived. A connection whose role
stopped writing, or that the server is closing (its access withdrawn, its token expired or
revoked), has nothing applied from that wait: the client's copy is resent on its next
connection if it may still write, and a user who lost access must not change the note."""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest
from pycrdt import Text, create_update_message

from collab.bus.memory import MemoryBroker, MemoryBus
from collab.protocol.close_codes import CloseCode
from collab.rooms.live import LiveRoom
from collab.rooms.manager import RoomLimits, RoomManager
from collab.rooms.peer import OutboxLimits, Peer
from collab.store.memory import MemoryStore
from tests.support.hostile import many_structs_update
from tests.support.transports import ClosingPeerTransport

ROOM_ID = "w1/n1"
# Enough structs that the update goes through the trial worker (reading.INLINE_MAX_STRUCTS).
STRUCTS = 64


@pytest.fixture
async def manager() -> AsyncIterator[RoomManager]:
    store = MemoryStore()
    await store.open()
    bus = MemoryBus(MemoryBroker())
    await bus.start()
    rooms = RoomManager(store, bus, RoomLimits(flush_interval_s=0.01))
    await rooms.start()
    yield rooms
    await rooms.close()


def join_writer(manager: RoomManager, live: LiveRoom) -> Peer:
    peer = Peer(
        "p1",
        user_id="mallory",
        can_write=True,
        transport=ClosingPeerTransport(),
        limits=OutboxLimits(max_bytes=64 << 20, max_frames=1000),
    )
    manager.join(live, peer)
    return peer


async def tried_update(
    manager: RoomManager,
) -> tuple[LiveRoom, Peer, Coroutine[Any, Any, bool]]:
    """A writer joined to the room, and its large update waiting for the trial worker."""
    live = await manager.acquire(ROOM_ID)
    peer = join_writer(manager, live)
    frame = create_update_message(many_structs_update(structs=STRUCTS))
    pending = manager.receive(live, peer, frame)
    assert pending is not None, "the update was not sent to the trial worker"
    return live, peer, pending


def text_length(live: LiveRoom) -> int:
    return len(str(live.room.doc.get("t", type=Text)))


async def test_an_update_tried_while_its_sender_kept_writing_is_applied(
    manager: RoomManager,
) -> None:
    live, _, pending = await tried_update(manager)
    assert await pending is True
    assert text_length(live) == STRUCTS * 64


async def test_an_update_whose_sender_became_a_viewer_during_its_trial_is_not_applied(
    manager: RoomManager,
) -> None:
    live, peer, pending = await tried_update(manager)
    peer.can_write = False  # what `recheck_connections` does when the role stops writing
    assert await pending is False
    assert text_length(live) == 0


@pytest.mark.parametrize("code", [CloseCode.FORBIDDEN, CloseCode.TOKEN_EXPIRED])
async def test_an_update_whose_sender_is_being_closed_after_its_trial_is_not_applied(
    manager: RoomManager, code: CloseCode
) -> None:
    live, peer, pending = await tried_update(manager)
    peer.request_close(code, "access to this note was withdrawn")
    assert await pending is False
    assert text_length(live) == 0


async def test_an_update_whose_sender_hung_up_during_its_trial_is_still_applied(
    manager: RoomManager,
) -> None:
    """A client that closed its own socket sent the update while it could write: it is
    kept, as it would be had it arrived a moment earlier."""
    live, peer, pending = await tried_update(manager)
    manager.leave(live, peer)
    assert await pending is True
    assert text_length(live) == STRUCTS * 64
