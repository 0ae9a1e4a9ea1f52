"""The durable "saved" echo: a connection that asks for it (`?saved=1`) gets each update it
sent back, as a sync Update message, once the store holds it.

A room's echoes wait in its `SavedEchoes`, oldest first, each for one of two things that the
group commit (`collab.rooms.commit`) reports:

- a **log position**: the room's update log must hold everything queued up to and including
  the update (`LiveRoom.written_updates` counts the queued updates written so far);
- a **snapshot**, when the log will not hold it: the backlog it was queued in collapsed while
  the store was down, or it brought nothing new while the room holds changes no log has. The
  first compaction that starts after the echo was added stores it.

Echoes are released oldest first, none overtaking another; each peer gets the updates
released for it in one message (`echo_frames`). Every update entering this module was applied
to the room's document (or was already in it), so they merge; should the CRDT library refuse
to, they go out one by one.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

from pycrdt import merge_updates

from collab.protocol.messages import encode_update

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SavedEcho:
    serial: int
    peer_id: str
    update: bytes
    # The `written_updates` the room's log must reach, or None: a snapshot must store it.
    position: int | None


class SavedEchoes:
    """One room's echoes waiting for the store, oldest first."""

    __slots__ = ("_next_serial", "_waiting")

    def __init__(self) -> None:
        self._waiting: deque[SavedEcho] = deque()
        self._next_serial = 0

    def __len__(self) -> int:
        return len(self._waiting)

    @property
    def next_serial(self) -> int:
        """The serial the next echo gets: a compaction that starts now stores every echo
        below it."""
        return self._next_serial

    def add(self, peer_id: str, update: bytes, position: int | None) -> None:
        self._waiting.append(SavedEcho(self._next_serial, peer_id, update, position))
        self._next_serial += 1

    def need_snapshot(self) -> None:
        """The room's backlog collapsed: only a snapshot stores what every waiting echo holds."""
        for echo in self._waiting:
            echo.position = None

    def take_written(self, written_updates: int) -> list[SavedEcho]:
        """Remove and return the echoes the log holds once `written_updates` were written."""
        taken: list[SavedEcho] = []
        waiting = self._waiting
        while waiting:
            position = waiting[0].position
            if position is None or position > written_updates:
                break
            taken.append(waiting.popleft())
        return taken

    def take_snapshotted(self, below_serial: int) -> list[SavedEcho]:
        """Remove and return the echoes a snapshot that started at `below_serial` stored."""
        taken: list[SavedEcho] = []
        waiting = self._waiting
        while waiting and waiting[0].serial < below_serial:
            taken.append(waiting.popleft())
        return taken

    def fold(self) -> None:
        """Merge the waiting echoes into one per peer, each waiting for the last of those it
        merges: the store is down and a peer's echoes must not grow with its edits."""
        by_peer: dict[str, list[SavedEcho]] = {}
        for echo in self._waiting:
            by_peer.setdefault(echo.peer_id, []).append(echo)
        folded = []
        for peer_id, echoes in by_peer.items():
            positions = [echo.position for echo in echoes]
            position = None if None in positions else max(p for p in positions if p is not None)
            try:
                update = echo_update([echo.update for echo in echoes])
            except ValueError as error:
                log.warning("saved echo: %d updates do not merge: %s", len(echoes), error)
                folded.extend(echoes)
                continue
            folded.append(SavedEcho(echoes[-1].serial, peer_id, update, position))
        folded.sort(key=lambda echo: echo.serial)
        self._waiting = deque(folded)


def by_peer(echoes: list[SavedEcho]) -> dict[str, list[bytes]]:
    """The released updates of each peer, oldest first."""
    updates: dict[str, list[bytes]] = {}
    for echo in echoes:
        updates.setdefault(echo.peer_id, []).append(echo.update)
    return updates


def echo_update(updates: list[bytes]) -> bytes:
    """One update with the content of all of `updates`. Raises `ValueError` if the CRDT
    library cannot merge them."""
    if len(updates) == 1:
        return updates[0]
    return merge_updates(*updates)


def echo_frames(updates: list[bytes]) -> list[bytes]:
    """The Update messages that echo `updates` to their sender: one, unless the library
    refuses to merge them (then one each, which says the same)."""
    try:
        return [encode_update(echo_update(updates))]
    except ValueError as error:
        log.warning("saved echo: %d updates do not merge, sent one by one: %s", len(updates), error)
        return [encode_update(update) for update in updates]
