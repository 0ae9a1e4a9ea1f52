"""A connected peer: direct writes while its socket keeps up, a bounded outbox when not.

The room never awaits a socket. A message for a peer whose socket is keeping up goes straight
to the kernel (`PeerTransport.write_now`, the frame built once for the whole room); only
when the socket falls behind does the message wait in the peer's outbox, drained by the
peer's writer task as the socket drains. Queued document updates are merged into one frame
as they go out, so a peer that fell behind catches up with fewer, larger frames. A peer whose
outbox goes over its bound is closed with 1013 (try again later); its client reconnects and
resyncs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from collab.protocol.close_codes import CloseCode
from collab.protocol.websocket import OutgoingFrame
from collab.rooms.effects import PeerOrigin

log = logging.getLogger(__name__)


class PeerTransport(Protocol):
    def write_now(self, frame: OutgoingFrame) -> bool:
        """Write the frame at once if the socket takes it without backlog; False if not
        (the frame is then queued and sent later with `send_frame`)."""

    async def drain(self) -> None:
        """Wait until the socket takes more data."""

    async def send_frame(self, frame: bytes) -> None:
        """Send one frame's payload; returns once the socket accepted it."""

    async def close(self, code: CloseCode, reason: str) -> None:
        """Close the connection with `code` and `reason`."""


# Enough to catch up quickly, few enough that one merge never holds the event loop for long.
MAX_FRAMES_PER_MERGE = 256


@dataclass(frozen=True, slots=True)
class Coalescing:
    """How queued payloads combine: runs of `mergeable` ones go out as one `merge`d payload."""

    mergeable: Callable[[bytes], bool]
    merge: Callable[[list[bytes]], bytes]


# The shared outbox of every peer that has not queued a frame yet; never appended to.
_NO_FRAMES: deque[bytes] = deque(maxlen=0)


@dataclass(frozen=True, slots=True)
class OutboxLimits:
    max_bytes: int
    max_frames: int

    @staticmethod
    @lru_cache(maxsize=16)
    def shared(max_bytes: int, max_frames: int) -> OutboxLimits:
        """The one instance for these limits that every peer holds, rather than one each."""
        return OutboxLimits(max_bytes, max_frames)


class Peer:
    """One connection of a room: identity, write permission and outbound queue."""

    # Thousands per instance: no per-object __dict__.
    __slots__ = (
        "_close_request",
        "_closer",
        "_coalescing",
        "_frames",
        "_limits",
        "_queued_bytes",
        "_transport",
        "_writer",
        "coalesced_frames",
        "origin",
        "peer_id",
        "saved_echo",
        "user_id",
    )

    def __init__(
        self,
        peer_id: str,
        *,
        user_id: str,
        can_write: bool,
        transport: PeerTransport,
        limits: OutboxLimits,
        coalescing: Coalescing | None = None,
        saved_echo: bool = False,
    ) -> None:
        self.peer_id = peer_id
        self.user_id = user_id
        # Asked for each of its updates back once stored (`collab.rooms.saved`).
        self.saved_echo = saved_echo
        # What the room is told of each message's sender; built once, not per message.
        self.origin = PeerOrigin(peer_id, can_write)
        self._transport = transport
        self._limits = limits
        self._coalescing = coalescing
        # Most peers never queue anything; an empty deque costs ~600 bytes per connection.
        self._frames: deque[bytes] = _NO_FRAMES
        self._queued_bytes = 0
        self._close_request: tuple[CloseCode, str] | None = None
        # Runs only while the outbox holds frames: an idle connection costs no task.
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self.coalesced_frames = 0

    @property
    def can_write(self) -> bool:
        return self.origin.can_write

    @can_write.setter
    def can_write(self, can_write: bool) -> None:
        """A role change (token refresh) applies from the next message on."""
        self.origin = PeerOrigin(self.peer_id, can_write)

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    @property
    def queued_frames(self) -> int:
        return len(self._frames)

    @property
    def closing(self) -> bool:
        return self._close_request is not None

    def enqueue(self, frame: OutgoingFrame) -> bool:
        """Send or queue a frame. Returns False (and queues nothing) when the peer is over its
        bound."""
        if self._close_request is not None:
            return True
        writing = self._writer is not None
        # While the writer runs, a direct write could overtake the frame it is sending.
        if not writing and not self._frames and self._transport.write_now(frame):
            return True
        payload = frame.payload
        over = (
            len(self._frames) >= self._limits.max_frames
            or self._queued_bytes + len(payload) > self._limits.max_bytes
        )
        # An empty outbox always takes one frame, so a large initial sync still goes out.
        if over and self._frames:
            return False
        if self._frames is _NO_FRAMES:
            self._frames = deque()
        self._frames.append(payload)
        self._queued_bytes += len(payload)
        if not writing:
            self._writer = asyncio.create_task(self._write_outbox(), name=f"writer-{self.peer_id}")
        return True

    def request_close(self, code: CloseCode, reason: str) -> None:
        """Close the connection now; frames still queued are dropped.

        The close runs beside the writer rather than after it, because the writer may be
        stuck sending to a client that stopped reading.
        """
        if self._close_request is None:
            self._close_request = (code, reason)
            self._frames.clear()
            self._queued_bytes = 0
            self._closer = asyncio.create_task(
                self._transport.close(code, reason), name=f"close-{self.peer_id}"
            )

    async def wait_closed(self) -> None:
        """Wait until the writer stopped and the close handshake ended (or was abandoned)."""
        tasks = [task for task in (self._writer, self._closer) if task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_sent(self) -> None:
        """Wait until everything queued so far was handed to the socket and its buffer drained
        (or the connection is closing or gone: raises `ConnectionError` then, maybe)."""
        while self._writer is not None and self._close_request is None:
            await asyncio.shield(self._writer)
        if self._close_request is None:
            await self._transport.drain()

    async def stop(self) -> None:
        """Stop the writer without closing the socket (the socket is already gone)."""
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    def _take_next(self) -> bytes:
        """The next payload to send: the outbox's first, merged with the mergeable run behind
        it."""
        first = self._frames.popleft()
        coalescing = self._coalescing
        if coalescing is None or not coalescing.mergeable(first):
            self._queued_bytes -= len(first)
            return first
        run = [first]
        while (
            self._frames
            and len(run) < MAX_FRAMES_PER_MERGE
            and coalescing.mergeable(self._frames[0])
        ):
            run.append(self._frames.popleft())
        self._queued_bytes -= sum(len(payload) for payload in run)
        if len(run) == 1:
            return first
        self.coalesced_frames += len(run) - 1
        return coalescing.merge(run)

    async def _write_outbox(self) -> None:
        """Send the outbox as the socket drains; frames arriving meanwhile go out merged."""
        try:
            while self._frames and self._close_request is None:
                await self._transport.drain()
                if self._frames and self._close_request is None:
                    await self._transport.send_frame(self._take_next())
        except (ConnectionError, RuntimeError) as error:
            # The socket is gone; the reader side sees it too and unregisters the peer.
            log.debug("peer %s: send failed: %s", self.peer_id, error)
        finally:
            if self._close_request is None:
                # Direct writes may resume. (A closing peer keeps its task for wait_closed.)
                self._writer = None
