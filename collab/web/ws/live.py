"""`/ws/live`: the live channel for presence and notifications (JSON text frames).

The protocol is documented in docs/live-protocol.md. Auth happens before the upgrade like on
`/ws/docs`. A connection is attached to its user's notifications at once (replaying from
`?after=N`) and follows the presence of the workspaces it subscribes to. Bad input gets an
`error` frame naming what is wrong; only abuse (binary frames, oversized frames, floods)
closes the connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import orjson
from aiohttp import web

from collab.auth.tokens import Identity
from collab.errors import AuthError, BusError, ProtocolError, StoreError
from collab.observability.counters import LiveTraffic
from collab.observability.logging import conn_id_var
from collab.presence.base import MAX_STATUS_CHARS
from collab.protocol.close_codes import CloseCode
from collab.protocol.websocket import OPCODE_TEXT, OutgoingFrame
from collab.rooms.peer import OutboxLimits, Peer
from collab.tasks import spawn
from collab.web.http.connections import Slot
from collab.web.http.requests import authenticate, check_origin, decimal
from collab.web.keys import (
    CONNECTIONS,
    DIRECTORY,
    METRICS,
    NOTIFIER,
    PRESENCE,
    SESSIONS,
    SETTINGS,
)
from collab.web.sockets.rates import MessageRate
from collab.web.sockets.sessions import RefreshRefused, TokenSession
from collab.web.sockets.websocket import ServerWebSocket, accept_websocket, check_upgrade

log = logging.getLogger(__name__)

MAX_LIVE_MESSAGE_BYTES = 64 * 1024
MAX_SUBSCRIPTIONS = 50
MAX_READ_IDS = 500
# Per connection: a burst of 40 messages, then 20 per second; beyond that the client is
# broken or hostile and is closed (1008).
MESSAGE_BURST = 40
MESSAGES_PER_S = 20.0
# Status changes are rarer: a burst of 5, then one every 2 seconds, else an error frame.
STATUS_BURST = 5
STATUSES_PER_S = 0.5


class TokenBucket:
    def __init__(self, burst: int, rate_per_s: float) -> None:
        self._capacity = float(burst)
        self._tokens = float(burst)
        self._rate = rate_per_s
        self._at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


# Messages read ahead of the one being handled; beyond this the socket stops reading until
# the connection catches up (the flood limits close a client that keeps sending).
MAX_QUEUED_MESSAGES = 64


class LiveConnection:
    """One live-channel connection: the notifier's `LiveClient`, and the socket's handler,
    whose messages wait in order for the connection's task (their handling awaits the store
    and the bus)."""

    def __init__(
        self, identity: Identity, peer: Peer, socket: ServerWebSocket, traffic: LiveTraffic
    ) -> None:
        self.connection_id = peer.peer_id
        self.traffic = traffic
        self.user_id = identity.user_id
        self.identity = identity
        self.peer = peer
        self.socket = socket
        self.workspaces: set[str] = set()
        self.session: TokenSession | None = None
        self.task: asyncio.Task[None] | None = None
        # (opcode, payload) in arrival order; None once the socket is gone.
        self._messages: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        self._reading = True

    def send_event(self, event: dict[str, Any]) -> None:
        payload = orjson.dumps(event)
        self.traffic.count_sent(payload)
        if not self.peer.enqueue(OutgoingFrame(payload, opcode=OPCODE_TEXT)):
            log.warning("live %s: outbox over its bound; closing as too slow", self.connection_id)
            self.peer.request_close(CloseCode.TRY_AGAIN_LATER, "client too slow: outbox full")

    def on_message(self, opcode: int, payload: bytes) -> None:
        self._messages.put_nowait((opcode, payload))
        if self._reading and self._messages.qsize() >= MAX_QUEUED_MESSAGES:
            self._reading = False
            self.socket.pause_reading()

    def on_close(self) -> asyncio.Task[None] | None:
        self._messages.put_nowait(None)
        return self.task

    async def next_message(self) -> tuple[int, bytes] | None:
        message = await self._messages.get()
        if not self._reading and self._messages.qsize() < MAX_QUEUED_MESSAGES // 2:
            self._reading = True
            self.socket.resume_reading()
        return message


class LiveMessageError(ProtocolError):
    """A message the live channel refuses (malformed, unknown, not allowed or too frequent):
    answered with an `error` frame naming `code`; the connection stays open."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


