"""The token lifecycle of open WebSocket connections: expiry, in-band refresh, revocation.

Each connection of `/ws/docs` and `/ws/live` has one `TokenSession`, due to expire at its
token's `exp` (plus the leeway): moved by a refresh, forgotten on close, so nothing runs per
message. When it is due the connection is closed with 4401. The `Sessions` registry finds
every connection of a user, so a revocation closes them (4403).

Expiries are kept in buckets of `EXPIRY_GRANULARITY_S` with one loop timer for the earliest,
not one timer per connection: a timer handle costs about half a kilobyte, which thousands of
idle connections would pay for a close that comes at most a quarter of a second late.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
from collections.abc import Collection
from typing import Literal

from collab import few
from collab.auth.tokens import Identity, TokenVerifier
from collab.errors import AuthError, ForbiddenError, ProtocolError, UnsupportedMessage
from collab.protocol.close_codes import CloseCode
from collab.protocol.messages import decode_token_refresh, encode_permission_denied
from collab.protocol.websocket import OutgoingFrame
from collab.rooms.directory import MemberDirectory
from collab.rooms.peer import Peer
from collab.store.catalog import room_parts

log = logging.getLogger(__name__)

ConnectionKind = Literal["docs", "live"]
CONNECTION_KINDS: tuple[ConnectionKind, ...] = ("docs", "live")
# Log lines of the two endpoints name their connections "conn …" and "live …".
_LOG_PREFIX: dict[ConnectionKind, str] = {"docs": "conn", "live": "live"}

EXPIRED_REASON = "token expired; reconnect with a fresh token"
REVOKED_REASON = "access revoked"
EXPIRY_GRANULARITY_S = 0.25


class RefreshRefused(AuthError):
    """A refreshed token is not accepted; the connection closes with `close_code` (4401 or
    4403), the message as its reason."""

    def __init__(self, close_code: CloseCode, message: str) -> None:
        super().__init__(message)
        self.close_code = close_code


class TokenSession:
    """One connection's token: its identity, expiry timer and place in the registry."""

    __slots__ = ("_due_at", "_sessions", "identity", "kind", "peer", "room_id", "workspace_id")

    def __init__(
        self,
        sessions: Sessions,
        peer: Peer,
        identity: Identity,
        *,
        kind: ConnectionKind,
        room_id: str | None,
    ) -> None:
        self.peer = peer
        self.identity = identity
        self._sessions = sessions
        self.kind = kind
        # The note of a `/ws/docs` connection, and its workspace (a live connection spans
        # several workspaces and no note).
        self.room_id = room_id
        # Interned: the connections to a workspace's notes share it.
        self.workspace_id = None if room_id is None else sys.intern(room_parts(room_id)[0])
        # The expiry bucket it is in (see `Sessions`), if any.
        self._due_at: float | None = None

    @property
    def user_id(self) -> str:
        return self.identity.user_id

    def _schedule(self) -> None:
        self._sessions.unschedule(self)
        expires_at = self.identity.expires_at
        if expires_at is not None:
            # `exp` is wall-clock time; the loop's clock is monotonic.
            self._sessions.schedule(self, expires_at + self._sessions.leeway_s - time.time())

    def _expire(self) -> None:
        log.info(
            "%s %s: token expired; closing with %d",
            _LOG_PREFIX[self.kind],
            self.peer.peer_id,
            CloseCode.TOKEN_EXPIRED,
        )
        self.peer.request_close(CloseCode.TOKEN_EXPIRED, EXPIRED_REASON)

    async def verify_refresh(self, token: str) -> Identity:
        """The identity of a refreshed token for this connection's user. Raises
        `RefreshRefused` with 4401 (invalid or expired token) or 4403 (revoked, or another
        user). Checking a role is the caller's: it depends on the endpoint."""
        try:
            identity = await self._sessions.verifier.verify_fresh(token)
        except ForbiddenError as error:
            raise RefreshRefused(CloseCode.FORBIDDEN, str(error)) from None
        except AuthError as error:
            raise RefreshRefused(CloseCode.TOKEN_EXPIRED, f"refresh refused: {error}") from None
        if identity.user_id != self.user_id:
            raise RefreshRefused(
                CloseCode.FORBIDDEN, "refresh refused: the token is for another user"
            )
        return identity

    def refreshed(self, identity: Identity) -> None:
        """Adopt a verified token of the same user: its expiry replaces the old one."""
        self.identity = identity
        self._schedule()

    def close(self) -> None:
        """Leave the expiry buckets and the registry (on disconnect). Idempotent."""
        self._sessions.unschedule(self)
        self._sessions.discard(self)


