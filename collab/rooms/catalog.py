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
  messages the other instances deliver to theirs. An event of a private note carries its
  readers (its creator and share list) and reaches only their connections: nobody else learns
  its id or title from the live channel.

The rows themselves are kept by the `CatalogIndexer`, whose writes become `note.created` and
`note.updated` here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pycrdt import Doc

from collab.auth.tokens import Role
from collab.bus.base import Bus
from collab.errors import BusError, NotePurged, NoteTrashed, RoomUnavailable, StoreError
from collab.protocol.close_codes import CloseCode
from collab.rooms.access import note_role
from collab.rooms.indexer import CatalogIndexer
from collab.rooms.manager import RoomManager
from collab.rooms.note_fields import note_fields
from collab.store.base import Store
from collab.store.catalog import (
    CatalogEntry,
    CatalogStore,
    Indexed,
    NoteAccess,
    NoteStatus,
    Visibility,
    room_parts,
)
from collab.store.rows import format_timestamp
from collab.tasks import cancel_and_wait

log = logging.getLogger(__name__)

BUS_ROOM = "notes:catalog"
RETENTION_CHECK_S = 3600.0
PURGE_PAGE = 100
# Rooms this instance knows were deleted, checked without a query right before a connection
# joins (a trash that lands between the upgrade's check and the join still closes it).
MAX_KNOWN_GONE = 100_000

Audience = Callable[[str], bool]
"""Whether a user's live connections get an event."""

EventSink = Callable[[str, dict[str, Any], Audience | None], None]
"""Delivers one live event to this instance's subscribers of a workspace: all of them, or
(for a private note's event) those of the users the audience admits."""


EventListener = Callable[[dict[str, Any]], None]
"""Told of every catalog event on this instance, its own and other instances' alike, before
it is delivered (the version history keeps up with versions taken elsewhere this way)."""

