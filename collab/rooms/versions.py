"""The version history of notes (`NoteHistory`): taking versions, reading, comparing,
restoring and thinning them.

- **Automatic versions.** A note edited on this instance (a local change: its clients' or a
  REST request's) gets a version once `interval_s` of editing have passed since the first
  edit no version holds, when editing pauses for `PAUSE_S`, or at the latest
  `MAX_PAUSE_WAIT_S` after it fell due, and when its room unloads with such edits. Several
  instances editing one note may try the same version: the store keeps one
  (`min_gap_s`, for the versions taken while editing), and a state equal to the newest
  version's is not stored again. A version the gap refused is tried once more when the gap
  has passed (the edits since the newest version are in no version yet); one taken at unload
  is never refused for the gap, as no later one would hold its edits. Any version (named,
  restore) starts the note's next period.
- **Named versions** on request, and a **restore** version before every restore, so a
  restore can be undone by restoring that one.
- **Attribution.** The group commit records who made each logged update, and the room's
  authors since its last version (`LiveRoom.authors_*`); a version takes those. Pending
  updates are flushed first, so the authors of what the version holds are recorded.
- **Restore** is an ordinary forward change: the difference between the current content and
  the version's (`rooms.restore`), applied like any server-side edit, relayed to every
  client on every instance, stored and attributed to the user who asked. Clients keep
  their state; an offline client's edits merge on top when it reconnects.
- **Retention** (`rooms.version_retention`) thins automatic versions; named and restore
  versions stay until the note is purged (the purge deletes them with it).

Every new version and every restore is announced on the workspace's live channel
(`version.created`, `note.restored_version`) to those who may read the note.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pycrdt import Doc, merge_updates

from collab.errors import NotePurged, StoreError
from collab.protocol.messages import EMPTY_UPDATE
from collab.rooms.catalog import NotesCatalog
from collab.rooms.live import DocumentChange, LiveRoom
from collab.rooms.manager import RoomManager
from collab.rooms.restore import restore_content
from collab.rooms.version_diff import version_diff
from collab.rooms.version_retention import RetentionPolicy, versions_to_drop
from collab.store.catalog import room_parts
from collab.store.rows import format_timestamp
from collab.store.versions import MAX_VERSION_PAGE, Version, VersionStore
from collab.tasks import cancel_and_wait

log = logging.getLogger(__name__)

PAUSE_S = 2.0
"""A pause in a note's editing this long lets its due automatic version be taken."""
MAX_PAUSE_WAIT_S = 10.0
"""A due automatic version waits for a pause at most this long."""
CHECK_S = 1.0
RETENTION_CHECK_S = 3600.0
BYTES_REFRESH_S = 60.0
ROOM_PAGE = 100

CURRENT = "current"
"""`against=current` in a diff: the note's content now."""


@dataclass(slots=True)
class _Editing:
    """A loaded note edited here since its last version (monotonic seconds)."""

    live: LiveRoom
    since: float
    last: float
    declined: bool = False
    """The store declined its version once (too soon after another, or unchanged)."""