class Sessions:
    """The open connections of this instance by user: for expiry, revocation and the
    connection metrics (the one registry of open WebSocket connections)."""

    def __init__(self, verifier: TokenVerifier, *, leeway_s: float) -> None:
        self.verifier = verifier
        self.leeway_s = leeway_s
        # Most users have one connection here: no set for them (`Few`).
        self._by_user: dict[str, few.Few[TokenSession]] = {}
        self.opened_total: dict[ConnectionKind, int] = dict.fromkeys(CONNECTION_KINDS, 0)
        # Sessions by the loop time their bucket is due, and the timer of the earliest.
        self._due: dict[float, set[TokenSession]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def schedule(self, session: TokenSession, delay_s: float) -> None:
        """Expire `session` (close it with 4401) in `delay_s`, rounded up to the bucket."""
        loop = asyncio.get_running_loop()
        granularity = EXPIRY_GRANULARITY_S
        due_at = math.ceil((loop.time() + max(delay_s, 0.0)) / granularity) * granularity
        self._due.setdefault(due_at, set()).add(session)
        session._due_at = due_at
        if self._timer is None or due_at < self._timer_at:
            self._arm(loop, due_at)

    def unschedule(self, session: TokenSession) -> None:
        due_at, session._due_at = session._due_at, None
        if due_at is None:
            return
        bucket = self._due.get(due_at)
        if bucket is not None:
            bucket.discard(session)
            if not bucket:
                del self._due[due_at]

    def _arm(self, loop: asyncio.AbstractEventLoop, due_at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = loop.call_at(due_at, self._expire_due), due_at

    def _expire_due(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        # uvloop's clock counts milliseconds: a timer may fire a fraction of one early.
        now = loop.time() + 0.001
        for due_at in sorted(at for at in self._due if at <= now):
            for session in self._due.pop(due_at):
                session._due_at = None
                session._expire()
        if self._due:
            self._arm(loop, min(self._due))

    def open(
        self,
        peer: Peer,
        identity: Identity,
        *,
        kind: ConnectionKind,
        room_id: str | None = None,
    ) -> TokenSession:
        """Register a connection that just authenticated (`room_id`: a document connection's
        note) and start its expiry timer. A user revoked while the upgrade was in
        progress (awaiting the room or the handshake, after the token check) is closed at
        once."""
        session = TokenSession(self, peer, identity, kind=kind, room_id=room_id)
        user_id = identity.user_id
        self._by_user[user_id] = few.with_member(self._by_user.get(user_id), session)
        self.opened_total[kind] += 1
        if self.verifier.revocations.revoked_until(identity.user_id) is not None:
            peer.request_close(CloseCode.FORBIDDEN, REVOKED_REASON)
        session._schedule()
        return session

    def discard(self, session: TokenSession) -> None:
        user_id = session.user_id
        if user_id not in self._by_user:
            return
        sessions = few.without_member(self._by_user[user_id], session)
        if sessions is None:
            del self._by_user[user_id]
        else:
            self._by_user[user_id] = sessions

    def close_user(self, user_id: str, code: CloseCode, reason: str) -> int:
        """Close every connection of the user; return how many."""
        sessions = list(few.members(self._by_user.get(user_id)))
        for session in sessions:
            session.peer.request_close(code, reason)
        return len(sessions)

    def in_workspace(self, user_id: str, workspace_id: str) -> list[TokenSession]:
        """The user's connections that reach into a workspace: document connections to its
        notes, and live connections whose token names it (they may be subscribed)."""
        return [
            session
            for session in few.members(self._by_user.get(user_id))
            if session.workspace_id == workspace_id
            or (session.kind == "live" and workspace_id in session.identity.workspaces)
        ]

    def in_rooms(self, room_ids: Collection[str]) -> list[TokenSession]:
        """The document connections to these notes."""
        return [
            session
            for group in self._by_user.values()
            for session in few.members(group)
            if session.room_id is not None and session.room_id in room_ids
        ]

    def peers(self, kind: ConnectionKind) -> list[Peer]:
        """The peers of the open connections of one kind (read at scrape time)."""
        return [
            s.peer for group in self._by_user.values() for s in few.members(group) if s.kind == kind
        ]

    def __len__(self) -> int:
        return sum(len(few.members(group)) for group in self._by_user.values())


async def refresh_docs_connection(
    session: TokenSession, frame: bytes, workspace_id: str, directory: MemberDirectory
) -> bool:
    """Handle a `/ws/docs` client's auth frame: a token refresh (`[2][1][token]`). On
    success the new role takes effect (a viewer stops writing) and the expiry moves; the
    client is sent nothing. Otherwise the client gets y-protocols' permission-denied message
    and the connection is closed (4401, 4403, or 1003/1007 for a malformed frame). Returns
    whether the connection stays open."""
    peer = session.peer
    try:
        refresh = decode_token_refresh(frame)
        identity = await session.verify_refresh(refresh.token)
        try:
            role = directory.role(identity, workspace_id)
        except ForbiddenError as error:
            raise RefreshRefused(CloseCode.FORBIDDEN, f"refresh refused: {error}") from None
    except ProtocolError as error:
        code = (
            CloseCode.UNSUPPORTED_DATA
            if isinstance(error, UnsupportedMessage)
            else CloseCode.INVALID_PAYLOAD
        )
        log.warning("conn %s: closing with %d: %s", peer.peer_id, code, error)
        peer.request_close(code, str(error))
        return False
    except RefreshRefused as refused:
        reason = str(refused)
        log.info("conn %s: closing with %d: %s", peer.peer_id, refused.close_code, reason)
        # Best effort: a frame still queued behind a slow socket is dropped by the close.
        peer.enqueue(OutgoingFrame(encode_permission_denied(reason)))
        peer.request_close(refused.close_code, reason)
        return False
    peer.can_write = role.can_write
    session.refreshed(identity)
    log.info("conn %s: token refreshed (%s)", peer.peer_id, role.value)
    return True
