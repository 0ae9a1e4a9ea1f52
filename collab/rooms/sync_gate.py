"""A bound on the large initial syncs in flight, so a join storm on a big note is a queue.

After a deploy or an outage everyone opens the same note at once. Each joiner with an empty
document gets the whole state in one message: the room encodes it once per version (see
`DocumentRoom.encoded_state`) and this gate builds its WebSocket frame once, so N joiners of
a 20 MB note share one 20 MB frame instead of holding N copies. Writing it to N sockets at
once would still keep every one of them busy for the whole storm, and the edits of every
other room would queue behind those writes. So at most `max_in_flight` large syncs are being
written at a time; the other joiners wait in order of arrival (their sockets carry the
room's live updates meanwhile, which the Yjs client keeps until the state arrives). A sync
counts until the joiner's socket has taken it (its buffer drained below the low-water
mark) or the joiner is gone.

Memory is bounded by design: the frames in flight are shared per version, a waiting joiner
holds a reference to a frame, not a copy, and a connection waits for one frame at most. A
frame being written counts against the connection's outbox bound like any other, but a
waiting one does not yet; so a connection that asks again for the whole state (sync step 1)
while its first answer waits, each time after an edit made a new version, would otherwise
keep a copy of the note per question. The later answer replaces the earlier one in its
place in line: it holds everything the earlier one did that the connection may lack (the
document only grows, and so does what the client had when it asked). A connection with any
other large message waiting as well is closed as too slow.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from collab.protocol.messages import MessageType, SyncMessageType
from collab.protocol.websocket import OutgoingFrame
from collab.rooms.peer import Peer

log = logging.getLogger(__name__)

# Below this, a sync is written at once like any message: the gate is for the big notes.
LARGE_SYNC_BYTES = 1024 * 1024
# Shared frames kept for reuse: a storm is usually on one note, sometimes on a few.
SHARED_FRAMES = 4
_SYNC_STEP2 = bytes((MessageType.SYNC, SyncMessageType.STEP2))


@dataclass(slots=True)
class _Waiting:
    peer: Peer
    frame: OutgoingFrame


class SyncGate:
    """Sends large sync messages, at most `max_in_flight` at a time (see the module doc).
    `on_slow` is told of a peer whose outbox refused the frame (it is closed as too slow)."""

    def __init__(self, max_in_flight: int, on_slow: Callable[[Peer], None]) -> None:
        self.max_in_flight = max_in_flight
        self._on_slow = on_slow
        self._in_flight = 0
        self._waiting: deque[_Waiting] = deque()
        self._waiting_by_peer: dict[str, _Waiting] = {}
        # Recently built frames by payload, the payload object itself kept for the identity
        # check (the room hands out the same bytes object for every joiner of a version).
        self._shared: deque[tuple[bytes, OutgoingFrame]] = deque(maxlen=SHARED_FRAMES)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def send(self, peer: Peer, payload: bytes) -> None:
        """Send `payload` to `peer`, now or when a slot is free."""
        frame = self._frame_of(payload)
        earlier = self._waiting_by_peer.get(peer.peer_id)
        if earlier is not None:
            if payload.startswith(_SYNC_STEP2) and earlier.frame.payload.startswith(_SYNC_STEP2):
                earlier.frame = frame  # the later answer holds the earlier's (module doc)
            else:
                self._on_slow(peer)
        elif self._in_flight < self.max_in_flight:
            self._start(peer, frame)
        else:
            waiting = _Waiting(peer, frame)
            self._waiting.append(waiting)
            self._waiting_by_peer[peer.peer_id] = waiting

    def forget(self, peer: Peer) -> None:
        """`peer` left: it no longer waits for a slot."""
        if self._waiting_by_peer.pop(peer.peer_id, None) is not None:
            self._waiting = deque(w for w in self._waiting if w.peer is not peer)

    async def close(self) -> None:
        """Forget the waiting joiners (their connections are closing) and stop waiting."""
        self._waiting.clear()
        self._waiting_by_peer.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _frame_of(self, payload: bytes) -> OutgoingFrame:
        for shared_payload, frame in self._shared:
            if shared_payload is payload:
                return frame
        frame = OutgoingFrame(payload)
        self._shared.append((payload, frame))
        return frame

    def _start(self, peer: Peer, frame: OutgoingFrame) -> None:
        self._in_flight += 1
        if not peer.enqueue(frame):
            self._on_slow(peer)
        task = asyncio.create_task(self._until_sent(peer), name=f"sync-{peer.peer_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _until_sent(self, peer: Peer) -> None:
        try:
            await peer.wait_sent()
        except Exception as error:  # a socket error ends this sync like a close
            log.debug("peer %s: initial sync ended: %s", peer.peer_id, error)
        finally:
            self._in_flight -= 1
            self._next()

    def _next(self) -> None:
        while self._waiting and self._in_flight < self.max_in_flight:
            waiting = self._waiting.popleft()
            del self._waiting_by_peer[waiting.peer.peer_id]
            if waiting.peer.closing:
                continue
            self._start(waiting.peer, waiting.frame)
