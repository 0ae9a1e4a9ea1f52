"""`ServerWebSocket` on a recording transport: the close handshake from both sides, the drop
of a client that never answers, reads before the endpoint is attached, pongs held back while
the socket is behind, and flow control for the endpoint's writer."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Coroutine
from typing import Any, cast

import pytest
from websockets.frames import Frame, Opcode

from collab.protocol.close_codes import CloseCode
from collab.protocol.websocket import OPCODE_BINARY, FrameParser, OutgoingFrame
from collab.web.sockets import websocket
from collab.web.sockets.liveness import Liveness
from collab.web.sockets.websocket import ServerWebSocket
from tests.support.transports import RecordingTransport


class Endpoint:
    def __init__(self) -> None:
        self.messages: list[tuple[int, bytes]] = []
        self.closed = 0

    def on_message(self, opcode: int, payload: bytes) -> None:
        self.messages.append((opcode, payload))

    def on_close(self) -> None:
        self.closed += 1


def open_socket() -> tuple[ServerWebSocket, RecordingTransport, Endpoint, Liveness]:
    transport = RecordingTransport()
    liveness = Liveness(30)
    socket = ServerWebSocket(
        cast(asyncio.Transport, transport),
        FrameParser(1 << 20),
        deflate_bits=None,
        send_opcode=OPCODE_BINARY,
        kind="conn",
        name="test",
        liveness=liveness,
    )
    endpoint = Endpoint()
    return socket, transport, endpoint, liveness


def client(opcode: Opcode, data: bytes = b"") -> bytes:
    return Frame(opcode, data).serialize(mask=True)


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()


async def test_reads_before_start_reach_the_endpoint_in_order() -> None:
    socket, _, endpoint, _ = open_socket()
    second = client(Opcode.BINARY, b"two")
    socket.data_received(client(Opcode.BINARY, b"one"))
    socket.data_received(second[:3])
    socket.start(endpoint)
    socket.data_received(second[3:])
    assert endpoint.messages == [(OPCODE_BINARY, b"one"), (OPCODE_BINARY, b"two")]


async def test_a_server_close_waits_for_the_client_then_hangs_up() -> None:
    socket, transport, endpoint, liveness = open_socket()
    socket.start(endpoint)
    closing = asyncio.create_task(socket.close(CloseCode.POLICY_VIOLATION, "no"))
    await asyncio.sleep(0)
    assert transport.written[-1] == b"\x88\x04\x03\xf0no"
    assert not transport.closed
    socket.data_received(client(Opcode.BINARY, b"ignored after our close"))
    socket.data_received(client(Opcode.CLOSE, close_payload(1008)))
    assert transport.closed
    assert not transport.aborted
    socket.connection_lost(None)
    await closing
    assert endpoint.messages == []
    assert endpoint.closed == 1
    assert socket.close_code == 1008
    assert list(liveness._watched) == []


async def test_a_client_that_never_answers_the_close_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(websocket, "CLOSE_TIMEOUT_S", 0.01)
    socket, transport, endpoint, _ = open_socket()
    socket.start(endpoint)
    socket.send_close(1013, "too slow")
    await asyncio.sleep(0.05)
    assert transport.aborted


async def test_a_client_close_is_echoed_once_and_ends_the_connection() -> None:
    socket, transport, endpoint, _ = open_socket()
    socket.start(endpoint)
    socket.data_received(client(Opcode.CLOSE, close_payload(1001, "bye")))
    assert transport.written == [b"\x88\x05\x03\xe9bye"]
    assert transport.closed
    socket.send_close(1000, "late")  # the endpoint closing too: nothing more is written
    assert len(transport.written) == 1
    assert socket.close_code == 1001


async def test_pings_are_answered_but_only_the_latest_while_the_socket_is_behind() -> None:
    socket, transport, endpoint, _ = open_socket()
    socket.start(endpoint)
    socket.data_received(client(Opcode.PING, b"a"))
    assert transport.written == [b"\x8a\x01a"]
    socket.pause_writing()
    socket.data_received(client(Opcode.PING, b"b") + client(Opcode.PING, b"c"))
    assert transport.written == [b"\x8a\x01a"]
    assert not socket.write_now(OutgoingFrame(b"update"))
    socket.resume_writing()
    assert transport.written == [b"\x8a\x01a", b"\x8a\x01c"]
    assert socket.write_now(OutgoingFrame(b"update"))


async def test_the_writer_waits_for_the_socket_to_drain_and_fails_once_it_is_gone() -> None:
    socket, _, endpoint, _ = open_socket()
    socket.start(endpoint)
    socket.pause_writing()
    drained = asyncio.create_task(socket.drain())
    await asyncio.sleep(0)
    assert not drained.done()
    socket.resume_writing()
    await drained
    socket.pause_writing()
    waiting = asyncio.create_task(socket.drain())
    await asyncio.sleep(0)
    socket.connection_lost(None)
    with pytest.raises(ConnectionResetError):
        await waiting
    with pytest.raises(ConnectionResetError):
        await socket.send_frame(b"late")


async def test_a_gone_socket_stays_registered_until_its_endpoint_cleaned_up() -> None:
    """Shutdown waits for what is registered; an endpoint still cleaning up (it may need the
    store and the bus) must be among it."""
    socket, _, _, liveness = open_socket()
    release = asyncio.Event()

    async def cleanup() -> None:
        await release.wait()

    class SlowEndpoint(Endpoint):
        def on_close(self) -> Coroutine[Any, Any, None]:  # type: ignore[override]
            return cleanup()

    socket.start(SlowEndpoint())
    socket.connection_lost(None)
    await asyncio.sleep(0)
    assert len(liveness._watched) == 1
    closing = asyncio.create_task(liveness.close_all(1012, "bye"))
    await asyncio.sleep(0)
    assert not closing.done()
    release.set()
    await closing
    assert list(liveness._watched) == []
