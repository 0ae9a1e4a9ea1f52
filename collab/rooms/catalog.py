"""The notes catalog as a service: note lifecycle, access to deleted notes, live events.

`NotesCatalog` is what the web handlers talk to:

- **Lifecycle.** `create` (a new note with content), `trash`, `restore`, `purge`; and, every
  `RETENTION_CHECK_S`, purging what has been in the trash for `trash_retention_s`.
- **Deleted notes are refused** (`check_open`): a trashed note's document answers 404
  `note_trashed`, a purged one's 410 `note_purged`, on every instance. A trash or purge closes
  the note's connections on every instance with 4404.
- **Live events.** `note.created`, `note.updated`, `note.trashed`, `note.restored` and
  `note.purged` reach the live connections subscribed to the workspace on every instance:
  each event is delivered here and published on the bus room `notes:catalog`, whose
  messages the other instances deliver to theirs.

The rows themselves are kept by the `CatalogIndexer`, whose writes become `note.created` and
`note.updated` here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pycrdt import Doc

from collab.bus.base import Bus
from collab.errors import BusError, NotePurged, NoteTrashed, RoomUnavailable, StoreError
from collab.protocol.close_codes import CloseCode
from collab.rooms.indexer import CatalogIndexer
from collab.rooms.manager import RoomManager
from collab.rooms.note_fields import note_fields
from collab.store.base import Store
from collab.store.catalog import CatalogEntry, CatalogStore, Indexed, NoteStatus, room_parts
from collab.store.rows import format_timestamp
from collab.tasks import cancel_and_wait

log = logging.getLogger(__name__)

BUS_ROOM = "notes:catalog"
RETENTION_CHECK_S = 3600.0
PURGE_PAGE = 100
# Rooms this instance knows were deleted, checked without a query right before a connection
# joins (a trash that lands between the upgrade's check and the join still closes it).
MAX_KNOWN_GONE = 100_000

EventSink = Callable[[str, dict[str, Any]], None]
"""Delivers one live event to this instance's subscribers of a workspace."""


