"""Server WebSockets that leave aiohttp after the handshake.

aiohttp answers the upgrade request (routing, middlewares, auth, the 101 and its headers);
then `accept_websocket` takes the socket over: the transport's protocol becomes a
`ServerWebSocket` and aiohttp is told the connection is gone, so its request, handler task,
middleware frames, parser and writer are freed. What stays per connection is the transport,
this protocol object and the endpoint's own state: about a tenth of what aiohttp keeps for a
WebSocket it runs, and no task, future or queue per message. Frames are parsed as they
arrive (`FrameParser`) and each message goes straight to the endpoint's `on_message`, in the
connection's logging context.

The endpoint writes through the `PeerTransport` methods (`write_now`, `drain`, `send_frame`,
`close`). Liveness counts every read; pings are answered here, and every ping and pong is
spent from the endpoint's message rate (`rate`) like a message.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable
from typing import Protocol

from aiohttp import hdrs, web

from collab.protocol.close_codes import CloseCode
from collab.protocol.websocket import (
    OPCODE_BINARY,
    OPCODE_CLOSE,
    OPCODE_PING,
    OPCODE_PONG,
    FrameError,
    FrameParser,
    OutgoingFrame,
    accept_key,
    encode_close,
    encode_frame,
    parse_close,
    valid_client_key,
)
from collab.protocol.ws_deflate import Inflater, negotiate
from collab.web.keys import LIVENESS
from collab.web.sockets.liveness import Liveness, Watched

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0
# A socket with this much unsent data is behind: later frames wait in the peer's outbox,
# where document updates merge, instead of piling up in the transport.
DIRECT_WRITE_MAX_BUFFERED = 64 * 1024
# Smaller payloads go out uncompressed even on a deflate connection (7.2.3.6 allows it):
# deflating them saves nothing and costs a compressor.
MIN_DEFLATE_BYTES = 64


class MessageHandler(Protocol):
    def on_message(self, opcode: int, payload: bytes) -> None:
        """A whole text or binary message (already inflated and size-checked)."""

    def on_close(self) -> Awaitable[None] | None:
        """The connection is gone; return an awaitable for cleanup that must finish before
        the server stops, if any."""


class MessageBudget(Protocol):
    def over(self, size: int) -> str | None:
        """Spend one message of `size` bytes; None, or why that is over a limit."""


class ServerWebSocket(Watched, asyncio.Protocol):
    """One accepted WebSocket after the handshake: the transport's protocol, the endpoint's
    `PeerTransport`, and its own entry in the server's `Liveness`."""

    __slots__ = (
        "_abort_timer",
        "_cleanup",
        "_close_received",
        "_close_sent",
        "_context",
        "_deflate_bits",
        "_drain_waiter",
        "_handler",
        "_liveness",
        "_lost",
        "_lost_waiter",
        "_parser",
        "_paused",
        "_pending",
        "_pending_pong",
        "_send_opcode",
        "close_code",
        "rate",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        parser: FrameParser,
        *,
        deflate_bits: int | None,
        send_opcode: int,
        kind: str,
        name: str,
        liveness: Liveness,
    ) -> None:
        """`kind` and `name` label the connection's log lines: "conn 1a2b3c"."""
        super().__init__(transport, kind, name)
        self._parser = parser
        self._deflate_bits = deflate_bits
        self._send_opcode = send_opcode
        self._liveness = liveness
        liveness.watch(self)
        self._handler: MessageHandler | None = None
        self._context: contextvars.Context | None = None
        # Reads that arrive before the endpoint is attached (`start`).
        self._pending: list[bytes] | None = []
        # The payload of the latest ping not answered while the socket was behind.
        self._pending_pong: bytes | None = None
        self._paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._lost = False
        self._lost_waiter: asyncio.Future[None] | None = None
        self._close_sent = False
        self._close_received = False
        self._abort_timer: asyncio.TimerHandle | None = None
        self._cleanup: Awaitable[None] | None = None
        self.close_code: int | None = None
        # Set by the endpoint before `start`: control frames count against its rate.
        self.rate: MessageBudget | None = None

    # --- attaching the endpoint -----------------------------------------------------------

    def start(self, handler: MessageHandler) -> None:
        """Hand messages to `handler` from now on, in the caller's context (its logging ids)."""
        self._handler = handler
        self._context = contextvars.copy_context()
        pending, self._pending = self._pending, None
        for data in pending or ():
            self._context.run(self._receive, data)
        if self._lost:
            self._context.run(self._notify_closed)

    # --- asyncio.Protocol -------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.messages += 1
        context = self._context
        if context is None:
            if self._pending is not None:
                self._pending.append(data)
            return
        context.run(self._receive, data)

    def eof_received(self) -> bool | None:
        return None  # the transport closes; connection_lost follows

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        pong, self._pending_pong = self._pending_pong, None
        if pong is not None and not self._close_sent and not self._transport.is_closing():
            self._transport.write(encode_frame(pong, OPCODE_PONG))
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None
        if self.close_code is None:
            self.close_code = CloseCode.ABNORMAL_CLOSURE
        for waiter in (self._drain_waiter, self._lost_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        self._drain_waiter = None
        if self._context is not None:
            self._context.run(self._notify_closed)
        else:
            self._liveness.unwatch(self)

    # --- PeerTransport ----------------------------------------------------------------------

    def write_now(self, frame: OutgoingFrame) -> bool:
        # is_closing: between an abort and connection_lost, uvloop refuses writes.
        if self._paused or self._close_sent or self._lost or self._transport.is_closing():
            return False
        self._transport.write(frame.wire if self._deflate_bits is None else self._deflated(frame))
        return True

    def _deflated(self, frame: OutgoingFrame) -> bytes:
        assert self._deflate_bits is not None
        if len(frame.payload) < MIN_DEFLATE_BYTES:
            return frame.wire
        return frame.deflated_wire(self._deflate_bits)

    async def drain(self) -> None:
        if self._lost:
            raise ConnectionResetError("connection closed")
        if self._paused:
            waiter = self._drain_waiter
            if waiter is None:
                waiter = self._drain_waiter = asyncio.get_running_loop().create_future()
            await waiter
            if self._lost:
                raise ConnectionResetError("connection closed")

    async def send_frame(self, frame: bytes) -> None:
        if self._lost or self._close_sent or self._transport.is_closing():
            raise ConnectionResetError("connection closing")
        outgoing = OutgoingFrame(frame, opcode=self._send_opcode)
        self._transport.write(
            outgoing.wire if self._deflate_bits is None else self._deflated(outgoing)
        )

    async def close(self, code: CloseCode, reason: str) -> None:
        """Send a close frame and wait until the client answers it or `CLOSE_TIMEOUT_S`
        passes (then the TCP connection is dropped)."""
        self.send_close(code, reason)
        await self.wait_lost()

    # --- closing ----------------------------------------------------------------------------

    def send_close(self, code: CloseCode, reason: str) -> None:
        """Start the close handshake (once); the connection is dropped if the client does
        not finish it in time."""
        if self._close_sent or self._lost or self._transport.is_closing():
            return
        self._close_sent = True
        if self.close_code is None:
            self.close_code = code
        self._transport.write(encode_close(code, reason))
        if self._close_received:
            self._transport.close()
        else:
            # A client that stopped reading never answers: drop the TCP connection.
            self._abort_timer = asyncio.get_running_loop().call_later(
                CLOSE_TIMEOUT_S, self._transport.abort
            )

    async def wait_lost(self) -> None:
        if self._lost:
            return
        if self._lost_waiter is None:
            self._lost_waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._lost_waiter)

    def shut_down(self, code: CloseCode, reason: str) -> Awaitable[None]:
        self.send_close(code, reason)
        return self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the connection is gone and the endpoint's cleanup finished."""
        await self.wait_lost()
        if self._cleanup is not None:
            await self._cleanup

    def pause_reading(self) -> None:
        if not self._lost and not self._transport.is_closing():
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if not self._lost and not self._transport.is_closing():
            self._transport.resume_reading()

    @property
    def closing(self) -> bool:
        return self._close_sent or self._lost

    # --- receiving --------------------------------------------------------------------------

    def _receive(self, data: bytes) -> None:
        if self._close_received:
            return
        try:
            messages = self._parser.feed(data)
        except FrameError as error:
            self._fail(error)
            return
        handler = self._handler
        assert handler is not None  # _receive runs only once started
        for opcode, payload in messages:
            if opcode <= OPCODE_BINARY:
                if not self._close_sent:
                    handler.on_message(opcode, payload)
            elif opcode == OPCODE_PING:
                if self._over_rate(payload):
                    return
                if self._paused:
                    # A client that pings but does not read must not grow our buffer: only
                    # the latest ping is answered, once the socket drains (RFC 6455 5.5.3).
                    self._pending_pong = payload
                elif not self._close_sent and not self._transport.is_closing():
                    self._transport.write(encode_frame(payload, OPCODE_PONG))
            elif opcode == OPCODE_CLOSE:
                self._on_close_frame(payload)
                return
            elif self._over_rate(payload):  # a pong
                return

    def _over_rate(self, payload: bytes) -> bool:
        """Spend a control frame from the rate; over it, start the close handshake with 1008
        (no message after it reaches the endpoint) and return True."""
        rate = self.rate
        if rate is None or self._close_sent:
            return False
        reason = rate.over(len(payload))
        if reason is None:
            return False
        log.warning("%s: closing with %d: %s", self.label, CloseCode.POLICY_VIOLATION, reason)
        self.send_close(CloseCode.POLICY_VIOLATION, reason)
        return True

    def _fail(self, error: FrameError) -> None:
        """Close after a protocol violation: nothing the client sends after it is read."""
        log.warning("%s: closing with %d: %s", self.label, error.code, error.reason)
        self._close_received = True
        self.send_close(error.code, error.reason)
        self._transport.close()

    def _on_close_frame(self, payload: bytes) -> None:
        self._close_received = True
        try:
            code, reason = parse_close(payload)
        except FrameError as error:
            self._fail(error)
            return
        if self.close_code is None:
            self.close_code = code
        if not self._close_sent:
            self._close_sent = True
            # Echo the client's code; an empty close answers an empty close.
            if code == CloseCode.NO_STATUS_RECEIVED:
                self._transport.write(encode_frame(b"", OPCODE_CLOSE))
            else:
                self._transport.write(encode_close(code, reason))
        # The server closes the TCP connection first (7.1.1).
        self._transport.close()

    def _notify_closed(self) -> None:
        handler, self._handler = self._handler, None
        if handler is None:
            return
        cleanup = handler.on_close()
        if cleanup is None:
            self._liveness.unwatch(self)
            return
        # Watched (and so waited for on shutdown) until the endpoint's cleanup is done: it may
        # still need the store and the bus, which close after the sockets.
        task = asyncio.ensure_future(cleanup)
        task.add_done_callback(lambda _: self._liveness.unwatch(self))
        self._cleanup = task


