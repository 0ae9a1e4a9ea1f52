"""`/ws/docs/{workspace_id}/{note_id}`: the y-websocket endpoint.

Auth, role, the note's lifecycle and room load all happen before the upgrade, so a refused
client gets an HTTP status (400 for a bad `?saved`, 401, 403, 404 `note_trashed`, 410
`note_purged`, 503) and no socket. `?saved=1` asks for each of the connection's updates back
once the store holds it (`collab.rooms.saved`). After the upgrade, each frame goes to the room
manager; bad input closes only this connection, with a close code and a reason, logged once.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from collab.errors import DocumentTooLarge, PolicyViolation, ProtocolError, UnsupportedMessage
from collab.observability.logging import conn_id_var
from collab.protocol.close_codes import CloseCode
from collab.protocol.messages import AUTH_FRAME_PREFIX, is_update_frame, merge_update_frames
from collab.protocol.websocket import OPCODE_BINARY
from collab.rooms.manager import LiveRoom
from collab.rooms.peer import Coalescing, OutboxLimits, Peer
from collab.store.catalog import room_parts
from collab.tasks import spawn
from collab.web.http.connections import Slot
from collab.web.http.requests import authenticate, check_origin, private_note_of
from collab.web.keys import (
    CATALOG,
    CONNECTIONS,
    DIRECTORY,
    PRESENCE,
    ROOMS,
    SESSIONS,
    SETTINGS,
)
from collab.web.sockets.rates import MessageRate
from collab.web.sockets.recheck import recheck_session
from collab.web.sockets.sessions import TokenSession, refresh_docs_connection
from collab.web.sockets.websocket import ServerWebSocket, accept_websocket, check_upgrade

# The logger keeps the name it had before the web layer was split: operators filter on it.
log = logging.getLogger("collab.web.ws_docs")

UPDATE_COALESCING = Coalescing(mergeable=is_update_frame, merge=merge_update_frames)


def _close_code_for(error: ProtocolError) -> CloseCode:
    if isinstance(error, UnsupportedMessage):
        return CloseCode.UNSUPPORTED_DATA
    if isinstance(error, DocumentTooLarge):
        return CloseCode.MESSAGE_TOO_BIG
    if isinstance(error, PolicyViolation):
        return CloseCode.POLICY_VIOLATION
    return CloseCode.INVALID_PAYLOAD


def _asks_saved_echo(request: web.Request) -> bool:
    """Whether the upgrade asks for the saved echo (`?saved=1`); 400 for any other value."""
    values = request.query.getall("saved", [])
    if any(value != "1" for value in values):
        raise web.HTTPBadRequest(
            text="parameter 'saved': use 1 (each update comes back once stored) or leave it out"
        )
    return bool(values)


async def ws_docs(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    rooms = request.app[ROOMS]
    presence = request.app[PRESENCE]
    connections = request.app[CONNECTIONS]
    check_origin(request)
    identity = await authenticate(request, allow_query=True)
    room_id, role, private = await private_note_of(request, identity)
    # A member of the note's workspace, however many workspaces the token names.
    await request.app[DIRECTORY].seen_in(identity, room_parts(room_id)[0])
    saved_echo = _asks_saved_echo(request)
    check_upgrade(request)
    if role.can_write:
        rooms.budget.check(identity.user_id)
    connections.admit(request, identity.user_id)
    catalog = request.app[CATALOG]
    await catalog.check_open(room_id)
    peer_id = uuid.uuid4().hex[:12]
    live = await rooms.acquire(room_id)
    try:
        # Deleted while this request awaited: its close went to the peers already joined.
        catalog.check_known(room_id)
        socket, response = await accept_websocket(
            request,
            max_message_bytes=settings.max_message_bytes,
            compress=settings.ws_compression,
            kind="conn",
            name=peer_id,
        )
    except BaseException:
        rooms.release(live)
        raise
    # Set once the connection is open: a refusal above is not a connection's line.
    conn_id_var.set(peer_id)
    peer = Peer(
        peer_id,
        user_id=identity.user_id,
        can_write=role.can_write,
        transport=socket,
        limits=OutboxLimits.shared(settings.outbox_max_bytes, settings.outbox_max_frames),
        coalescing=UPDATE_COALESCING,
        saved_echo=saved_echo,
    )
    connection = DocsConnection(
        request.app,
        socket,
        live,
        peer,
        connections.message_rate(socket, identity.user_id, settings.max_message_bytes),
        connections.take_slot(request),
    )
    try:
        log.info("conn %s: user %s joined %s as %s", peer_id, identity.user_id, room_id, role.value)
        rooms.join(live, peer)
        workspace_id, note_id = room_parts(live.room_id)
        # A private note is not announced: presence would tell its id to the whole workspace.
        if not private:
            # Interned (and below, the room's own id rather than this request's copy): the
            # connections to a note share one of each.
            workspace_id, note_id = sys.intern(workspace_id), sys.intern(note_id)
            presence.open_note(peer_id, identity.user_id, identity.name, workspace_id, note_id)
        connection.session = request.app[SESSIONS].open(
            peer, identity, kind="docs", room_id=live.room_id
        )
    except Exception:
        # A bug of ours after the upgrade: the client gets 1011 like any connection that hits
        # one, and the connection's cleanup (on close) undoes whichever steps were done.
        log.exception(
            "conn %s: closing with %d after an internal error on join",
            peer_id,
            CloseCode.INTERNAL_ERROR,
        )
        peer.request_close(CloseCode.INTERNAL_ERROR, "internal error")
    socket.start(connection)
    # The request ends here, without awaiting anything after the upgrade (see
    # `accept_websocket`); the socket lives on in `connection` until it closes.
    return response


class DocsConnection:
    """One `/ws/docs` connection after the upgrade: every message goes to the room as it
    arrives; bad input closes only this connection, with a close code and a reason."""

    __slots__ = (
        "_app",
        "_held",
        "_live",
        "_peer",
        "_rate",
        "_rooms",
        "_slot",
        "_socket",
        "_traffic",
        "session",
    )

    def __init__(
        self,
        app: web.Application,
        socket: ServerWebSocket,
        live: LiveRoom,
        peer: Peer,
        rate: MessageRate,
        slot: Slot | None,
    ) -> None:
        self._app = app
        self._socket = socket
        self._rooms = app[ROOMS]
        self._live = live
        self._peer = peer
        self._rate = rate
        self._slot = slot
        # Registered right after the peer joins; None only if joining failed (the peer is
        # then closing and no message reaches the room).
        self.session: TokenSession | None = None
        self._traffic = self._rooms.traffic
        # Messages that arrived while a token refresh was being verified or a large update
        # tried in the trial worker, in order.
        self._held: list[bytes] | None = None

    def on_message(self, opcode: int, payload: bytes) -> None:
        peer = self._peer
        if peer.closing:
            return
        if self._held is not None:
            self._held.append(payload)
            return
        try:
            if opcode != OPCODE_BINARY:
                raise UnsupportedMessage("text frames are not part of the y-websocket protocol")
            over = self._rate.over(len(payload))
            if over is not None:
                raise PolicyViolation(over)
            self._traffic.count_received(payload)
            tried = self._rooms.receive(self._live, peer, payload)
            if tried is not None:
                # Later messages wait until this update is applied or refused.
                self._held = []
                self._socket.pause_reading()
                spawn(self._finish(tried), name=f"update-{peer.peer_id}")
        except ProtocolError as error:
            if isinstance(error, UnsupportedMessage) and payload.startswith(AUTH_FRAME_PREFIX):
                # The room refuses auth frames; a token refresh is the connection's (here,
                # off the per-message path: only frames the room refused get this far).
                # Later messages wait until the new role is known.
                self._held = []
                self._socket.pause_reading()
                spawn(self._refresh(payload), name=f"refresh-{peer.peer_id}")
                return
            self._close_for(error)
        except Exception:
            self._close_for_bug()

    def _close_for(self, error: ProtocolError) -> None:
        code = _close_code_for(error)
        log.warning("conn %s: closing with %d: %s", self._peer.peer_id, code, error)
        self._peer.request_close(code, str(error))

    def _close_for_bug(self) -> None:
        # A bug of ours: this connection ends, the room and the process stay up.
        log.exception(
            "conn %s: closing with %d after an internal error",
            self._peer.peer_id,
            CloseCode.INTERNAL_ERROR,
        )
        self._peer.request_close(CloseCode.INTERNAL_ERROR, "internal error")

    async def _finish(self, tried: Coroutine[Any, Any, bool]) -> None:
        """Await an update tried in the worker, then go on with the messages held meanwhile."""
        stays_open = False
        try:
            await tried
            stays_open = not self._peer.closing
        except ProtocolError as error:
            self._close_for(error)
        except Exception:
            self._close_for_bug()
        self._release_held(stays_open)

    async def _refresh(self, frame: bytes) -> None:
        workspace_id, _ = room_parts(self._live.room_id)
        assert self.session is not None  # a closing peer's messages never get here
        stays_open = await refresh_docs_connection(
            self.session, frame, workspace_id, self._app[DIRECTORY]
        )
        if stays_open:
            # The note's own access still caps the new role (the frames held meanwhile are
            # applied after, with the role decided).
            await recheck_session(self._app, self.session)
            stays_open = not self._peer.closing
        self._release_held(stays_open)

    def _release_held(self, stays_open: bool) -> None:
        held, self._held = self._held or [], None
        self._socket.resume_reading()
        if not stays_open:
            return
        for index, payload in enumerate(held):
            self.on_message(OPCODE_BINARY, payload)
            if self._held is not None:  # held again: the rest waits behind it
                self._held.extend(held[index + 1 :])
                return

    def on_close(self) -> Coroutine[Any, Any, None]:
        return self._gone()

    async def _gone(self) -> None:
        peer, live, rooms = self._peer, self._live, self._rooms
        if self.session is not None:
            self.session.close()
        self._app[PRESENCE].close_note(peer.peer_id)
        rooms.leave(live, peer)
        try:
            if peer.closing:
                await peer.wait_closed()
            else:
                await peer.stop()
        finally:
            self._app[CONNECTIONS].release_slot(self._slot)
            rooms.release(live)
        log.info(
            "conn %s: left %s (close code %s)", peer.peer_id, live.room_id, self._socket.close_code
        )
