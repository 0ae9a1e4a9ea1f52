"""Per-user message rates shared by a user's connections, control frames spent from the rate,
and the connection counter counting REST requests in flight with its own names."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from websockets.frames import Frame, Opcode

from collab.protocol.close_codes import CloseCode
from collab.protocol.websocket import OPCODE_BINARY, FrameParser
from collab.settings import Settings
from collab.web.http.connections import ConnectionCounter, Counted, TooManyConnections
from collab.web.sockets.liveness import Liveness
from collab.web.sockets.rates import USER_RATE, MessageRate
from collab.web.sockets.websocket import ServerWebSocket
from tests.support.transports import RecordingTransport


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Endpoint:
    def __init__(self) -> None:
        self.messages: list[tuple[int, bytes]] = []

    def on_message(self, opcode: int, payload: bytes) -> None:
        self.messages.append((opcode, payload))

    def on_close(self) -> None:
        return None


def user_rate(clock: FakeClock, *, messages: int = 3, byte_burst: int = 10**6) -> MessageRate:
    return MessageRate(
        messages_per_s=1,
        message_burst=messages,
        bytes_per_s=100,
        bytes_burst=byte_burst,
        clock=clock,
        scope=USER_RATE,
    )


def connection_rate(clock: FakeClock, user: MessageRate | None, burst: int = 100) -> MessageRate:
    return MessageRate(
        messages_per_s=100,
        message_burst=burst,
        bytes_per_s=0,
        bytes_burst=1,
        clock=clock,
        user=user,
    )


def open_socket() -> tuple[ServerWebSocket, RecordingTransport]:
    transport = RecordingTransport()
    socket = ServerWebSocket(
        cast(asyncio.Transport, transport),
        FrameParser(1 << 20),
        deflate_bits=None,
        send_opcode=OPCODE_BINARY,
        kind="conn",
        name="test",
        liveness=Liveness(30),
    )
    return socket, transport


def test_every_connection_of_a_user_spends_from_the_users_buckets() -> None:
    """Two connections each within their own rate go over the user's burst together; the
    reason names COLLAB_USER_MESSAGES_PER_S."""
    clock = FakeClock()
    shared = user_rate(clock, messages=3)
    first, second = connection_rate(clock, shared), connection_rate(clock, shared)
    assert [first.over(1), second.over(1), first.over(1)] == [None, None, None]
    reason = second.over(1)
    assert reason is not None
    assert "COLLAB_USER_MESSAGES_PER_S" in reason
    assert "across the user's connections" in reason
    clock.now += 1.0  # one more message for the user
    assert second.over(1) is None
    assert first.over(1) is not None


def test_a_message_refused_by_its_connection_takes_nothing_from_the_user() -> None:
    """A connection over its own limit is refused with its own reason before the user's
    buckets are touched, so the user's other connections keep their share."""
    clock = FakeClock()
    shared = user_rate(clock, messages=2)
    small = connection_rate(clock, shared, burst=1)
    other = connection_rate(clock, shared)
    assert small.over(1) is None
    reason = small.over(1)
    assert reason is not None
    assert "COLLAB_WS_MESSAGES_PER_S" in reason
    assert other.over(1) is None


def test_user_bytes_over_the_burst_name_the_user_byte_limit() -> None:
    """Bytes beyond the user's byte burst, sent over two connections, name
    COLLAB_USER_BYTES_PER_S."""
    clock = FakeClock()
    shared = user_rate(clock, messages=100, byte_burst=1000)
    first, second = connection_rate(clock, shared), connection_rate(clock, shared)
    assert first.over(600) is None
    reason = second.over(600)
    assert reason is not None
    assert "COLLAB_USER_BYTES_PER_S" in reason