AccessListener = Callable[[str, NoteAccess], None]
"""Told `(room_id, access)` on every instance after a note's access changed: the web layer
re-checks the note's open connections."""


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
        on_access: AccessListener = lambda room_id, access: None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._deliver = deliver
        self._on_access = on_access
        self._trash_retention_s = trash_retention_s
        self.indexer = CatalogIndexer(
            store, documents, interval_s=interval_s, on_indexed=self._indexed
        )
        self._rooms: RoomManager | None = None
        self._gone: dict[str, NoteStatus] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Task[None]] = set()
        self._event_listeners: list[EventListener] = []

    def add_event_listener(self, listener: EventListener) -> None:
        self._event_listeners.append(listener)

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
        if self._pending:
            await asyncio.wait(list(self._pending))
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

    async def role_on(
        self, room_id: str, user_id: str, workspace_role: Role
    ) -> tuple[Role | None, NoteAccess | None]:
        """The user's role on the note (`rooms.access.note_role`: None when its access does
        not let them read it), with the access it was decided by (None: the note has no
        entry). The one place a role on a note is decided. Raises `RoomUnavailable` when the
        store fails."""
        workspace_id, note_id = room_parts(room_id)
        try:
            access = await self._store.get_access(workspace_id, note_id)
        except StoreError as error:
            raise RoomUnavailable(f"room {room_id!r} cannot be opened: {error}") from error
        return note_role(workspace_role, access, user_id), access

    async def can_read(self, room_id: str, user_id: str) -> bool:
        """Whether the note's access lets the user read it (their workspace role aside).
        Raises `StoreError`."""
        workspace_id, note_id = room_parts(room_id)
        access = await self._store.get_access(workspace_id, note_id)
        return access is None or access.can_read(user_id)

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
        self._event("note.created", workspace_id, None, note=entry.to_json())
        return entry

    async def trash(self, workspace_id: str, note_id: str) -> CatalogEntry | None:
        """Move a note to the trash; None when it has no catalog entry. Closes its
        connections everywhere. Raises `StoreError`."""
        entry = await self._store.trash_note(workspace_id, note_id, at=format_timestamp())
        if entry is None:
            return None
        readers = await self._readers(entry)
        self._event("note.trashed", workspace_id, readers, note=entry.to_json())
        return entry

    async def restore(self, workspace_id: str, note_id: str) -> CatalogEntry | None:
        entry = await self._store.restore_note(workspace_id, note_id)
        if entry is None:
            return None
        readers = await self._readers(entry)
        self._event("note.restored", workspace_id, readers, note=entry.to_json())
        return entry

    async def set_access(
        self,
        workspace_id: str,
        note_id: str,
        *,
        visibility: Visibility,
        users: Mapping[str, str],
    ) -> NoteAccess | None:
        """Change who may read a note, then apply it on every instance: connections of those
        who lost it close with 4403, the others write or not by their new role, and live
        subscribers who lose (or gain) sight of the note are told (`note.hidden`,
        `note.shown`). None for a note with no catalog entry. Raises `StoreError`."""
        before = await self._store.get_access(workspace_id, note_id)
        if before is None:
            return None
        after = await self._store.set_access(
            workspace_id, note_id, visibility=visibility, users=users, at=format_timestamp()
        )
        if after is None:
            return None
        entry = await self._store.get_note(workspace_id, note_id)
        self._event(
            "note.access",
            workspace_id,
            None,
            id=note_id,
            before=_readers_of(before),
            after=_readers_of(after),
            access=_access_json(after),
            note=None if entry is None else entry.to_json(),
        )
        return after

    async def purge(self, workspace_id: str, note_id: str) -> bool:
        """Delete a note for good; False when there was nothing to delete. Raises
        `StoreError`."""
        # Read before the purge: afterwards the note's access is gone with it.
        access = await self._store.get_access(workspace_id, note_id)
        if not await self._store.purge_note(workspace_id, note_id, at=format_timestamp()):
            return False
        readers = _readers_of(access)
        self._event("note.purged", workspace_id, readers, id=note_id)
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

    async def note_event(self, kind: str, workspace_id: str, note_id: str, **fields: Any) -> None:
        """Tell those who may read a note of an event about it (`version.created`, say), on
        every instance. Raises `StoreError`."""
        access = await self._store.get_access(workspace_id, note_id)
        self._event(kind, workspace_id, _readers_of(access), id=note_id, **fields)

    def _indexed(self, room_id: str, indexed: Indexed) -> None:
        workspace_id, _ = room_parts(room_id)
        if indexed.status in (NoteStatus.TRASHED, NoteStatus.PURGED):
            # Edited after its deletion: a connection the deletion's message missed. Only a
            # purge is remembered here: this reading may predate a restore made meanwhile
            # (a room indexed as it unloads), and remembering it would refuse the restored
            # note; opening a note asks the store anyway.
            if indexed.status is NoteStatus.PURGED:
                self._remember_gone(room_id, indexed.status)
            self._close_connections(room_id)
            return
        if indexed.entry is None:
            return
        kind = "note.created" if indexed.created else "note.updated"
        entry = indexed.entry
        if entry.visibility is Visibility.WORKSPACE:
            self._event(kind, workspace_id, None, note=entry.to_json())
        else:
            # Its readers are read first; events of one note may then pass each other, as
            # events of two instances may: clients order entries by `updated_at`.
            task = asyncio.create_task(self._private_event(kind, entry), name="catalog-event")
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _private_event(self, kind: str, entry: CatalogEntry) -> None:
        try:
            readers = await self._readers(entry)
        except StoreError as error:
            log.warning("catalog: %s of a private note not sent: %s", kind, error)
            return
        self._event(kind, entry.workspace_id, readers, note=entry.to_json())

    async def _readers(self, entry: CatalogEntry) -> list[str] | None:
        """Who may see a private note's events (None: everyone). Raises `StoreError`."""
        if entry.visibility is Visibility.WORKSPACE:
            return None
        return _readers_of(await self._store.get_access(entry.workspace_id, entry.note_id))

    def _event(
        self, kind: str, workspace_id: str, readers: list[str] | None, **fields: Any
    ) -> None:
        """Apply an event here and publish it to the other instances (`readers`: the only
        users who may see it, for a private note's)."""
        event = {"type": kind, "workspace": workspace_id, **fields}
        if readers is not None:
            event["readers"] = readers
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
        for listener in self._event_listeners:
            try:
                listener(event)
            except Exception:
                log.exception("catalog: an event listener failed on %s", kind)
        if kind == "note.access":
            self._access_changed(workspace_id, event)
            return
        # A copy without its readers: the event itself is published as it is.
        event = dict(event)
        readers = event.pop("readers", None)
        if readers is not None and not (
            isinstance(readers, list) and all(isinstance(r, str) for r in readers)
        ):
            log.warning("catalog: dropped an event with invalid readers from the bus")
            return
        if readers is None:
            self._deliver(workspace_id, event, None)
        else:
            allowed = frozenset(readers)
            self._deliver(workspace_id, event, allowed.__contains__)

    def _access_changed(self, workspace_id: str, event: dict[str, Any]) -> None:
        try:
            note_id = event["id"]
            access = _access_from_json(event["access"])
            before, after = _readers_or_all(event["before"]), _readers_or_all(event["after"])
            note = event.get("note")
            if not isinstance(note_id, str) or not (note is None or isinstance(note, dict)):
                raise TypeError("id or note")
        except (KeyError, TypeError, ValueError) as error:
            log.warning("catalog: dropped an invalid access event from the bus: %s", error)
            return
        try:
            self._on_access(f"{workspace_id}/{note_id}", access)
        except Exception:
            log.exception("catalog: applying the access of %s/%s failed", workspace_id, note_id)

        def lost(user_id: str) -> bool:
            return (before is None or user_id in before) and not (after is None or user_id in after)

        def gained(user_id: str) -> bool:
            return (after is None or user_id in after) and not (before is None or user_id in before)

        hidden = {"type": "note.hidden", "workspace": workspace_id, "id": note_id}
        self._deliver(workspace_id, hidden, lost)
        if note is not None:
            shown = {"type": "note.shown", "workspace": workspace_id, "note": note}
            self._deliver(workspace_id, shown, gained)

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


def _readers_or_all(value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("readers")
    return frozenset(value)


def _access_json(access: NoteAccess) -> dict[str, Any]:
    return {
        "visibility": access.visibility.value,
        "users": dict(access.users),
        "created_by": access.created_by,
    }


def _access_from_json(value: Any) -> NoteAccess:
    if not isinstance(value, dict):
        raise TypeError("access")
    users = value["users"]
    created_by = value["created_by"]
    if not isinstance(users, dict) or not all(
        isinstance(k, str) and v in ("editor", "viewer") for k, v in users.items()
    ):
        raise TypeError("users")
    if created_by is not None and not isinstance(created_by, str):
        raise TypeError("created_by")
    return NoteAccess(Visibility(value["visibility"]), users, created_by)


def _readers_of(access: NoteAccess | None) -> list[str] | None:
    """A note's readers as an event carries them (None: everyone)."""
    readers = None if access is None else access.readers()
    return None if readers is None else sorted(readers)


def _doc_of(update: bytes) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    return doc
