"""Token expiry of open connections: buckets with one loop timer, not a timer each."""

from __future__ import annotations

import asyncio
import time

from collab.auth.tokens import Identity, TokenVerifier
from collab.protocol.close_codes import CloseCode
from collab.rooms.peer import OutboxLimits, Peer
from collab.web.sockets.sessions import EXPIRY_GRANULARITY_S, Sessions
from tests.conftest import make_settings
from tests.support.waiting import eventually


class ClosingSocket:
    def __init__(self) -> None:
        self.closed: CloseCode | None = None

    def write_now(self, frame: object) -> bool:
        return True

    async def drain(self) -> None:
        pass

    async def send_frame(self, frame: bytes) -> None:
        pass

    async def close(self, code: CloseCode, reason: str) -> None:
        self.closed = code


def connection(name: str) -> tuple[Peer, ClosingSocket]:
    socket = ClosingSocket()
    peer = Peer(
        name, user_id=name, can_write=True, transport=socket, limits=OutboxLimits(1 << 20, 10)
    )
    return peer, socket


def identity(user: str, lives_s: float | None) -> Identity:
    expires_at = None if lives_s is None else time.time() + lives_s
    return Identity(user, None, {}, expires_at=expires_at)


async def test_sessions_expire_in_order_and_closed_ones_never() -> None:
    sessions = Sessions(TokenVerifier(make_settings()), leeway_s=0)
    soon, soon_socket = connection("soon")
    gone, gone_socket = connection("gone")
    later, later_socket = connection("later")
    never, never_socket = connection("never")
    sessions.open(soon, identity("soon", 0.3), kind="docs", room_id="w1/n1")
    gone_session = sessions.open(gone, identity("gone", 0.3), kind="docs", room_id="w1/n1")
    sessions.open(later, identity("later", 1.0), kind="live")
    sessions.open(never, identity("never", None), kind="live")
    gone_session.close()
    await eventually(lambda: soon_socket.closed is not None, what="the first expiry")
    assert soon_socket.closed == CloseCode.TOKEN_EXPIRED
    assert later_socket.closed is None
    await eventually(lambda: later_socket.closed is not None, what="the second expiry")
    await asyncio.sleep(EXPIRY_GRANULARITY_S * 2)
    assert gone_socket.closed is None
    assert never_socket.closed is None


async def test_a_refresh_moves_the_expiry_to_its_new_bucket() -> None:
    sessions = Sessions(TokenVerifier(make_settings()), leeway_s=0)
    peer, socket = connection("u1")
    session = sessions.open(peer, identity("u1", 0.3), kind="docs", room_id="w1/n1")
    session.refreshed(identity("u1", 3600))
    other, other_socket = connection("u2")
    sessions.open(other, identity("u2", 0.6), kind="docs", room_id="w1/n1")
    await eventually(lambda: other_socket.closed is not None, what="the other expiry")
    assert socket.closed is None