async def ws_live(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    check_origin(request)
    identity = await authenticate(request, allow_query=True)
    after = decimal(request.query.get("after", "0"))
    if after is None:
        raise web.HTTPBadRequest(text="?after must be a notification id (a non-negative integer)")
    check_upgrade(request)
    connections = request.app[CONNECTIONS]
    connections.admit(request, identity.user_id)
    connection_id = uuid.uuid4().hex[:12]
    socket, response = await accept_websocket(
        request,
        max_message_bytes=MAX_LIVE_MESSAGE_BYTES,
        compress=settings.ws_compression,
        send_opcode=OPCODE_TEXT,
        kind="live",
        name=connection_id,
    )
    peer = Peer(
        connection_id,
        user_id=identity.user_id,
        can_write=False,
        transport=socket,
        limits=OutboxLimits.shared(settings.outbox_max_bytes, settings.outbox_max_frames),
    )
    connection = LiveConnection(identity, peer, socket, request.app[METRICS].live_traffic)
    # The operator's limits, on top of the channel's own stricter flood control.
    rate = connections.message_rate(socket, identity.user_id, MAX_LIVE_MESSAGE_BYTES)
    conn_id_var.set(connection.connection_id)
    socket.start(connection)
    # The request ends here; the connection's task serves the socket until it closes.
    connection.task = spawn(
        _serve(request.app, connection, after, rate, connections.take_slot(request)),
        name=f"live-{connection_id}",
    )
    return response


async def _serve(
    app: web.Application,
    connection: LiveConnection,
    after_id: int,
    rate: MessageRate,
    slot: Slot | None,
) -> None:
    notifier = app[NOTIFIER]
    presence = app[PRESENCE]
    identity = connection.identity
    peer = connection.peer
    log.info("live %s: user %s connected", connection.connection_id, identity.user_id)
    # Everything from here on inside the `try`: whatever fails, the cleanup runs and the
    # connection's slot is given back.
    try:
        connection.send_event(
            {
                "type": "welcome",
                "user": identity.user_id,
                "name": identity.name,
                "connection": connection.connection_id,
            }
        )
        presence.connect(connection.connection_id, identity.user_id, identity.name)
        connection.session = app[SESSIONS].open(peer, identity, kind="live")
        try:
            await notifier.attach(connection, after_id)
        except StoreError as error:
            log.warning("live %s: notifications unavailable: %s", connection.connection_id, error)
            connection.send_event(_error("unavailable", "notifications are unavailable; retry"))
        await _read_messages(app, connection, rate)
    finally:
        if connection.session is not None:
            connection.session.close()
        await notifier.detach(connection)
        for workspace_id in connection.workspaces:
            await presence.unsubscribe(workspace_id, connection)
        presence.disconnect(connection.connection_id)
        if not connection.socket.closing:
            # The loop ended on a bug or a cancel: the socket must not outlive its task.
            peer.request_close(CloseCode.INTERNAL_ERROR, "internal error")
        if peer.closing:
            await peer.wait_closed()
        else:
            await peer.stop()
        app[CONNECTIONS].release_slot(slot)
        log.info("live %s: closed (%s)", connection.connection_id, connection.socket.close_code)


async def _read_messages(
    app: web.Application, connection: LiveConnection, rate: MessageRate
) -> None:
    flood = TokenBucket(MESSAGE_BURST, MESSAGES_PER_S)
    statuses = TokenBucket(STATUS_BURST, STATUSES_PER_S)
    traffic = connection.traffic
    while (received := await connection.next_message()) is not None:
        opcode, data = received
        if connection.peer.closing:
            return
        if opcode != OPCODE_TEXT:
            _close(
                connection, CloseCode.UNSUPPORTED_DATA, "the live channel takes JSON text frames"
            )
            return
        traffic.count_received(data)
        over = rate.over(len(data))
        if over is not None:
            _close(connection, CloseCode.POLICY_VIOLATION, over)
            return
        if not flood.take():
            _close(connection, CloseCode.POLICY_VIOLATION, "too many messages")
            return
        ref: Any = None
        try:
            message = _parse(data)
            ref = message.get("ref")
            if not isinstance(message.get("type"), str):
                raise LiveMessageError("invalid_message", "a message needs a string field 'type'")
            await _handle(app, connection, message, statuses)
        except LiveMessageError as error:
            connection.send_event(_error(error.code, str(error), ref))
        except ValueError as error:
            # LocalPresence refuses what the checks above should already have caught.
            connection.send_event(_error("invalid_message", str(error), ref))
        except (StoreError, BusError) as error:
            log.warning("live %s: store failed: %s", connection.connection_id, error)
            connection.send_event(_error("unavailable", "the store is unavailable; retry", ref))
        except Exception:
            # A bug of ours: this connection ends, everything else goes on.
            log.exception(
                "live %s: closing with %d after an internal error",
                connection.connection_id,
                CloseCode.INTERNAL_ERROR,
            )
            _close(connection, CloseCode.INTERNAL_ERROR, "internal error")
            return


def _close(connection: LiveConnection, code: CloseCode, reason: str) -> None:
    log.warning("live %s: closing with %d: %s", connection.connection_id, code, reason)
    connection.peer.request_close(code, reason)


def _parse(data: bytes) -> dict[str, Any]:
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise LiveMessageError("invalid_json", f"not valid JSON: {error}") from None
    if not isinstance(message, dict):
        raise LiveMessageError("invalid_message", "a message must be a JSON object")
    return message


def _error(code: str, message: str, ref: Any = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if ref is not None:
        event["ref"] = ref
    return event


def _workspace_of(app: web.Application, connection: LiveConnection, message: dict[str, Any]) -> str:
    workspace_id = message.get("workspace")
    if not isinstance(workspace_id, str) or not workspace_id or len(workspace_id) > 128:
        raise LiveMessageError("invalid_message", "'workspace' must be a workspace id")
    try:
        app[DIRECTORY].role(connection.identity, workspace_id)
    except AuthError as error:
        raise LiveMessageError("forbidden", str(error)) from None
    return workspace_id


async def _handle(
    app: web.Application,
    connection: LiveConnection,
    message: dict[str, Any],
    statuses: TokenBucket,
) -> None:
    notifier = app[NOTIFIER]
    presence = app[PRESENCE]
    kind = message["type"]
    ref = message.get("ref")
    reply: dict[str, Any]
    if kind == "ping":
        reply = {"type": "pong"}
    elif kind == "subscribe":
        workspace_id = _workspace_of(app, connection, message)
        if workspace_id not in connection.workspaces:
            if len(connection.workspaces) >= MAX_SUBSCRIPTIONS:
                raise LiveMessageError(
                    "too_many_subscriptions", f"at most {MAX_SUBSCRIPTIONS} workspaces"
                )
            connection.workspaces.add(workspace_id)
            presence.join_workspace(connection.connection_id, workspace_id)
            # A member of it (the token may name more workspaces than are recorded at once).
            await app[DIRECTORY].seen_in(connection.identity, workspace_id)
        users = await presence.subscribe(workspace_id, connection)
        reply = {"type": "presence.snapshot", "workspace": workspace_id, "users": users}
    elif kind == "unsubscribe":
        workspace_id = _workspace_of(app, connection, message)
        if workspace_id in connection.workspaces:
            connection.workspaces.discard(workspace_id)
            presence.leave_workspace(connection.connection_id, workspace_id)
            await presence.unsubscribe(workspace_id, connection)
        reply = {"type": "unsubscribed", "workspace": workspace_id}
    elif kind == "presence.status":
        workspace_id = _workspace_of(app, connection, message)
        status = message.get("status")
        if status is not None and (not isinstance(status, str) or len(status) > MAX_STATUS_CHARS):
            raise LiveMessageError(
                "invalid_message", f"'status' must be null or at most {MAX_STATUS_CHARS} characters"
            )
        if workspace_id not in connection.workspaces:
            raise LiveMessageError("not_subscribed", f"subscribe to {workspace_id!r} first")
        if not statuses.take():
            raise LiveMessageError("rate_limited", "status changes too fast; at most one per 2 s")
        presence.set_status(connection.connection_id, workspace_id, status)
        reply = {"type": "presence.status.ok", "workspace": workspace_id}
    elif kind == "notifications.read":
        ids = message.get("ids")
        if (
            not isinstance(ids, list)
            or len(ids) > MAX_READ_IDS
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
        ):
            raise LiveMessageError(
                "invalid_message", f"'ids' must be a list of up to {MAX_READ_IDS} ids"
            )
        await notifier.mark_read(
            connection.user_id, ids, asked_by=connection.connection_id, ref=ref
        )
        return
    elif kind == "notifications.read_all":
        await notifier.mark_read(
            connection.user_id, None, asked_by=connection.connection_id, ref=ref
        )
        return
    elif kind == "refresh":
        if not await _refresh(connection, message):
            return
        reply = {"type": "refreshed", "expires_at": connection.identity.expires_at}
    else:
        raise LiveMessageError("unknown_type", f"unknown message type {kind[:64]!r}")
    if ref is not None:
        reply["ref"] = ref
    connection.send_event(reply)


async def _refresh(connection: LiveConnection, message: dict[str, Any]) -> bool:
    """A `refresh` message: adopt the new token of the same user, which must still grant a
    role in every subscribed workspace; else an error frame and close (4401/4403). Returns
    whether the connection stays open."""
    token = message.get("token")
    if not isinstance(token, str) or not token:
        raise LiveMessageError("invalid_message", "'token' must be a JWT string")
    session = connection.session
    assert session is not None  # set before any message is read
    try:
        identity = await session.verify_refresh(token)
        lost = sorted(w for w in connection.workspaces if w not in identity.workspaces)
        if lost:
            raise RefreshRefused(
                CloseCode.FORBIDDEN,
                f"refresh refused: the token grants no role in subscribed workspace {lost[0]!r}",
            )
    except RefreshRefused as refused:
        code = "forbidden" if refused.close_code == CloseCode.FORBIDDEN else "token_expired"
        connection.send_event(_error(code, str(refused), message.get("ref")))
        _close(connection, refused.close_code, str(refused))
        return False
    connection.identity = identity
    session.refreshed(identity)
    return True
