"""`/ws/docs/{workspace_id}/{note_id}`: the y-websocket endpoint.

Auth, role and room load all happen before the upgrade, so a refused client gets an HTTP
status (401, 403, 503) and no socket. After the upgrade, each frame goes to the room manager;
bad input closes only this connection, with a close code and a reason, logged once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from aiohttp import WSMessage, WSMsgType, web

from collab.errors import DocumentTooLarge, PolicyViolation, ProtocolError, UnsupportedMessage
from collab.observability.logging import conn_id_var
from collab.protocol.close_codes import CloseCode
from collab.protocol.messages import AUTH_FRAME_PREFIX, is_update_frame, merge_update_frames
from collab.protocol.websocket import OutgoingFrame
from collab.rooms.manager import LiveRoom, RoomManager
from collab.rooms.peer import Coalescing, OutboxLimits, Peer
from collab.web.keys import NOTIFIER, PRESENCE, ROOMS, SETTINGS
from collab.web.limits import CONNECTIONS, MessageRate
from collab.web.liveness import LIVENESS, Liveness, Watched
from collab.web.requests import authenticate, check_origin, room_of
from collab.web.sessions import SESSIONS, TokenSession, refresh_docs_connection

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0
# A socket with this much unsent data is behind: later frames wait in the peer's outbox,
# where document updates merge, instead of piling up in the transport.
DIRECT_WRITE_MAX_BUFFERED = 64 * 1024
MAX_CLOSE_REASON_BYTES = 123  # RFC 6455: a close frame's payload is at most 125 bytes


class CollabWebSocket(web.WebSocketResponse):
    """The server side of both WebSocket endpoints. aiohttp closes an oversized message with
    1009 and no reason; this gives it one.

    No aiohttp heartbeat and no automatic pong: `Liveness` finds half-open connections for all
    sockets at once. `receive` counts every message for it (pongs included), answers pings
    and hands the read loops data and close messages only."""

    def __init__(self, *, max_message_bytes: int, compress: bool) -> None:
        super().__init__(
            max_msg_size=max_message_bytes,
            compress=compress,
            heartbeat=None,
            autoping=False,
            timeout=CLOSE_TIMEOUT_S,
        )
        self._limit = max_message_bytes
        self._liveness: Liveness | None = None
        self._watched: Watched | None = None

    def watch(self, request: web.Request, label: str) -> None:
        """Put this connection, once upgraded, under the app's `Liveness` until `unwatch`."""
        transport = request.transport
        assert transport is not None, "watch() is called after the upgrade"
        self._liveness = request.app[LIVENESS]
        self._watched = self._liveness.watch(transport, label)

    def unwatch(self) -> None:
        if self._liveness is not None and self._watched is not None:
            self._liveness.unwatch(self._watched)
        self._watched = None

    async def receive(self, timeout: float | None = None) -> WSMessage:  # noqa: ASYNC109 (aiohttp's signature)
        while True:
            message = await super().receive(timeout)
            if self._watched is not None:
                self._watched.messages += 1
            if message.type is WSMsgType.PING:
                await self.pong(message.data)
            elif message.type is not WSMsgType.PONG:
                return message

    async def close(self, *, code: int = 1000, message: bytes = b"", drain: bool = True) -> bool:
        if code == CloseCode.MESSAGE_TOO_BIG and not message:
            message = f"message larger than {self._limit} bytes".encode()
        return await super().close(code=code, message=message, drain=drain)


class WebSocketTransport:
    """Adapts an aiohttp WebSocket to the `PeerTransport` the room manager writes to."""

    __slots__ = ("_direct", "_request", "_ws")

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self._ws = ws
        self._request = request
        # The socket that takes frames built once for everyone, looked up once (this is the
        # per-delivery path); None when it cannot: permessage-deflate frames depend on the
        # connection's compressor state.
        self._direct = None if ws.compress else request.transport

    def write_now(self, frame: OutgoingFrame) -> bool:
        transport = self._direct
        if (
            transport is None
            or self._ws.closed
            or transport.is_closing()
            or transport.get_write_buffer_size() >= DIRECT_WRITE_MAX_BUFFERED
        ):
            return False
        # One whole frame per write: aiohttp's own control frames (pong, close) interleave
        # between frames, never inside one.
        transport.write(frame.wire)
        return True

    async def drain(self) -> None:
        await self._request.writer.drain()

    async def send_frame(self, frame: bytes) -> None:
        await self._ws.send_bytes(frame)

    async def close(self, code: CloseCode, reason: str) -> None:
        message = reason.encode()[:MAX_CLOSE_REASON_BYTES]
        try:
            await asyncio.wait_for(self._ws.close(code=code, message=message), CLOSE_TIMEOUT_S)
        except TimeoutError:
            # The client does not read (its socket buffer is full): drop the TCP connection.
            transport = self._request.transport
            if transport is not None:
                transport.abort()


