"""A loaded room as the manager holds it (`LiveRoom`), the limits every room runs under
(`RoomLimits`), and what a document-change listener is told (`DocumentChange`)."""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from collab.rooms.document import DocumentRoom
from collab.rooms.peer import Peer
from collab.rooms.saved import SavedEchoes


@dataclass(frozen=True, slots=True)
class RoomLimits:
    flush_interval_s: float = 0.1
    flush_max_batch: int = 512
    compact_after_updates: int = 1000
    # How soon a room's changes made on other instances are stored here too (see
    # `LiveRoom.remote_changes_at`).
    remote_backup_s: float = 2.0
    grace_s: float = 10.0
    max_awareness_state_bytes: int = 64 * 1024
    max_document_bytes: int = 0
    max_pending_per_room: int = 10_000
    awareness_timeout_s: float = 30.0
    # 0: every awareness message is relayed as it comes; see `collab.rooms.awareness`.
    awareness_batch_s: float = 0.0
    awareness_max_per_s: float = 0.0
    # Large initial syncs written at a time (see `collab.rooms.sync_gate`).
    max_initial_syncs: int = 8
    max_apply_s: float = 0.1
    apply_s_per_s: float = 0.25
    apply_burst_s: float = 1.0
    throttle_s: float = 60.0


@dataclass(eq=False)
class LiveRoom:
    """A loaded room with its local peers and the updates not yet in the store."""

    room: DocumentRoom
    peers: dict[str, Peer] = field(default_factory=dict)
    holders: int = 0
    pending: list[bytes] = field(default_factory=list)
    # The users whose edits the room's logged updates carry: `pending_authors` parallel to
    # `pending`; `authors_new`, not yet among the note's authors since its last version in
    # the store; `authors_recorded`, already there (until a version takes them).
    pending_authors: list[str | None] = field(default_factory=list)
    authors_new: set[str] = field(default_factory=set)
    authors_recorded: set[str] = field(default_factory=set)
    logged_updates: int = 0
    # This document's number in the store (`Held`): the updates the group commit
    # logs from it and the snapshots that are its exact state carry it, so its compactions
    # neither read nor merge them. Drawn per load: a later load of the note is another
    # document, which merges what this one stored.
    writer: int = field(default_factory=lambda: secrets.randbits(63))
    # The `stored_digest` of what the document was loaded from, until its first compaction:
    # if the store still holds exactly that, the document holds it too.
    loaded: bytes | None = None
    # Updates of `pending` written to the store since the room was loaded.
    written_updates: int = 0
    # The durable "saved" echo (`collab.rooms.saved`): the local peers that asked for it, and
    # their updates waiting for the store.
    saved_peers: set[str] = field(default_factory=set)
    saved_echoes: SavedEchoes = field(default_factory=SavedEchoes)
    # When a change made on another instance first reached the document since this instance
    # last stored the room. That instance logs it; this one stores it as well, by a compaction
    # at a flush at least `remote_backup_s` later or at unload, in case that instance died
    # before its flush. Not at every flush: a room edited on two instances would rewrite its
    # whole state every `flush_interval_s` on both.
    remote_changes_at: float | None = None
    # The document holds changes neither the log nor `pending` has (a backlog collapsed while
    # the store was down, part of a refused bus update): the next flush compacts.
    unsaved_state: bool = False
    unload_timer: asyncio.TimerHandle | None = None
    # Armed while the room's awareness batch waits for its tick.
    awareness_timer: asyncio.TimerHandle | None = None
    unloading: asyncio.Task[None] | None = None
    # Set once the room is unloaded: its document is no longer the note's.
    dropped: bool = False
    # Bus frames that arrived while a large bus update was read in the trial worker, and
    # whether some were dropped for going over MAX_BUS_BACKLOG (then a resync follows).
    bus_backlog: list[bytes] | None = None
    bus_resync_due: bool = False
    # Digests of large updates the room took whole, most recent last (see `_edit_tried`).
    known_updates: OrderedDict[bytes, None] = field(default_factory=OrderedDict)

    # The room's id, read several times on every edit: an attribute, not a property.
    room_id: str = field(init=False)

    def __post_init__(self) -> None:
        self.room_id = self.room.room_id


# Not frozen: one is made on every change, and a frozen dataclass's `__init__` costs three
# times a plain one's. Listeners read it and keep nothing of it.
@dataclass(slots=True)
class DocumentChange:
    """A change applied to a room's document, as listeners get it.

    - `live`: the room (its document already holds the change);
    - `actor`: the user who made it, when known (None for the server's own changes and for
      changes that came from another instance);
    - `local`: whether it was made on this instance (by one of its clients, or a REST
      request it served), which then logs it to the store as its own update. Each change is
      local to exactly one instance; listeners that must act once per change across
      instances (notifications, the catalog) act on local changes only."""

    live: LiveRoom
    actor: str | None
    local: bool


ChangeListener = Callable[[DocumentChange], None]
"""Told of every change applied to a loaded room, in registration order, on the event loop:
it must not block (listeners that do I/O schedule it)."""

UnloadListener = Callable[[LiveRoom], None]
"""Told of each room as it is unloaded (after its final flush), on the event loop; it must
not block."""
