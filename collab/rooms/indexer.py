"""The catalog indexer: keeps each note's catalog row in step with its document, off the
editing path.

It is a change listener (`document_changed`). An edit only marks its note dirty: one timer,
armed by the first change after a pass, indexes every dirty note `interval_s` later, so a
note is indexed at most once per interval however fast it is edited, and a thousand busy
notes cost one wakeup. Indexing reads the note's fields from the room's document
(`note_fields`) and writes them with the document's clock (the sum of its state vector).

Which instance indexes: the one that stores the edit. A note becomes this instance's to index
with its first local change (a client's edit or a REST edit made here), and stays so while
the room is loaded, for other instances' changes too: two instances editing one note both
index it, and the store keeps the row of the later state (the larger clock), so they agree.
A room that unloads dirty is indexed then (an unload listener), and on shutdown every dirty
note is.

At start, notes stored before the catalog existed (or while it failed) are indexed from the
store (`catch_up`); `collab reindex` rebuilds rows the same way (`reindex`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pycrdt import Doc, merge_updates

from collab.errors import StoreError
from collab.protocol.updates import read_state_vector
from collab.rooms.live import DocumentChange, LiveRoom
from collab.rooms.note_fields import note_fields
from collab.store.base import Store
from collab.store.catalog import CatalogStore, Indexed, NoteFields, NoteReading, room_parts
from collab.store.rows import format_timestamp

log = logging.getLogger(__name__)

CATCH_UP_PAGE = 100
# Documents up to this encoded size are read on the event loop; larger ones (whose bodies
# take thousands of node visits to read) from a copy, in a thread.
INLINE_INDEX_BYTES = 16 * 1024
# A document whose state vector sums to this or less holds at most this many items, live or
# deleted: read in place without encoding it first.
INLINE_INDEX_CLOCK = 16 * 1024
# Notes of a pass written by one `index_notes` call.
INDEX_BATCH = 500

IndexedListener = Callable[[str, Indexed], None]
"""Told `(room_id, what index_note did)` after each write of a row."""


@dataclass(slots=True)
class _Dirty:
    live: LiveRoom
    actor: str | None
    changed_at: float
    """Unix time of the last change (formatted only when the entry is written)."""


@dataclass(slots=True)
class _LastRead:
    """The fields last read from a loaded room, at its `NoteWatch.generation`."""

    live: LiveRoom
    generation: int
    fields: NoteFields


class CatalogIndexer:
    def __init__(
        self,
        store: CatalogStore,
        documents: Store,
        *,
        interval_s: float,
        on_indexed: IndexedListener,
    ) -> None:
        self._store = store
        self._documents = documents
        self._interval_s = interval_s
        self._on_indexed = on_indexed
        self._dirty: dict[str, _Dirty] = {}
        # Rooms with a local change since they were loaded: this instance indexes them.
        self._ours: dict[str, LiveRoom] = {}
        # Of loaded rooms: a note no change reached the fields of since is not read again.
        self._last_read: dict[str, _LastRead] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._pass: asyncio.Task[None] | None = None
        self._unloading: set[asyncio.Task[None]] = set()
        self._store_failing = False
        # Read by the metrics collector at scrape time.
        self.indexed_notes = 0
        self.index_seconds = 0.0
        self.failures = 0

    @property
    def dirty_notes(self) -> int:
        return len(self._dirty)

    # -- the change listener -----------------------------------------------------------------

    def document_changed(self, change: DocumentChange) -> None:
        # On every edit: a few dictionary lookups, no formatting, no allocation once dirty.
        live = change.live
        room_id = live.room_id
        if change.local:
            if self._ours.get(room_id) is not live:
                self._ours[room_id] = live
        elif self._ours.get(room_id) is not live:
            return  # another instance's edit of a note it indexes
        dirty = self._dirty.get(room_id)
        if dirty is None or dirty.live is not live:
            self._dirty[room_id] = _Dirty(live, change.actor, time.time())
            self._arm()
            return
        if change.actor is not None:
            dirty.actor = change.actor
        dirty.changed_at = time.time()

    def room_unloaded(self, live: LiveRoom) -> None:
        """An unload listener: a room that unloads dirty is indexed now, not at the next
        pass, and is no longer this instance's to index."""
        if self._ours.get(live.room_id) is live:
            del self._ours[live.room_id]
        last = self._last_read.get(live.room_id)
        if last is not None and last.live is live:
            del self._last_read[live.room_id]
        dirty = self._dirty.get(live.room_id)
        if dirty is None or dirty.live is not live:
            return
        del self._dirty[live.room_id]
        task = asyncio.create_task(self._index_final(live.room_id, dirty), name="catalog-unload")
        self._unloading.add(task)
        task.add_done_callback(self._unloading.discard)

    async def _index_final(self, room_id: str, dirty: _Dirty) -> None:
        try:
            await self._index_live(room_id, dirty)
        except StoreError as error:
            self.failures += 1
            log.warning("catalog: %s not indexed on unload, retried: %s", room_id, error)
            self._dirty.setdefault(room_id, dirty)
            self._arm()
        except Exception:
            log.exception("catalog: indexing %s on unload failed", room_id)

    def _arm(self) -> None:
        if self._timer is None and self._pass is None:
            self._timer = asyncio.get_running_loop().call_later(self._interval_s, self._due)

    def _due(self) -> None:
        self._timer = None
        self._pass = asyncio.create_task(self.index_dirty(), name="catalog-index")
        self._pass.add_done_callback(self._pass_done)

    def _pass_done(self, task: asyncio.Task[None]) -> None:
        self._pass = None
        if not task.cancelled() and task.exception() is not None:
            log.error("catalog indexing failed", exc_info=task.exception())
        if self._dirty:
            self._arm()

    async def index_dirty(self) -> None:
        """Index every dirty note now: what the timer runs each interval."""
        dirty, self._dirty = self._dirty, {}
        read: list[tuple[str, _Dirty, NoteReading]] = []
        for room_id, entry in dirty.items():
            try:
                read.append((room_id, entry, await self._read(room_id, entry)))
            except Exception:
                # Our bug, for this note: the others are still indexed.
                log.exception("catalog: reading %s failed", room_id)
        # The notes of a pass go to the store together: those whose listed fields did not
        # change (most: an edit of the body moves the excerpt, a cursor's edit nothing) in
        # one statement, not a round trip each.
        for start in range(0, len(read), INDEX_BATCH):
            batch = read[start : start + INDEX_BATCH]
            try:
                written = await self._store.index_notes([reading for _, _, reading in batch])
            except StoreError as error:
                # Kept dirty (unless changed again meanwhile) for the next pass.
                for room_id, entry, _ in batch:
                    self._dirty.setdefault(room_id, entry)
                self.failures += len(batch)
                if not self._store_failing:
                    log.warning("catalog: indexing paused, the store failed: %s", error)
                self._store_failing = True
                continue
            if self._store_failing:
                log.info("catalog: indexing resumed")
                self._store_failing = False
            for (room_id, _, _), indexed in zip(batch, written, strict=True):
                self._indexed(room_id, indexed)

    async def _index_live(self, room_id: str, dirty: _Dirty) -> None:
        reading = await self._read(room_id, dirty)
        self._indexed(room_id, (await self._store.index_notes([reading]))[0])

    async def _read(self, room_id: str, dirty: _Dirty) -> NoteReading:
        """The note's fields and clock from its loaded room."""
        started = time.perf_counter()
        live = dirty.live
        room = live.room
        clock = room.content_clock
        generation = room.note_watch.generation
        last = self._last_read.get(room_id)
        if last is not None and last.live is live and last.generation == generation:
            # No change reached `meta` or `body` since: the fields are those read then
            # (most edits of a busy room; the row still takes the new clock and time).
            fields = last.fields
            self.index_seconds += time.perf_counter() - started
        else:
            # A document that never held more than INLINE_INDEX_CLOCK items (characters,
            # map values...) is read in place, unencoded: most notes. Encoding only to learn
            # the size cost a pass more than reading the fields.
            state = None if clock <= INLINE_INDEX_CLOCK else room.encoded_state()
            if state is None or len(state) <= INLINE_INDEX_BYTES:
                fields = note_fields(room.doc)
                self.index_seconds += time.perf_counter() - started
            else:
                # Reading a large body walks thousands of nodes: a copy is read in a thread,
                # so the event loop pays for the encoding above only.
                self.index_seconds += time.perf_counter() - started
                fields, clock = await asyncio.to_thread(_read_stored, [state])
            if not live.dropped:
                self._last_read[room_id] = _LastRead(live, generation, fields)
        workspace_id, note_id = room_parts(room_id)
        changed_at = format_timestamp(datetime.fromtimestamp(dirty.changed_at, UTC))
        return NoteReading(workspace_id, note_id, fields, clock, dirty.actor, changed_at)

    def _indexed(self, room_id: str, indexed: Indexed) -> None:
        self.indexed_notes += 1
        self._on_indexed(room_id, indexed)

    async def close(self) -> None:
        """Index every dirty note one last time (after the rooms closed), then stop."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending = [task for task in (self._pass, *self._unloading) if task is not None]
        if pending:
            await asyncio.wait(pending)
        try:
            await self.index_dirty()
        except StoreError as error:
            log.warning("catalog: %d notes not indexed on shutdown: %s", len(self._dirty), error)
        self._dirty.clear()
        self._ours.clear()
        self._last_read.clear()

    async def index_now(self, room_id: str, live: LiveRoom | None) -> None:
        """Index a note at once: from its loaded room, else from the store."""
        dirty = self._dirty.pop(room_id, None)
        if live is not None and not live.dropped:
            await self._index_live(room_id, dirty or _Dirty(live, None, time.time()))
        else:
            await self.index_stored(room_id)

    # -- from the store ----------------------------------------------------------------------

    async def catch_up(self, *, workspace_id: str | None = None, everything: bool = False) -> int:
        """Index notes from their stored content: those without a row, or (`everything`)
        all of them, of one workspace or all. Returns how many were written. A row's
        `updated_at` and `updated_by` stay as they were; a new row gets the time the note's
        content was first stored as `created_at`, and no creator. Raises `StoreError`."""
        written = 0
        after = ""
        while True:
            rooms = await self._store.rooms_to_index(
                workspace_id=workspace_id, everything=everything, limit=CATCH_UP_PAGE, after=after
            )
            for room_id in rooms:
                if await self.index_stored(room_id):
                    written += 1
            if len(rooms) < CATCH_UP_PAGE:
                return written
            after = rooms[-1]

    async def index_stored(self, room_id: str) -> bool:
        """Index one note from its stored content; whether a row was written."""
        workspace_id, note_id = room_parts(room_id)
        stored = await self._documents.load(room_id)
        parts = stored.parts
        if not parts:
            return False
        # A large document is read off the event loop, in a document of its own.
        fields, clock = await asyncio.to_thread(_read_stored, parts)
        existing = await self._store.get_note(workspace_id, note_id)
        if existing is not None:
            at = existing.updated_at
        else:
            at = await self._store.first_stored_at(room_id) or format_timestamp()
        indexed = (
            await self._store.index_notes(
                [NoteReading(workspace_id, note_id, fields, clock, None, at)]
            )
        )[0]
        self._indexed(room_id, indexed)
        return indexed.entry is not None


def _read_stored(parts: list[bytes]) -> tuple[NoteFields, int]:
    doc: Doc[Any] = Doc()
    doc.apply_update(merge_updates(*parts) if len(parts) > 1 else parts[0])
    return note_fields(doc), _clock(doc.get_state())


def _clock(state_vector: bytes) -> int:
    """How far a document's content has come: the sum of its state vector's clocks. It only
    grows as content is added, so of two states of one note the later has the larger sum
    (or an equal one, when only deletions came between)."""
    return sum(read_state_vector(state_vector).values())
