"""A connected peer: a bounded outbox drained by its own writer task.

The room never awaits a socket: it puts the (shared, encoded-once) frame in each peer's
outbox and moves on. A peer whose outbox goes over its bound is closed with 1013
(try again later); its client reconnects and resyncs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from collab.protocol.close_codes import CloseCode

log = logging.getLogger(__name__)


class PeerTransport(Protocol):
    async def send_frame(self, frame: bytes) -> None:
        """Send one binary frame; returns once the socket accepted it."""

    async def close(self, code: CloseCode, reason: str) -> None:
        """Close the connection with `code` and `reason`."""


@dataclass(frozen=True, slots=True)
class OutboxLimits:
    max_bytes: int
    max_frames: int


class Peer:
    """One connection of a room: identity, write permission and outbound queue."""

    def __init__(
        self,
        peer_id: str,
        *,
        user_id: str,
        can_write: bool,
        transport: PeerTransport,
        limits: OutboxLimits,
    ) -> None:
        self.peer_id = peer_id
        self.user_id = user_id
        self.can_write = can_write
        self._transport = transport
        self._limits = limits
        self._frames: deque[bytes] = deque()
        self._queued_bytes = 0
        self._wakeup = asyncio.Event()
        self._close_request: tuple[CloseCode, str] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    @property
    def closing(self) -> bool:
        return self._close_request is not None

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name=f"writer-{self.peer_id}")

    def enqueue(self, frame: bytes) -> bool:
        """Queue a frame. Returns False (and queues nothing) when the peer is over its bound."""
        if self._close_request is not None:
            return True
        over = (
            len(self._frames) >= self._limits.max_frames
            or self._queued_bytes + len(frame) > self._limits.max_bytes
        )
        # An empty outbox always takes one frame, so a large initial sync still goes out.
        if over and self._frames:
            return False
        self._frames.append(frame)
        self._queued_bytes += len(frame)
        self._wakeup.set()
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
            self._wakeup.set()
            self._closer = asyncio.create_task(
                self._transport.close(code, reason), name=f"close-{self.peer_id}"
            )

    async def wait_closed(self) -> None:
        """Wait until the writer stopped and the close handshake ended (or was abandoned)."""
        tasks = [task for task in (self._writer, self._closer) if task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Stop the writer without closing the socket (the socket is already gone)."""
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    async def _write_loop(self) -> None:
        try:
            while self._close_request is None:
                if not self._frames:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                frame = self._frames.popleft()
                self._queued_bytes -= len(frame)
                await self._transport.send_frame(frame)
        except (ConnectionError, RuntimeError) as error:
            # The socket is gone; the reader side sees it too and unregisters the peer.
            log.debug("peer %s: send failed: %s", self.peer_id, error)