class _TailReader:
    """Takes the bytes aiohttp read past the upgrade request (a client may send frames
    before it sees the 101) and hands them to the socket."""

    __slots__ = ("_socket",)

    def __init__(self, socket: ServerWebSocket) -> None:
        self._socket = socket

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._socket.data_received(data)
        return False, b""

    def feed_eof(self) -> None:
        return None


def _header_tokens(request: web.Request, name: str) -> set[str]:
    return {token.strip().lower() for token in request.headers.get(name, "").split(",")}


def check_upgrade(request: web.Request) -> str:
    """The client's key if `request` is a valid WebSocket handshake; else an HTTP error (400,
    or 426 for another protocol version) to answer it with."""
    key = request.headers.get(hdrs.SEC_WEBSOCKET_KEY, "")
    if (
        request.method != "GET"
        or request.version < (1, 1)
        or "websocket" not in _header_tokens(request, hdrs.UPGRADE)
        or "upgrade" not in _header_tokens(request, hdrs.CONNECTION)
    ):
        raise web.HTTPBadRequest(text="this endpoint takes WebSocket upgrades only")
    if request.headers.get(hdrs.SEC_WEBSOCKET_VERSION) != "13":
        raise web.HTTPUpgradeRequired(
            text="only WebSocket version 13 is supported",
            headers={hdrs.SEC_WEBSOCKET_VERSION: "13"},
        )
    if not valid_client_key(key):
        raise web.HTTPBadRequest(text="Sec-WebSocket-Key must be 16 base64-encoded bytes")
    return key