class NoteHistory:
    def __init__(
        self,
        store: VersionStore,
        catalog: NotesCatalog,
        *,
        interval_s: float,
        policy: RetentionPolicy,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._interval_s = interval_s
        self._policy = policy
        self._clock = clock
        self._wall_clock = wall_clock
        self._rooms: RoomManager | None = None
        self._editing: dict[str, _Editing] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Task[None]] = set()
        # For /metrics: bytes the stored versions take (refreshed every BYTES_REFRESH_S),
        # versions taken here by kind, and the event loop's time per version taken.
        self.stored_bytes = 0
        self.created: dict[str, int] = {"auto": 0, "named": 0, "restore": 0}
        self.loop_seconds = 0.0
        self.failures = 0

    def bind(self, rooms: RoomManager) -> None:
        self._rooms = rooms

    @property
    def rooms(self) -> RoomManager:
        if self._rooms is None:
            raise RuntimeError("NoteHistory used before its rooms were bound")
        return self._rooms

    async def start(self) -> None:
        self._catalog.add_event_listener(self._on_event)
        self._tasks = [
            asyncio.create_task(self._auto_loop(), name="versions-auto"),
            asyncio.create_task(self._retention_loop(), name="versions-retention"),
            asyncio.create_task(self._bytes_loop(), name="versions-bytes"),
        ]

    async def close(self) -> None:
        """After the rooms closed (their unloads took the versions due)."""
        await cancel_and_wait(self._tasks)
        if self._pending:
            await asyncio.wait(list(self._pending))

    # -- listeners (on every edit: a lookup and a clock read) --------------------------------

    def document_changed(self, change: DocumentChange) -> None:
        if not change.local:
            return  # the instance that stores the edit takes its version
        live = change.live
        editing = self._editing.get(live.room.room_id)
        now = self._clock()
        if editing is None or editing.live is not live:
            self._editing[live.room.room_id] = _Editing(live, now, now)
        else:
            editing.last = now

    def room_unloaded(self, live: LiveRoom) -> None:
        editing = self._editing.get(live.room_id)
        if editing is None or editing.live is not live:
            return
        del self._editing[live.room_id]
        # No gap: nothing after it would hold these edits.
        self._spawn(self._take_auto(live, min_gap_s=None), "versions-unload")

    def _on_event(self, event: dict[str, Any]) -> None:
        """A version taken anywhere starts the note's next period here too."""
        if event.get("type") not in ("version.created", "note.restored_version"):
            return
        note_id = event.get("id")
        if not isinstance(note_id, str):
            return
        room_id = f"{event['workspace']}/{note_id}"
        live = self.rooms.get(room_id) if self._rooms is not None else None
        if live is not None:
            # Recorded again at their next edit: the version took them from the store.
            live.authors_recorded.clear()
        editing = self._editing.get(room_id)
        if editing is not None and event.get("type") == "version.created":
            # It holds the edits made so far, whatever its kind: the period starts again.
            editing.since = self._clock()

    # -- automatic versions ------------------------------------------------------------------

    def due(self, now: float) -> list[LiveRoom]:
        """The rooms whose automatic version is due at `now` (monotonic seconds)."""
        due = []
        for editing in self._editing.values():
            age_s = now - editing.since
            if age_s < self._interval_s:
                continue
            if now - editing.last >= PAUSE_S or age_s >= self._interval_s + MAX_PAUSE_WAIT_S:
                due.append(editing.live)
        return due

    async def take_due(self) -> int:
        """Take the automatic versions due now; how many were stored."""
        taken = 0
        now = self._clock()
        for live in self.due(now):
            editing = self._editing.get(live.room_id)
            if editing is not None and editing.live is live:
                del self._editing[live.room_id]
            if await self._take_auto(live, min_gap_s=self._interval_s / 2) is not None:
                taken += 1
            elif editing is None or editing.declined:
                continue
            elif live.dropped:
                # Unloaded meanwhile: its unload found nothing left to take.
                taken += await self._take_auto(live, min_gap_s=None) is not None
            elif live.room_id not in self._editing:
                # Refused as too soon after another instance's version, perhaps: once more
                # when the gap has passed. (Unchanged since the newest version: refused again.)
                editing.since = now - self._interval_s / 2
                editing.declined = True
                self._editing[live.room_id] = editing
        return taken

    async def _auto_loop(self) -> None:
        while True:
            await asyncio.sleep(CHECK_S)
            await self.take_due()

    async def _take_auto(self, live: LiveRoom, *, min_gap_s: float | None) -> Version | None:
        try:
            return await self.take(
                live, kind="auto", name=None, created_by=None, min_gap_s=min_gap_s
            )
        except StoreError as error:
            self.failures += 1
            log.warning("versions: automatic version of %s not taken: %s", live.room_id, error)
            return None

    async def take(
        self,
        live: LiveRoom,
        *,
        kind: str,
        name: str | None,
        created_by: str | None,
        min_gap_s: float | None = None,
    ) -> Version | None:
        """Store a version of a loaded room's document now and announce it; None when the
        store declined (an automatic version of an unchanged state, or one another instance
        just took; any version of a purged note). Raises `StoreError`."""
        room_id = live.room_id
        # Updates waiting for the group commit are written first: their authors with them.
        await self.rooms.flush()
        live.authors_recorded.clear()
        started = time.perf_counter()
        state = live.room.encoded_state()
        self.loop_seconds += time.perf_counter() - started
        version = await self._store.add_version(
            room_id,
            state,
            kind=kind,
            name=name,
            created_by=created_by,
            at=format_timestamp(self._wall_clock()),
            min_gap_s=min_gap_s,
        )
        if version is None:
            return None
        self.created[kind] = self.created.get(kind, 0) + 1
        log.info(
            "versions: %s version %s of %s (%d bytes)", kind, version.id, room_id, version.size
        )
        workspace_id, note_id = room_parts(room_id)
        await self._announce("version.created", workspace_id, note_id, version=version.to_json())
        return version

    async def _announce(self, kind: str, workspace_id: str, note_id: str, **fields: Any) -> None:
        try:
            await self._catalog.note_event(kind, workspace_id, note_id, **fields)
        except StoreError as error:
            log.warning(
                "versions: %s of %s/%s not announced: %s", kind, workspace_id, note_id, error
            )

    # -- reading -----------------------------------------------------------------------------

    async def page(self, room_id: str, *, limit: int, before: str | None) -> list[Version]:
        return await self._store.list_versions(
            room_id, limit=min(limit, MAX_VERSION_PAGE), before=before
        )

    async def get(self, room_id: str, version_id: str) -> Version | None:
        return await self._store.get_version(room_id, version_id)

    async def state(self, room_id: str, version_id: str) -> bytes | None:
        return await self._store.version_state(room_id, version_id)

    async def diff(self, room_id: str, version_id: str, against: str) -> dict[str, Any] | None:
        """What changed from `against` (`current` or another version's id) to the version,
        as `version_diff` renders it; None when either version does not exist."""
        after = await self._store.version_state(room_id, version_id)
        if after is None:
            return None
        if against == CURRENT:
            async with self.rooms.holding(room_id) as live:
                before = live.room.encoded_state()
        else:
            other = await self._store.version_state(room_id, against)
            if other is None:
                return None
            before = other
        return await asyncio.to_thread(_diff_states, before, after)

    # -- changes -----------------------------------------------------------------------------

    async def name(self, room_id: str, name: str, created_by: str) -> Version | None:
        """A named version of the note's current content; None for a note no edit ever
        reached (nothing to keep: probing ids stores nothing). Raises `NotePurged`,
        `StoreError`."""
        async with self.rooms.holding(room_id) as live:
            if live.room.content_clock == 0:
                return None
            version = await self.take(live, kind="named", name=name, created_by=created_by)
        if version is None:
            raise NotePurged(room_id, f"note {room_id!r} was deleted for good")
        return version

    async def restore(
        self, room_id: str, version_id: str, user_id: str
    ) -> tuple[Version, Version, bool] | None:
        """Make the note's content the version's, for everyone, as a forward change by
        `user_id`, after a `restore` version of the content it replaces. Returns (the version
        restored, that backup, whether the content changed); None when the version does not
        exist. Raises `NotePurged`, `StoreError` and what `apply_server_update` raises."""
        target = await self._store.get_version(room_id, version_id)
        state = None if target is None else await self._store.version_state(room_id, version_id)
        if target is None or state is None:
            return None
        async with self.rooms.holding(room_id) as live:
            backup = await self.take(live, kind="restore", name=None, created_by=user_id)
            if backup is None:
                raise NotePurged(room_id, f"note {room_id!r} was deleted for good")
            update = await asyncio.to_thread(restore_update, live.room.encoded_state(), state)
            changed = bool(update) and await self.rooms.apply_server_update(live, update, user_id)
        log.info("versions: %s restored %s to version %s", user_id, room_id, version_id)
        workspace_id, note_id = room_parts(room_id)
        await self._announce(
            "note.restored_version",
            workspace_id,
            note_id,
            version=target.to_json(),
            backup=backup.to_json(),
            by=user_id,
        )
        return target, backup, changed

    async def delete(self, room_id: str, version_id: str) -> bool:
        return await self._store.delete_versions(room_id, [version_id]) > 0

    # -- retention ---------------------------------------------------------------------------

    async def thin(self, now: datetime | None = None) -> int:
        """Delete the automatic versions retention drops at `now`; how many. Raises
        `StoreError`."""
        now = now or self._wall_clock()
        cutoff = format_timestamp(now - timedelta(seconds=self._policy.keep_all_s))
        dropped = 0
        after: str | None = None
        while rooms := await self._store.rooms_with_versions(
            created_before=cutoff, after=after, limit=ROOM_PAGE
        ):
            for room_id in rooms:
                automatic = [
                    (v.id, datetime.fromisoformat(v.created_at))
                    for v in await self._all_versions(room_id)
                    if v.kind == "auto"
                ]
                drop = versions_to_drop(automatic, now, self._policy)
                if drop:
                    dropped += await self._store.delete_versions(room_id, drop)
            if len(rooms) < ROOM_PAGE:
                break
            after = rooms[-1]
        return dropped

    async def _all_versions(self, room_id: str) -> list[Version]:
        versions: list[Version] = []
        before: str | None = None
        while page := await self._store.list_versions(
            room_id, limit=MAX_VERSION_PAGE, before=before
        ):
            versions.extend(page)
            if len(page) < MAX_VERSION_PAGE:
                break
            before = page[-1].id
        return versions

    async def _retention_loop(self) -> None:
        while True:
            try:
                dropped = await self.thin()
            except StoreError as error:
                log.warning("versions: retention failed: %s", error)
            else:
                if dropped:
                    log.info("versions: retention deleted %d automatic versions", dropped)
            await asyncio.sleep(RETENTION_CHECK_S)

    async def _bytes_loop(self) -> None:
        while True:
            try:
                self.stored_bytes = await self._store.version_bytes()
            except StoreError as error:
                log.warning("versions: storage size not read: %s", error)
            await asyncio.sleep(BYTES_REFRESH_S)

    def _spawn(self, coroutine: Any, name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)


def restore_update(current: bytes, target: bytes) -> bytes:
    """The update that turns a document in state `current` into `target`'s content, as a
    forward change (b"" when there is nothing to change). Pure; safe in a worker thread
    (its documents are its own)."""
    doc: Doc[Any] = Doc()
    doc.apply_update(current)
    wanted: Doc[Any] = Doc()
    wanted.apply_update(target)
    changes: list[bytes] = []
    subscription = doc.observe(lambda event: changes.append(event.update))
    try:
        restore_content(doc, wanted)
    finally:
        doc.unobserve(subscription)
    changes = [change for change in changes if change != EMPTY_UPDATE]
    if not changes:
        return b""
    return changes[0] if len(changes) == 1 else merge_updates(*changes)


def _diff_states(before: bytes, after: bytes) -> dict[str, Any]:
    old: Doc[Any] = Doc()
    old.apply_update(before)
    new: Doc[Any] = Doc()
    new.apply_update(after)
    return version_diff(old, new)