UPDATE_COALESCING = Coalescing(mergeable=is_update_frame, merge=merge_update_frames)


def _close_code_for(error: ProtocolError) -> CloseCode:
    if isinstance(error, UnsupportedMessage):
        return CloseCode.UNSUPPORTED_DATA
    if isinstance(error, DocumentTooLarge):
        return CloseCode.MESSAGE_TOO_BIG
    if isinstance(error, PolicyViolation):
        return CloseCode.POLICY_VIOLATION
    return CloseCode.INVALID_PAYLOAD


async def ws_docs(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    rooms = request.app[ROOMS]
    presence = request.app[PRESENCE]
    notifier = request.app[NOTIFIER]
    check_origin(request)
    identity = authenticate(request, allow_query=True)
    room_id, role = room_of(request, identity)
    if not web.WebSocketResponse().can_prepare(request).ok:
        raise web.HTTPBadRequest(text="this endpoint takes WebSocket upgrades only")
    request.app[CONNECTIONS].admit(request, identity.user_id)
    peer_id = uuid.uuid4().hex[:12]
    live = await rooms.acquire(room_id)
    # Set once the connection will open: a refusal above is not a connection's line.
    conn_id_var.set(peer_id)
    try:
        ws = CollabWebSocket(
            max_message_bytes=settings.max_message_bytes, compress=settings.ws_compression
        )
        await ws.prepare(request)
        peer = Peer(
            peer_id,
            user_id=identity.user_id,
            can_write=role.can_write,
            transport=WebSocketTransport(ws, request),
            limits=OutboxLimits(settings.outbox_max_bytes, settings.outbox_max_frames),
            coalescing=UPDATE_COALESCING,
        )
        log.info("conn %s: user %s joined %s as %s", peer_id, identity.user_id, room_id, role.value)
        rooms.join(live, peer)
        workspace_id, _, note_id = room_id.partition("/")
        presence.open_note(peer_id, identity.user_id, identity.name, workspace_id, note_id)
        session = request.app[SESSIONS].open(peer, identity, kind="docs")
        ws.watch(request, f"conn {peer_id}")
        try:
            await notifier.remember_identity(identity.user_id, identity.name, identity.workspaces)
            rate = MessageRate.for_connection(settings, settings.max_message_bytes)
            await _read_frames(ws, rooms, live, peer, rate, session)
        finally:
            ws.unwatch()
            session.close()
            presence.close_note(peer_id)
            rooms.leave(live, peer)
            if peer.closing:
                await peer.wait_closed()
            else:
                await peer.stop()
        log.info("conn %s: left %s (close code %s)", peer_id, room_id, ws.close_code)
        return ws
    finally:
        rooms.release(live)


async def _read_frames(
    ws: web.WebSocketResponse,
    rooms: RoomManager,
    live: LiveRoom,
    peer: Peer,
    rate: MessageRate,
    session: TokenSession,
) -> None:
    traffic = rooms.traffic
    async for msg in ws:
        if peer.closing:
            return
        try:
            if msg.type == WSMsgType.BINARY:
                over = rate.over(len(msg.data))
                if over is not None:
                    raise PolicyViolation(over)
                traffic.count_received(msg.data)
                rooms.receive(live, peer, msg.data)
            elif msg.type == WSMsgType.TEXT:
                raise UnsupportedMessage("text frames are not part of the y-websocket protocol")
            elif msg.type == WSMsgType.ERROR:
                log.warning("conn %s: closed with %s: %s", peer.peer_id, ws.close_code, msg.data)
                return
        except ProtocolError as error:
            if (
                isinstance(error, UnsupportedMessage)
                and msg.type == WSMsgType.BINARY
                and msg.data.startswith(AUTH_FRAME_PREFIX)
            ):
                # The room refuses auth frames; a token refresh is the connection's (here,
                # off the per-message path: only frames the room refused get this far).
                if await refresh_docs_connection(session, msg.data, live.room_id.partition("/")[0]):
                    continue
                return
            code = _close_code_for(error)
            log.warning("conn %s: closing with %d: %s", peer.peer_id, code, error)
            peer.request_close(code, str(error))
            return
        except Exception:
            # A bug of ours: this connection ends, the room and the process stay up.
            log.exception("conn %s: closing with 1011 after an internal error", peer.peer_id)
            peer.request_close(CloseCode.INTERNAL_ERROR, "internal error")
            return