async def accept_websocket(
    request: web.Request,
    *,
    max_message_bytes: int,
    compress: bool,
    send_opcode: int = OPCODE_BINARY,
    kind: str,
    name: str,
) -> tuple[ServerWebSocket, web.StreamResponse]:
    """Answer the upgrade with 101 and take the socket over from aiohttp; the handler
    returns the 101 response (already sent) when it is done with the request. Raises an
    HTTP error (400, 426) for a request that is not a valid WebSocket handshake.

    Once this returns, the handler must not await anything: call `ServerWebSocket.start`
    and return the response. aiohttp believes the client left, and a server running with
    `handler_cancellation` (aiohttp's test server does) cancels the handler at its next
    suspension."""
    key = check_upgrade(request)
    agreement = negotiate(request.headers.get(hdrs.SEC_WEBSOCKET_EXTENSIONS)) if compress else None
    response = web.StreamResponse(
        status=101,
        headers={
            hdrs.UPGRADE: "websocket",
            hdrs.CONNECTION: "Upgrade",
            hdrs.SEC_WEBSOCKET_ACCEPT: accept_key(key),
        },
    )
    if agreement is not None:
        response.headers[hdrs.SEC_WEBSOCKET_EXTENSIONS] = agreement.response_header()
    await response.prepare(request)  # sends the 101 and its headers at once
    http = request.protocol
    transport = request.transport
    if transport is None or transport.is_closing():
        raise ConnectionResetError("the client left during the handshake")
    socket = ServerWebSocket(
        transport,
        FrameParser(max_message_bytes, Inflater() if agreement is not None else None),
        deflate_bits=agreement.server_window_bits if agreement is not None else None,
        send_opcode=send_opcode,
        kind=kind,
        name=name,
        liveness=request.app[LIVENESS],
    )
    transport.set_write_buffer_limits(high=DIRECT_WRITE_MAX_BUFFERED)
    # Whatever aiohttp read past the request goes to the socket first.
    http.set_parser(_TailReader(socket))  # type: ignore[arg-type] # duck-typed reader
    transport.set_protocol(socket)
    # aiohttp lets go as if the client had left, without closing what it no longer owns.
    http.transport = None
    http.connection_lost(None)
    transport.resume_reading()
    return socket, response
