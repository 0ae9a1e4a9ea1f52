"""The WebSocket layer that takes sockets over from aiohttp after the handshake, spoken to
byte by byte: what a client may send (frames pipelined behind the upgrade request,
fragments, frames split across writes, close frames) works, what it must not send closes
only its own connection with the RFC's code, and nothing of aiohttp's request stays behind."""

from __future__ import annotations

import asyncio
import base64
import gc
import os
import struct

import aiohttp
import pytest
from aiohttp import web
from pycrdt import Doc, Text, create_sync_message, create_update_message
from websockets.frames import Frame, Opcode

from collab.protocol.close_codes import CloseCode
from tests.conftest import RunningServer
from tests.support.yclient import YClient, assert_room_still_syncs, scaled_timeout


class RawSocket:
    """A WebSocket client with nothing between the test and the bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(
        cls, server: RunningServer, path: str, *, extra: bytes = b"", version: str = "13"
    ) -> tuple[RawSocket, bytes]:
        """Send the upgrade request (and `extra` in the same write); return the socket and
        the response head."""
        reader, writer = await asyncio.open_connection("127.0.0.1", server.server.port)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: {version}\r\n\r\n"
        ).encode()
        writer.write(request + extra)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled_timeout(5))
        return cls(reader, writer), head

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def frame(self) -> tuple[int, bytes]:
        """The next server frame's opcode and payload (server frames are unmasked)."""
        first, second = await asyncio.wait_for(self.reader.readexactly(2), scaled_timeout(5))
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        return first & 0x0F, await self.reader.readexactly(size)

    async def frame_of(self, opcode: int) -> bytes:
        while True:
            got, payload = await self.frame()
            if got == opcode:
                return payload

    async def closed(self) -> bool:
        """Whether the server closed the TCP connection (EOF) after its close frame."""
        rest = await asyncio.wait_for(self.reader.read(), scaled_timeout(5))
        return isinstance(rest, bytes)

    def close(self) -> None:
        self.writer.close()


def client_frame(opcode: Opcode, data: bytes, *, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin).serialize(mask=True)


def docs_path(server: RunningServer) -> str:
    return f"/ws/docs/w1/n1?token={server.token()}"


async def test_frames_sent_with_the_upgrade_request_are_read(server: RunningServer) -> None:
    """A client may send frames before it sees the 101; the server reads them once it owns
    the socket."""
    step1 = create_sync_message(Doc())
    raw, head = await RawSocket.open(
        server, docs_path(server), extra=client_frame(Opcode.BINARY, step1)
    )
    try:
        assert head.startswith(b"HTTP/1.1 101 ")
        # y-websocket: sync step 2 is [0][1]...; the server also sends its own step 1.
        while True:
            payload = await raw.frame_of(Opcode.BINARY.value)
            if payload[:2] == b"\x00\x01":
                break
    finally:
        raw.close()


async def test_a_fragmented_update_split_across_writes_is_applied(server: RunningServer) -> None:
    doc = Doc()
    doc.get("t", type=Text).insert(0, "in three fragments")
    message = create_update_message(doc.get_update())
    third = len(message) // 3
    wire = (
        client_frame(Opcode.BINARY, message[:third], fin=False)
        + client_frame(Opcode.PING, b"between fragments")
        + client_frame(Opcode.CONT, message[third : 2 * third], fin=False)
        + client_frame(Opcode.CONT, message[2 * third :])
    )
    async with YClient.connect(server.doc_url()) as reader:
        await reader.wait_synced()
        raw, _ = await RawSocket.open(server, docs_path(server))
        try:
            for start in range(0, len(wire), 7):
                raw.send(wire[start : start + 7])
                await raw.writer.drain()
            assert await raw.frame_of(Opcode.PONG.value) == b"between fragments"
            await reader.wait_until(
                lambda: str(reader.doc.get("t", type=Text)) == "in three fragments"
            )
        finally:
            raw.close()


@pytest.mark.parametrize(
    ("wire", "code", "reason"),
    [
        (bytes((0x82, 2)) + b"\x00\x00", 1002, "client frames must be masked"),
        (
            client_frame(Opcode.CONT, b"x"),
            1002,
            "continuation frame without a message to continue",
        ),
        # A ping without FIN, masked with a zero key.
        (bytes((0x09, 0x81)) + b"\x00\x00\x00\x00x", 1002, "control frames must not be fragmented"),
        (
            client_frame(Opcode.CLOSE, struct.pack("!H", 1005)),
            1002,
            "invalid close code 1005",
        ),
    ],
)
async def test_a_broken_frame_closes_only_its_connection_with_its_code(
    server: RunningServer, wire: bytes, code: int, reason: str
) -> None:
    async with YClient.connect(server.doc_url()) as bystander:
        await bystander.wait_synced()
        raw, _ = await RawSocket.open(server, docs_path(server))
        try:
            raw.send(wire)
            payload = await raw.frame_of(Opcode.CLOSE.value)
            assert struct.unpack("!H", payload[:2])[0] == code
            assert payload[2:].decode() == reason
            assert await raw.closed()
        finally:
            raw.close()
        await assert_room_still_syncs(bystander, server.doc_url(), "still here")


async def test_a_client_close_is_answered_with_its_code_and_the_server_hangs_up(
    server: RunningServer,
) -> None:
    raw, _ = await RawSocket.open(server, docs_path(server))
    try:
        raw.send(client_frame(Opcode.CLOSE, struct.pack("!H", 4000) + b"done"))
        payload = await raw.frame_of(Opcode.CLOSE.value)
        assert struct.unpack("!H", payload[:2])[0] == 4000
        assert await raw.closed()
    finally:
        raw.close()


async def test_other_websocket_versions_get_426_naming_version_13(server: RunningServer) -> None:
    raw, head = await RawSocket.open(server, docs_path(server), version="8")
    raw.close()
    assert head.startswith(b"HTTP/1.1 426 ")
    assert b"Sec-WebSocket-Version: 13" in head


async def test_an_open_websocket_keeps_nothing_of_aiohttps_request(server: RunningServer) -> None:
    """The per-connection memory claim: after the upgrade no aiohttp request, response or
    handler task is left for an open socket, on either endpoint."""
    async with (
        YClient.connect(server.doc_url()) as docs,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{server.ws}/ws/live?token={server.token()}") as live,
    ):
        await docs.wait_synced()
        welcome = await live.receive_json(timeout=scaled_timeout(5))
        assert welcome["type"] == "welcome"
        gc.collect()
        left = [
            obj
            for obj in gc.get_objects()
            if isinstance(obj, web.BaseRequest | web.WebSocketResponse)
            and (obj.path.startswith("/ws/") if isinstance(obj, web.BaseRequest) else True)
        ]
        assert left == []
        assert docs.doc.get("t", type=Text) is not None


async def test_live_sockets_are_told_to_reconnect_when_the_server_stops(
    server: RunningServer,
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{server.ws}/ws/live?token={server.token()}") as live,
    ):
        assert (await live.receive_json(timeout=scaled_timeout(5)))["type"] == "welcome"

        async def read_until_closed() -> None:
            # Reading is what answers the server's close frame.
            while not live.closed:
                await live.receive(timeout=scaled_timeout(10))

        reader = asyncio.create_task(read_until_closed())
        await server.close()
        await reader
        assert live.close_code == CloseCode.SERVICE_RESTART