def test_a_users_connections_share_one_rate_until_the_last_slot_is_freed() -> None:
    """Connections admitted for one user share the user's buckets; once the user's last slot
    is freed the next connection starts with full ones."""
    settings = Settings(user_messages_per_s=1, user_message_burst=3)
    counter = ConnectionCounter(settings)
    slots = [counter.count(None, "u1"), counter.count(None, "u1")]
    first = counter.message_rate(open_socket()[0], "u1", 1024)
    second = counter.message_rate(open_socket()[0], "u1", 1024)
    assert [first.over(1), second.over(1), first.over(1)] == [None, None, None]
    assert second.over(1) is not None
    for slot in slots:
        counter.release_slot(slot)
    counter.count(None, "u1")
    fresh = counter.message_rate(open_socket()[0], "u1", 1024)
    assert [fresh.over(1) for _ in range(3)] == [None, None, None]


def test_without_user_rates_a_connection_has_only_its_own() -> None:
    """With COLLAB_USER_MESSAGES_PER_S and COLLAB_USER_BYTES_PER_S at 0, only the connection's
    own limits apply, and the socket still spends control frames from them."""
    settings = Settings(user_messages_per_s=0, user_bytes_per_s=0, ws_message_burst=5)
    counter = ConnectionCounter(settings)
    counter.count(None, "u1")
    socket, _ = open_socket()
    rate = counter.message_rate(socket, "u1", 1024)
    assert socket.rate is rate
    assert [rate.over(1) for _ in range(5)] == [None] * 5
    reason = rate.over(1)
    assert reason is not None
    assert "COLLAB_WS_MESSAGES_PER_S" in reason


def test_requests_in_flight_are_refused_with_their_own_code_and_setting() -> None:
    """A counter of REST requests names COLLAB_MAX_REQUESTS_PER_USER / _PER_IP; a request
    without a user is counted per IP only."""
    settings = Settings(max_requests_per_user=1, max_requests_per_ip=2)
    counter = ConnectionCounter(settings, Counted.requests(settings))
    slot = counter.count("203.0.113.9", "u1")
    with pytest.raises(TooManyConnections) as by_user:
        counter.count("203.0.113.10", "u1")
    assert by_user.value.code == "too_many_requests_in_flight_per_user"
    assert "COLLAB_MAX_REQUESTS_PER_USER" in str(by_user.value)
    counter.count("203.0.113.9", None)
    with pytest.raises(TooManyConnections) as by_ip:
        counter.count("203.0.113.9", None)
    assert by_ip.value.code == "too_many_requests_in_flight_per_ip"
    assert "COLLAB_MAX_REQUESTS_PER_IP" in str(by_ip.value)
    assert counter.count_of_user("u1") == 1
    counter.release_slot(slot)
    assert counter.count_of_user("u1") == 0
    assert counter.count_of_ip("203.0.113.9") == 1


async def test_pings_and_pongs_spend_from_the_rate_and_close_with_1008() -> None:
    """Control frames count against the socket's rate: over it, the socket sends close 1008
    naming the limit, answers no more pings and hands the endpoint nothing more."""
    clock = FakeClock()
    socket, transport = open_socket()
    socket.rate = connection_rate(clock, None, burst=3)
    endpoint = Endpoint()
    socket.start(endpoint)
    ping = Frame(Opcode.PING, b"p").serialize(mask=True)
    pong = Frame(Opcode.PONG, b"q").serialize(mask=True)
    socket.data_received(ping + pong + ping)
    assert transport.written == [b"\x8a\x01p", b"\x8a\x01p"]
    socket.data_received(pong + ping + Frame(Opcode.BINARY, b"late").serialize(mask=True))
    assert len(transport.written) == 3
    sent_close = transport.written[-1]
    assert sent_close[0] == 0x88
    assert int.from_bytes(sent_close[2:4], "big") == CloseCode.POLICY_VIOLATION
    assert b"COLLAB_WS_MESSAGES_PER_S" in sent_close
    assert endpoint.messages == []
    assert socket.close_code == CloseCode.POLICY_VIOLATION
    transport.close()
    socket.connection_lost(None)