class NotesCatalog:
    def __init__(
        self,
        store: CatalogStore,
        documents: Store,
        bus: Bus,
        *,
        interval_s: float,
        trash_retention_s: float,
        deliver: EventSink,
    ) -> None:
        self._store = store
        self._bus = bus
        self._deliver = deliver
        self._trash_retention_s = trash_retention_s
        self.indexer = CatalogIndexer(
            store, documents, interval_s=interval_s, on_indexed=self._indexed
        )
        self._rooms: RoomManager | None = None
        self._gone: dict[str, NoteStatus] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def bind(self, rooms: RoomManager) -> None:
        """The room manager is built with the indexer as a listener, so it comes second."""
        self._rooms = rooms

    @property
    def rooms(self) -> RoomManager:
        if self._rooms is None:
            raise RuntimeError("NotesCatalog used before its rooms were bound")
        return self._rooms

    async def start(self) -> None:
        await self._bus.subscribe(BUS_ROOM, self._on_bus_message, self._on_bus_resync)
        self._tasks = [
            asyncio.create_task(self._catch_up(), name="catalog-catch-up"),
            asyncio.create_task(self._retention_loop(), name="catalog-retention"),
        ]

    async def close(self) -> None:
        """After the rooms closed: index what is dirty, stop the background tasks."""
        await cancel_and_wait(self._tasks)
        await self.indexer.close()
        try:
            await self._bus.unsubscribe(BUS_ROOM)
        except BusError as error:
            log.warning("catalog: bus unsubscribe failed: %s", error)

    async def _catch_up(self) -> None:
        try:
            written = await self.indexer.catch_up()
        except StoreError as error:
            log.warning("catalog: notes stored before were not indexed at start: %s", error)
            return
        if written:
            log.info("catalog: indexed %d stored notes that had no catalog entry", written)

    # -- access ------------------------------------------------------------------------------

    async def check_open(self, room_id: str) -> NoteStatus:
        """Raise `NoteTrashed` or `NotePurged` for a deleted note; return its status
        (`ABSENT` for a note never created: opening it creates nothing until an edit).
        Raises `RoomUnavailable` when the store fails, as a failed load does."""
        try:
            status = await self._store.note_status(room_id)
        except StoreError as error:
            raise RoomUnavailable(f"room {room_id!r} cannot be opened: {error}") from error
        self.check_known(room_id, status)
        return status

    def check_known(self, room_id: str, status: NoteStatus | None = None) -> None:
        """Raise for a room this instance knows was deleted (no query)."""
        status = status or self._gone.get(room_id)
        if status is NoteStatus.TRASHED:
            raise NoteTrashed(room_id, f"note {room_id!r} is in the trash; restore it first")
        if status is NoteStatus.PURGED:
            raise NotePurged(room_id, f"note {room_id!r} was deleted for good")

    async def entry(self, workspace_id: str, note_id: str) -> CatalogEntry | None:
        """The note's catalog entry (trashed or not); a note edited but not indexed yet is
        indexed first. None for a note that never existed; raises `NotePurged`, `StoreError`."""
        entry = await self._store.get_note(workspace_id, note_id)
        if entry is not None:
            return entry
        room_id = f"{workspace_id}/{note_id}"
        status = await self._store.note_status(room_id)
        self.check_known(room_id, status if status is NoteStatus.PURGED else None)
        if status is not NoteStatus.ACTIVE:
            return None
        live = self.rooms.get(room_id)
        await self.indexer.index_now(room_id, live)
        return await self._store.get_note(workspace_id, note_id)

    # -- lifecycle ---------------------------------------------------------------------------

    async def create(
        self, workspace_id: str, note_id: str, content: bytes, actor: str
    ) -> CatalogEntry | None:
        """Create a note whose document starts as `content` (a Yjs update from the server);
        None when the id exists or existed (in the catalog, the store, or a loaded room).
        Raises `StoreError` and what `apply_server_update` raises."""
        room_id = f"{workspace_id}/{note_id}"
        loaded = self.rooms.get(room_id)
        if loaded is not None and loaded.room.version:
            return None  # edited moments ago, not stored yet
        fields = note_fields(_doc_of(content))
        entry = await self._store.create_note(
            workspace_id, note_id, fields, actor=actor, at=format_timestamp()
        )
        if entry is None:
            return None
        async with self.rooms.holding(room_id) as live:
            await self.rooms.apply_server_update(live, content, actor)
        self._event("note.created", workspace_id, note=entry.to_json())
        return entry

    async def trash(self, workspace_id: str, note_id: str) -> CatalogEntry | None:
        """Move a note to the trash; None when it has no catalog entry. Closes its
        connections everywhere. Raises `StoreError`."""
        entry = await self._store.trash_note(workspace_id, note_id, at=format_timestamp())
        if entry is None:
            return None
        self._event("note.trashed", workspace_id, note=entry.to_json())
        return entry

    async def restore(self, workspace_id: str, note_id: str) -> CatalogEntry | None:
        entry = await self._store.restore_note(workspace_id, note_id)
        if entry is None:
            return None
        self._event("note.restored", workspace_id, note=entry.to_json())
        return entry

    async def purge(self, workspace_id: str, note_id: str) -> bool:
        """Delete a note for good; False when there was nothing to delete. Raises
        `StoreError`."""
        if not await self._store.purge_note(workspace_id, note_id, at=format_timestamp()):
            return False
        self._event("note.purged", workspace_id, id=note_id)
        return True

    async def purge_expired(self, now: datetime | None = None) -> int:
        """Purge notes trashed more than `trash_retention_s` ago; how many. Raises
        `StoreError`."""
        now = now or datetime.now(UTC)
        cutoff = format_timestamp(now - timedelta(seconds=self._trash_retention_s))
        purged = 0
        while rooms := await self._store.trashed_before(cutoff, limit=PURGE_PAGE):
            for room_id in rooms:
                purged += await self.purge(*room_parts(room_id))
            if len(rooms) < PURGE_PAGE:
                break
        return purged

    async def _retention_loop(self) -> None:
        while True:
            try:
                purged = await self.purge_expired()
            except StoreError as error:
                log.warning("catalog: purging the expired trash failed: %s", error)
            else:
                if purged:
                    log.info("catalog: purged %d notes trashed long ago", purged)
            await asyncio.sleep(RETENTION_CHECK_S)

    # -- events ------------------------------------------------------------------------------

    def _indexed(self, room_id: str, indexed: Indexed) -> None:
        workspace_id, _ = room_parts(room_id)
        if indexed.status in (NoteStatus.TRASHED, NoteStatus.PURGED):
            # Edited after its deletion: a connection the deletion's message missed.
            self._remember_gone(room_id, indexed.status)
            self._close_connections(room_id)
            return
        if indexed.entry is None:
            return
        kind = "note.created" if indexed.created else "note.updated"
        self._event(kind, workspace_id, note=indexed.entry.to_json())

    def _event(self, kind: str, workspace_id: str, **fields: Any) -> None:
        """Apply an event here and publish it to the other instances."""
        event = {"type": kind, "workspace": workspace_id, **fields}
        self._apply(event)
        try:
            self._bus.publish(BUS_ROOM, orjson.dumps(event))
        except BusError as error:
            log.warning("catalog: %s not published: %s", kind, error)

    def _on_bus_message(self, _room_id: str, frame: bytes) -> None:
        try:
            event = orjson.loads(frame)
            if not isinstance(event, dict) or not isinstance(event.get("workspace"), str):
                raise ValueError("not a catalog event")
        except ValueError as error:
            log.warning("catalog: dropped a bus message that is not an event: %s", error)
            return
        self._apply(event)

    def _on_bus_resync(self, _room_id: str) -> None:
        # Lost trash or purge messages are covered: every connection is checked against the
        # store when it opens, and the indexer closes those that edit a deleted note.
        log.info("catalog: bus messages may have been lost")

    def _apply(self, event: dict[str, Any]) -> None:
        workspace_id = event["workspace"]
        kind = event.get("type")
        note = event.get("note")
        note_id = note.get("id") if isinstance(note, dict) else event.get("id")
        if isinstance(note_id, str):
            room_id = f"{workspace_id}/{note_id}"
            if kind == "note.trashed":
                self._remember_gone(room_id, NoteStatus.TRASHED)
                self._close_connections(room_id)
            elif kind == "note.purged":
                self._remember_gone(room_id, NoteStatus.PURGED)
                self._close_connections(room_id)
            elif kind == "note.restored":
                self._gone.pop(room_id, None)
        self._deliver(workspace_id, event)

    def _remember_gone(self, room_id: str, status: NoteStatus) -> None:
        self._gone.pop(room_id, None)
        self._gone[room_id] = status
        if len(self._gone) > MAX_KNOWN_GONE:
            del self._gone[next(iter(self._gone))]

    def _close_connections(self, room_id: str) -> None:
        if self._rooms is not None:
            closed = self._rooms.close_peers(room_id, CloseCode.NOTE_DELETED, "note deleted")
            if closed:
                log.info("room %s: closed %d connections: the note was deleted", room_id, closed)


def _doc_of(update: bytes) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    return doc
