"""`SqliteStore`: the `Database` in one SQLite file, through one aiosqlite connection."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import aiosqlite
import orjson

from collab.errors import StoreError
from collab.store import (
    sqlite_catalog,
    sqlite_email,
    sqlite_members,
    sqlite_note_access,
    sqlite_reminders,
    sqlite_versions,
    sqlite_webhooks,
)
from collab.store.base import Held, StoredDocument, compacted_state_off_loop
from collab.store.catalog import (
    CatalogEntry,
    CatalogPage,
    CatalogQuery,
    Indexed,
    NoteAccess,
    NoteFields,
    NoteReading,
    NoteStatus,
    Visibility,
)
from collab.store.email import DigestClaim, Recipient
from collab.store.members import Member, SeenMember
from collab.store.migrations import apply_sqlite_migrations, close_after, rollback_after
from collab.store.notification_rows import from_sqlite_row
from collab.store.notifications import NewNotification, Notification
from collab.store.reminders import DueNote, Reminder, check_reminders
from collab.store.rows import (
    clamp_after_id,
    decode_payload,
    encode_payload,
    format_timestamp,
    page_size,
    requested_ids,
)
from collab.store.versions import Version, check_kind, pack_state, unpack_state
from collab.store.webhooks import (
    INDEX_EVENTS,
    ROUTES_TTL_S,
    AttemptRecord,
    ClaimedDelivery,
    Delivery,
    Endpoint,
    EndpointChange,
    OutboxListener,
    SecretPair,
    WebhookEvent,
)

# Another process (a second server, a backup) may hold the write lock for a moment.
BUSY_TIMEOUT_MS = 5_000
CACHE_KIB = 32 * 1024
WAL_CHECKPOINT_PAGES = 10_000
# The update log's tail (migration 0012) is settled into the room index once it holds this
# many rows or has waited this long: each settle writes one index page per note it reaches,
# and every read of a room's log scans the tail, so it stays a few seconds of edits long.
SETTLE_ROWS = 10_000
SETTLE_INTERVAL_S = 5.0
# A group commit's rows go to the tail; a settle indexes the tail and moves the mark above it
# (`loadtests/sqlite_log_cost.py` runs these same statements).
APPEND_TO_LOG_TAIL = (
    "INSERT INTO document_updates (room_id, data, author, created_at, writer, settled) "
    "VALUES (?, ?, ?, ?, ?, 0)"
)
SETTLE_LOG_TAIL = (
    "UPDATE document_updates SET settled = 1 "
    "WHERE id > (SELECT through FROM document_updates_settled) AND NOT settled",
    # The mark never moves down, even when compaction has deleted the newest rows: ids only
    # grow, so none can appear below it.
    "UPDATE document_updates_settled "
    "SET through = max(through, (SELECT coalesce(max(id), 0) FROM document_updates))",
)
THREAD_JOIN_TIMEOUT_S = 5.0
_NOTIFICATION_COLUMNS = "id, user_id, workspace_id, kind, payload, created_at, read_at"


class SqliteStore:
    """A `Database` in the SQLite file at `path` (created with its parent directory if
    missing).

    One connection serves every call; an `asyncio.Lock` keeps transactions of concurrent
    callers from interleaving on it. Every failure raises `StoreError` naming the file.
    Writes begin IMMEDIATE, so writers (of any process) are serialized: notification ids
    commit in id order. Timestamps are formatted by `format_timestamp`.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._webhooks = sqlite_webhooks.SqliteOutbox()
        # This process's appends since its last settle (another process's appends are
        # settled by whichever process settles next: the settle takes the whole tail).
        self._unsettled_rows = 0
        self._settled_at = 0.0

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"

    async def open(self) -> None:
        async with self._lock:
            if self._conn is not None:
                return
            parent = Path(self.path).parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise self._error(f"creating directory {str(parent)!r}", exc) from exc
            try:
                conn = await _connect(self.path)
            except sqlite3.Error as exc:
                raise self._error("opening the database", exc) from exc
            try:
                await self._configure(conn)
                await apply_sqlite_migrations(conn)
                await sqlite_members.fill_name_keys(conn)
                # A tail left by a stop or a crash: settled now, not by the first appends.
                await conn.execute("BEGIN IMMEDIATE")
                await _settle_log(conn)
                await conn.execute("COMMIT")
                self._unsettled_rows = 0
                self._settled_at = time.monotonic()
            except BaseException as exc:
                await close_after(conn, exc)
                if isinstance(exc, StoreError):
                    raise StoreError(f"SQLite store {self.path!r}: {exc}") from exc
                if isinstance(exc, sqlite3.Error):
                    raise self._error("configuring the database", exc) from exc
                raise
            self._conn = conn

    async def _configure(self, conn: aiosqlite.Connection) -> None:
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # WAL lets other connections (a backup, an inspection shell) read while we write.
        await conn.execute("PRAGMA journal_mode = WAL")
        # With WAL, NORMAL never corrupts the file and survives a process crash; only a power
        # cut or OS crash may drop the last commits, which a client still holding the document
        # resends on reconnect. FULL would add an fsync to every group commit.
        await conn.execute("PRAGMA synchronous = NORMAL")
        # A group commit dirties one index page per note it writes to; each commit copies
        # its dirty pages into the WAL and each checkpoint copies them again into the file.
        # A larger cache keeps those pages, and a checkpoint every 10,000 pages (40 MiB of
        # WAL, not the default 1,000) copies each hot page once per many commits: together
        # about a tenth less CPU per logged update with 100 busy notes
        # (`loadtests/sqlite_log_cost.py`; loadtests/RESULTS.md, "Rooms under pressure").
        await conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        await conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")

    async def close(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is None:
                return
            try:
                await conn.close()
            except (sqlite3.Error, ValueError) as exc:
                raise self._error("closing the database", exc) from exc

    async def load(self, room_id: str) -> StoredDocument:
        # One read transaction: a compaction by another process committed between the two
        # reads would otherwise hide the log rows it folded into the snapshot.
        async with self._transaction("DEFERRED", f"loading room {room_id!r}") as conn:
            snapshot_rows = await conn.execute_fetchall(
                "SELECT state FROM document_snapshots WHERE room_id = ?", (room_id,)
            )
            # With the id selected, SQLite merges the view's two arms in id order instead of
            # sorting the rows in a temporary b-tree.
            update_rows = await conn.execute_fetchall(
                "SELECT id, data FROM room_updates WHERE room_id = ? ORDER BY id", (room_id,)
            )
        snapshot = next((bytes(row[0]) for row in snapshot_rows), None)
        return StoredDocument(snapshot=snapshot, updates=[bytes(row[1]) for row in update_rows])

    async def append_updates(
        self,
        batch: Sequence[tuple[str, bytes, str | None]],
        authors: Collection[tuple[str, str]] = (),
        writers: Mapping[str, int] | None = None,
    ) -> None:
        if not batch and not authors:
            return
        created_at = _now()
        writer_of = (writers or {}).get
        rows = [
            (room_id, update, author, created_at, writer_of(room_id))
            for room_id, update, author in batch
        ]
        async with self._transaction("IMMEDIATE", f"appending {len(rows)} updates") as conn:
            # A client still holding a purged note cannot bring it back: its tombstone stops it.
            # Checked once per room of the batch, not per row (a subquery per row cost 1-2 µs
            # each): the write lock is held, so no purge commits between check and insert.
            rooms = {row[0] for row in rows}
            rooms.update(room_id for room_id, _ in authors)
            purged = await sqlite_catalog.purged_rooms(conn, rooms)
            kept = [row for row in rows if row[0] not in purged] if purged else rows
            # Into the log's tail: no index page is written until the settle (migration 0012).
            await conn.executemany(APPEND_TO_LOG_TAIL, kept)
            if authors:
                await sqlite_versions.record_authors(
                    conn, [pair for pair in authors if pair[0] not in purged]
                )
            self._unsettled_rows += len(kept)
            now = time.monotonic()
            if self._unsettled_rows >= SETTLE_ROWS or (
                self._unsettled_rows and now - self._settled_at >= SETTLE_INTERVAL_S
            ):
                await _settle_log(conn)
                self._unsettled_rows = 0
                self._settled_at = now

    async def compact(self, room_id: str, state: bytes, held: Held | None = None) -> None:
        writer, loaded = (None, None) if held is None else (held.writer, held.loaded)
        # IMMEDIATE takes the write lock before reading: no append can commit between the
        # read of the log and the delete, and the delete is bounded by the ids read anyway.
        async with self._transaction("IMMEDIATE", f"compacting room {room_id!r}") as conn:
            if await sqlite_catalog.is_purged(conn, room_id):
                return
            # What `writer` stored is held by `state`: not read (`writer = NULL` is never
            # true, so without a writer everything is).
            snapshot_rows = await conn.execute_fetchall(
                "SELECT CASE WHEN writer = ? THEN NULL ELSE state END "
                "FROM document_snapshots WHERE room_id = ?",
                (writer, room_id),
            )
            update_rows = await conn.execute_fetchall(
                "SELECT id, CASE WHEN writer = ? THEN NULL ELSE data END "
                "FROM room_updates WHERE room_id = ? ORDER BY id",
                (writer, room_id),
            )
            stored = [bytes(row[0]) for row in snapshot_rows if row[0] is not None]
            stored += [bytes(row[1]) for row in update_rows if row[1] is not None]
            merged, own = await compacted_state_off_loop(
                state, stored, f"SQLite store {self.path!r}: room {room_id!r}", loaded
            )
            await conn.execute(
                "INSERT INTO document_snapshots (room_id, state, updated_at, writer) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (room_id) DO UPDATE "
                "SET state = excluded.state, updated_at = excluded.updated_at, "
                "writer = excluded.writer",
                (room_id, merged, _now(), writer if own else None),
            )
            if update_rows:
                await conn.execute(
                    "DELETE FROM document_updates WHERE id IN "
                    "(SELECT id FROM room_updates WHERE room_id = ? AND id <= ?)",
                    (room_id, max(int(row[0]) for row in update_rows)),
                )

    async def ping(self) -> None:
        async with self._statement("answering a ping") as conn:
            await conn.execute_fetchall("SELECT 1")

    # --- NotificationStore ----------------------------------------------------------------

    async def create_notifications(
        self, notifications: Sequence[NewNotification]
    ) -> list[Notification]:
        payloads = [encode_payload(notification.payload) for notification in notifications]
        if not notifications:
            return []
        created_at = format_timestamp()
        async with self._transaction(
            "IMMEDIATE", f"creating {len(notifications)} notifications"
        ) as conn:
            created = [
                await _insert_notification(conn, notification, payload_json, created_at)
                for notification, payload_json in zip(notifications, payloads, strict=True)
            ]
            await self._webhooks.notifications(conn, created)
        return created

    async def create_notification_once(
        self, dedup_key: str, notification: NewNotification
    ) -> Notification | None:
        payload_json = encode_payload(notification.payload)
        what = f"creating the notification with key {dedup_key!r}"
        async with self._transaction("IMMEDIATE", what) as conn:
            claimed = await conn.execute_fetchall(
                "INSERT INTO notification_keys (dedup_key) VALUES (?) "
                "ON CONFLICT DO NOTHING RETURNING dedup_key",
                (dedup_key,),
            )
            if not claimed:
                return None
            created = await _insert_notification(
                conn, notification, payload_json, format_timestamp()
            )
            await conn.execute(
                "UPDATE notification_keys SET notification_id = ? WHERE dedup_key = ?",
                (created.id, dedup_key),
            )
            await self._webhooks.notifications(conn, [created])
        return created

    async def list_notifications(
        self, user_id: str, *, after_id: int = 0, unread_only: bool = False, limit: int = 100
    ) -> list[Notification]:
        page = page_size(limit)
        unread = " AND read_at IS NULL" if unread_only else ""
        async with self._transaction("DEFERRED", f"listing notifications of {user_id!r}") as conn:
            rows = await conn.execute_fetchall(
                f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications "
                f"WHERE user_id = ? AND id > ?{unread} ORDER BY id LIMIT ?",
                (user_id, clamp_after_id(after_id), page),
            )
        return [from_sqlite_row(row) for row in rows]

    async def mark_read(self, user_id: str, ids: Sequence[int]) -> list[int]:
        wanted = requested_ids(ids)
        if not wanted:
            return []
        what = f"marking {len(wanted)} notifications of {user_id!r} read"
        async with self._transaction("IMMEDIATE", what) as conn:
            # One parameter however many ids: a JSON array, unpacked by json_each.
            rows = await conn.execute_fetchall(
                "UPDATE notifications SET read_at = ? "
                "WHERE user_id = ? AND read_at IS NULL "
                "AND id IN (SELECT value FROM json_each(?)) RETURNING id",
                (format_timestamp(), user_id, orjson.dumps(wanted).decode()),
            )
        return sorted(int(row[0]) for row in rows)

    async def mark_all_read(self, user_id: str) -> list[int]:
        what = f"marking every notification of {user_id!r} read"
        async with self._transaction("IMMEDIATE", what) as conn:
            rows = await conn.execute_fetchall(
                "UPDATE notifications SET read_at = ? "
                "WHERE user_id = ? AND read_at IS NULL RETURNING id",
                (format_timestamp(), user_id),
            )
        return sorted(int(row[0]) for row in rows)

    async def last_notification_id(self) -> int:
        async with self._transaction("DEFERRED", "reading the last notification id") as conn:
            rows = await conn.execute_fetchall("SELECT coalesce(max(id), 0) FROM notifications")
        return int(next(iter(rows))[0])

    async def unread_count(self, user_id: str) -> int:
        what = f"counting unread notifications of {user_id!r}"
        async with self._transaction("DEFERRED", what) as conn:
            rows = await conn.execute_fetchall(
                "SELECT count(*) FROM notifications WHERE user_id = ? AND read_at IS NULL",
                (user_id,),
            )
        return int(next(iter(rows))[0])

    # --- CatalogStore ---------------------------------------------------------------------

    async def index_note(
        self,
        workspace_id: str,
        note_id: str,
        fields: NoteFields,
        *,
        clock: int,
        actor: str | None,
        at: str,
    ) -> Indexed:
        reading = NoteReading(workspace_id, note_id, fields, clock, actor, at)
        return (await self.index_notes([reading]))[0]

    async def index_notes(self, readings: Sequence[NoteReading]) -> list[Indexed]:
        if not readings:
            return []
        # Most passes find the notes' fields as their rows have them: one statement then (in a
        # transaction with the deliveries it reports, when an endpoint may want them).
        what = f"indexing {len(readings)} notes"
        if self._webhooks.may_want(*INDEX_EVENTS):
            async with self._transaction("IMMEDIATE", what) as conn:
                unchanged = await sqlite_catalog.index_unchanged(conn, readings)
                await self._webhooks.indexed(
                    conn, ((r, unchanged[r.note_key]) for r in readings if r.note_key in unchanged)
                )
        else:
            async with self._statement(what) as conn:
                unchanged = await sqlite_catalog.index_unchanged(conn, readings)
        return [unchanged.get(r.note_key) or await self._index_one(r) for r in readings]

    async def _index_one(self, reading: NoteReading) -> Indexed:
        what = f"indexing note {reading.workspace_id}/{reading.note_id}"
        async with self._transaction("IMMEDIATE", what) as conn:
            indexed = await sqlite_catalog.index_note(conn, reading)
            await self._webhooks.indexed(conn, [(reading, indexed)])
            return indexed

    async def create_note(
        self, workspace_id: str, note_id: str, fields: NoteFields, *, actor: str, at: str
    ) -> CatalogEntry | None:
        what = f"creating note {workspace_id}/{note_id}"
        async with self._transaction("IMMEDIATE", what) as conn:
            entry = await sqlite_catalog.create_note(
                conn, workspace_id, note_id, fields, actor=actor, at=at
            )
            if entry is not None:
                await self._webhooks.note(conn, "note.created", entry, at)
            return entry

    async def get_note(self, workspace_id: str, note_id: str) -> CatalogEntry | None:
        async with self._transaction("DEFERRED", f"reading note {workspace_id}/{note_id}") as conn:
            return await sqlite_catalog.get_note(conn, workspace_id, note_id)

    async def note_status(self, room_id: str) -> NoteStatus:
        async with self._transaction("DEFERRED", f"reading the status of {room_id!r}") as conn:
            return await sqlite_catalog.note_status(conn, room_id)

    async def list_notes(self, workspace_id: str, query: CatalogQuery) -> CatalogPage:
        what = f"listing the notes of workspace {workspace_id!r}"
        async with self._transaction("DEFERRED", what) as conn:
            return await sqlite_catalog.list_notes(conn, workspace_id, query)

    async def get_access(self, workspace_id: str, note_id: str) -> NoteAccess | None:
        what = f"reading who may read note {workspace_id}/{note_id}"
        async with self._transaction("DEFERRED", what) as conn:
            return await sqlite_note_access.get_access(conn, workspace_id, note_id)

    async def set_access(
        self,
        workspace_id: str,
        note_id: str,
        *,
        visibility: Visibility,
        users: Mapping[str, str],
        at: str,
    ) -> NoteAccess | None:
        what = f"setting who may read note {workspace_id}/{note_id}"
        async with self._transaction("IMMEDIATE", what) as conn:
            return await sqlite_note_access.set_access(
                conn, workspace_id, note_id, visibility=visibility, users=users
            )

    async def trash_note(self, workspace_id: str, note_id: str, *, at: str) -> CatalogEntry | None:
        what = f"trashing note {workspace_id}/{note_id}"
        async with self._transaction("IMMEDIATE", what) as conn:
            entry = await sqlite_catalog.trash_note(conn, workspace_id, note_id, at=at)
            if entry is not None and entry.trashed_at == at:
                await self._webhooks.note(conn, "note.trashed", entry, at)
            return entry

    async def restore_note(self, workspace_id: str, note_id: str) -> CatalogEntry | None:
        what = f"restoring note {workspace_id}/{note_id}"
        async with self._transaction("IMMEDIATE", what) as conn:
            # Read first only when an endpoint wants it: was it in the trash?
            before = None
            if await self._webhooks.wants(conn, "note.restored", workspace_id):
                before = await sqlite_catalog.get_note(conn, workspace_id, note_id)
            entry = await sqlite_catalog.restore_note(conn, workspace_id, note_id)
            if entry is not None and before is not None and before.trashed_at is not None:
                await self._webhooks.note(conn, "note.restored", entry, format_timestamp())
            return entry

    async def purge_note(self, workspace_id: str, note_id: str, *, at: str) -> bool:
        what = f"purging note {workspace_id}/{note_id}"
        async with self._transaction("IMMEDIATE", what) as conn:
            purged = await sqlite_catalog.purge_note(conn, workspace_id, note_id, at=at)
            if purged:
                await self._webhooks.purged(conn, workspace_id, note_id, at)
            return purged

    async def trashed_before(self, cutoff: str, *, limit: int = 100) -> list[str]:
        async with self._transaction("DEFERRED", "listing notes due for purging") as conn:
            return await sqlite_catalog.trashed_before(conn, cutoff, limit=limit)

    async def rooms_to_index(
        self,
        *,
        workspace_id: str | None = None,
        everything: bool = False,
        limit: int = 100,
        after: str = "",
    ) -> list[str]:
        async with self._transaction("DEFERRED", "listing notes to index") as conn:
            return await sqlite_catalog.rooms_to_index(
                conn, workspace_id=workspace_id, everything=everything, limit=limit, after=after
            )

    async def first_stored_at(self, room_id: str) -> str | None:
        async with self._transaction("DEFERRED", f"reading the age of {room_id!r}") as conn:
            return await sqlite_catalog.first_stored_at(conn, room_id)

    # --- MemberStore ----------------------------------------------------------------------

    async def record_seen(self, seen: Sequence[SeenMember]) -> None:
        if not seen:
            return
        async with self._transaction("IMMEDIATE", f"recording {len(seen)} members seen") as conn:
            await sqlite_members.record_seen(conn, seen)

    async def put_member(
        self,
        workspace_id: str,
        user_id: str,
        *,
        role: str,
        name: str | None,
        email: str | None,
        at: str,
    ) -> tuple[Member, bool]:
        what = f"putting member {user_id!r} of workspace {workspace_id!r}"
        async with self._transaction("IMMEDIATE", what) as conn:
            member, added = await sqlite_members.put_member(
                conn, workspace_id, user_id, role=role, name=name, email=email, at=at
            )
            if added:
                await self._webhooks.member(conn, "member.added", member, at)
            return member, added

    async def remove_member(self, workspace_id: str, user_id: str, *, at: str) -> Member | None:
        what = f"removing member {user_id!r} of workspace {workspace_id!r}"
        async with self._transaction("IMMEDIATE", what) as conn:
            removed = await sqlite_members.remove_member(conn, workspace_id, user_id, at=at)
            await self._webhooks.member(conn, "member.removed", removed, at)
            return removed

    async def get_member(self, workspace_id: str, user_id: str) -> Member | None:
        what = f"reading member {user_id!r} of workspace {workspace_id!r}"
        async with self._transaction("DEFERRED", what) as conn:
            return await sqlite_members.get_member(conn, workspace_id, user_id)

    async def list_members(
        self, workspace_id: str, *, prefix: str = "", after: str = "", limit: int = 50
    ) -> list[Member]:
        what = f"listing the members of workspace {workspace_id!r}"
        async with self._transaction("DEFERRED", what) as conn:
            return await sqlite_members.list_members(
                conn, workspace_id, prefix=prefix, after=after, limit=limit
            )

    async def managed_members(self) -> list[Member]:
        async with self._transaction("DEFERRED", "listing the managed members") as conn:
            return await sqlite_members.managed_members(conn)

    async def non_members(self, workspace_id: str, user_ids: Sequence[str]) -> list[str]:
        what = f"checking {len(user_ids)} members of workspace {workspace_id!r}"
        async with self._transaction("DEFERRED", what) as conn:
            return await sqlite_members.non_members(conn, workspace_id, user_ids)

    # --- VersionStore ---------------------------------------------------------------------

    async def add_version(
        self,
        room_id: str,
        state: bytes,
        *,
        kind: str,
        name: str | None,
        created_by: str | None,
        at: str,
        min_gap_s: float | None = None,
    ) -> Version | None:
        check_kind(kind)
        # Before the transaction, off the event loop: no other call waits for it.
        packed = await pack_state(state)
        async with self._transaction("IMMEDIATE", f"adding a version of room {room_id!r}") as conn:
            version = await sqlite_versions.add_version(
                conn,
                room_id,
                packed,
                kind=kind,
                name=name,
                created_by=created_by,
                at=at,
                min_gap_s=min_gap_s,
            )
            await self._webhooks.version(conn, version)
            return version

    async def list_versions(
        self, room_id: str, *, limit: int, before: str | None = None
    ) -> list[Version]:
        async with self._transaction("DEFERRED", f"listing the versions of {room_id!r}") as conn:
            return await sqlite_versions.list_versions(conn, room_id, limit=limit, before=before)

    async def get_version(self, room_id: str, version_id: str) -> Version | None:
        what = f"reading version {version_id!r} of {room_id!r}"
        async with self._transaction("DEFERRED", what) as conn:
            return await sqlite_versions.get_version(conn, room_id, version_id)

    async def version_state(self, room_id: str, version_id: str) -> bytes | None:
        what = f"reading the state of version {version_id!r} of {room_id!r}"
        async with self._transaction("DEFERRED", what) as conn:
            data = await sqlite_versions.state_data(conn, room_id, version_id)
        if data is None:
            return None
        try:
            return await unpack_state(data)
        except StoreError as exc:
            raise StoreError(f"SQLite store {self.path!r}: {what} failed: {exc}") from exc

    async def delete_versions(self, room_id: str, version_ids: Collection[str]) -> int:
        what = f"deleting {len(version_ids)} versions of {room_id!r}"
        async with self._transaction("IMMEDIATE", what) as conn:
            return await sqlite_versions.delete_versions(conn, room_id, version_ids)

    async def rooms_with_versions(
        self, *, created_before: str, after: str | None, limit: int
    ) -> list[str]:
        async with self._transaction("DEFERRED", "listing rooms with old versions") as conn:
            return await sqlite_versions.rooms_with_versions(
                conn, created_before=created_before, after=after, limit=limit
            )

    async def version_bytes(self) -> int:
        async with self._transaction("DEFERRED", "summing the versions' bytes") as conn:
            return await sqlite_versions.version_bytes(conn)

    # --- EmailStore -----------------------------------------------------------------------

    async def email_recipient(self, user_id: str) -> Recipient:
        async with self._transaction("DEFERRED", f"reading the recipient {user_id!r}") as conn:
            return await sqlite_email.email_recipient(conn, user_id)

    async def claim_digest(
        self, user_id: str, *, claim_id: str, now: float, hold_s: float
    ) -> DigestClaim | None:
        what = f"claiming the digest of {user_id!r}"
        async with self._transaction("IMMEDIATE", what) as conn:
            return await sqlite_email.claim_digest(
                conn, user_id, claim_id=claim_id, now=now, hold_s=hold_s
            )

    async def digest_due_at(self, user_id: str) -> float | None:
        what = f"reading when the digest of {user_id!r} is due"
        async with self._transaction("DEFERRED", what) as conn:
            return await sqlite_email.digest_due_at(conn, user_id)

    async def unemailed_notifications(
        self, user_id: str, *, after_id: int, limit: int
    ) -> tuple[list[Notification], int]:
        what = f"listing the notifications to email {user_id!r}"
        async with self._transaction("DEFERRED", what) as conn:
            return await sqlite_email.unemailed_notifications(
                conn, user_id, after_id=clamp_after_id(after_id), limit=limit
            )

    async def finish_digest(
        self, claim: DigestClaim, *, emailed_up_to: int, next_allowed_at: float, at: str
    ) -> bool:
        what = f"recording the digest of {claim.user_id!r}"
        async with self._transaction("IMMEDIATE", what) as conn:
            return await sqlite_email.finish_digest(
                conn, claim, emailed_up_to=emailed_up_to, next_allowed_at=next_allowed_at, at=at
            )

    async def release_digest(self, claim: DigestClaim, *, next_allowed_at: float) -> bool:
        what = f"releasing the digest of {claim.user_id!r}"
        async with self._transaction("IMMEDIATE", what) as conn:
            return await sqlite_email.release_digest(conn, claim, next_allowed_at=next_allowed_at)

    async def set_email_opt_out(self, user_id: str, *, opted_out: bool, at: str) -> None:
        what = f"recording the email opt-out of {user_id!r}"
        async with self._transaction("IMMEDIATE", what) as conn:
            await sqlite_email.set_email_opt_out(conn, user_id, opted_out=opted_out, at=at)

    # --- ReminderStore --------------------------------------------------------------------

    async def arm_reminders(
        self, room_id: str, due: str | None, reminders: Sequence[tuple[str, str]]
    ) -> bool:
        check_reminders(reminders)
        async with self._transaction("IMMEDIATE", f"arming the reminders of {room_id!r}") as conn:
            return await sqlite_reminders.arm_reminders(conn, room_id, due, reminders)

    async def armed_due(self, room_id: str) -> str | None:
        what = f"reading the armed due of {room_id!r}"
        async with self._transaction("DEFERRED", what) as conn:
            return await sqlite_reminders.armed_due(conn, room_id)

    async def pending_reminders(self, room_id: str) -> list[Reminder]:
        what = f"listing the reminders of {room_id!r}"
        async with self._transaction("DEFERRED", what) as conn:
            return await sqlite_reminders.pending_reminders(conn, room_id)

    async def claim_reminders(self, *, now: str, lease_until: str, limit: int) -> list[Reminder]:
        async with self._transaction("IMMEDIATE", "claiming the reminders due") as conn:
            return await sqlite_reminders.claim_reminders(
                conn, now=now, lease_until=lease_until, limit=limit
            )

    async def finish_reminder(self, reminder: Reminder) -> bool:
        what = f"finishing the {reminder.kind} reminder of {reminder.room_id!r}"
        async with self._transaction("IMMEDIATE", what) as conn:
            return await sqlite_reminders.finish_reminder(conn, reminder)

    async def next_fire_at(self) -> str | None:
        async with self._transaction("DEFERRED", "reading the next reminder's time") as conn:
            return await sqlite_reminders.next_fire_at(conn)

    async def unarmed_notes(self, *, after: DueNote, limit: int) -> list[DueNote]:
        async with self._transaction("DEFERRED", "listing notes without reminders") as conn:
            return await sqlite_reminders.unarmed_notes(conn, after=after, limit=limit)

    # --- WebhookStore ---------------------------------------------------------------------

    async def add_endpoint(self, endpoint: Endpoint) -> None:
        async with self._transaction("IMMEDIATE", f"adding webhook {endpoint.id!r}") as conn:
            await sqlite_webhooks.add_endpoint(conn, endpoint)
        self._webhooks.routes.forget()
        # Another process on this file reads its routes again within this time.
        await asyncio.sleep(ROUTES_TTL_S)

    async def list_endpoints(self) -> list[Endpoint]:
        async with self._transaction("DEFERRED", "listing the webhooks") as conn:
            return await sqlite_webhooks.list_endpoints(conn)

    async def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        async with self._transaction("DEFERRED", f"reading webhook {endpoint_id!r}") as conn:
            return await sqlite_webhooks.get_endpoint(conn, endpoint_id)

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        async with self._transaction("IMMEDIATE", f"deleting webhook {endpoint_id!r}") as conn:
            deleted = await sqlite_webhooks.delete_endpoint(conn, endpoint_id)
        self._webhooks.routes.forget()
        return deleted

    async def add_test_delivery(self, endpoint_id: str, event: WebhookEvent) -> Delivery | None:
        async with self._transaction("IMMEDIATE", f"testing webhook {endpoint_id!r}") as conn:
            return await sqlite_webhooks.add_test_delivery(conn, self._webhooks, endpoint_id, event)

    async def postpone_delivery(self, delivery_id: str, lease: str, *, until: str) -> bool:
        what = f"postponing webhook delivery {delivery_id!r}"
        async with self._transaction("IMMEDIATE", what) as conn:
            return await sqlite_webhooks.postpone_delivery(conn, delivery_id, lease, until)

    async def update_endpoint(
        self, endpoint_id: str, change: EndpointChange, *, at: str
    ) -> Endpoint | None:
        async with self._transaction("IMMEDIATE", f"updating webhook {endpoint_id!r}") as conn:
            updated = await sqlite_webhooks.update_endpoint(conn, endpoint_id, change, at=at)
        self._webhooks.routes.forget()
        # Another process on this file reads its routes again within this time.
        await asyncio.sleep(ROUTES_TTL_S)
        return updated

    async def replace_secrets(
        self,
        endpoint_id: str,
        expected: SecretPair,
        replacement: SecretPair,
    ) -> bool:
        async with self._transaction(
            "IMMEDIATE", f"storing webhook {endpoint_id!r}'s secrets"
        ) as conn:
            return await sqlite_webhooks.replace_secrets(conn, endpoint_id, expected, replacement)

    async def rotate_secret(
        self, endpoint_id: str, secret: str, *, previous_until: str | None
    ) -> Endpoint | None:
        async with self._transaction("IMMEDIATE", f"rotating webhook {endpoint_id!r}") as conn:
            return await sqlite_webhooks.rotate_secret(
                conn, endpoint_id, secret, previous_until=previous_until
            )

    def watch_outbox(self, listener: OutboxListener) -> None:
        self._webhooks.watch(listener)

    async def claim_deliveries(
        self,
        *,
        now: str,
        lease_until: str,
        lease: str,
        limit: int,
        per_endpoint: int | None = None,
    ) -> list[ClaimedDelivery]:
        # Without an enabled endpoint nothing is due: no write lock taken for nothing.
        if not self._webhooks.routes.fresh:
            async with self._transaction("DEFERRED", "reading the webhooks") as conn:
                await self._webhooks.refresh(conn)
        if self._webhooks.routes.empty:
            return []
        async with self._transaction("IMMEDIATE", "claiming webhook deliveries") as conn:
            return await sqlite_webhooks.claim_deliveries(
                conn,
                now=now,
                lease_until=lease_until,
                lease=lease,
                limit=limit,
                per_endpoint=per_endpoint,
            )

    async def record_attempt(
        self, delivery_id: str, lease: str, record: AttemptRecord, *, disable_after_s: float
    ) -> bool:
        what = f"recording an attempt of webhook delivery {delivery_id!r}"
        async with self._transaction("IMMEDIATE", what) as conn:
            return await sqlite_webhooks.record_attempt(
                conn, delivery_id, lease, record, disable_after_s=disable_after_s
            )

    async def list_deliveries(
        self, endpoint_id: str, *, limit: int, before: str | None = None
    ) -> list[Delivery]:
        what = f"listing the deliveries of webhook {endpoint_id!r}"
        async with self._transaction("DEFERRED", what) as conn:
            return await sqlite_webhooks.list_deliveries(
                conn, endpoint_id, limit=limit, before=before
            )

    async def get_delivery(self, endpoint_id: str, delivery_id: str) -> Delivery | None:
        what = f"reading webhook delivery {delivery_id!r}"
        async with self._transaction("DEFERRED", what) as conn:
            return await sqlite_webhooks.get_delivery(conn, endpoint_id, delivery_id)

    async def retry_delivery(
        self, endpoint_id: str, delivery_id: str, *, now: str
    ) -> Delivery | None:
        what = f"retrying webhook delivery {delivery_id!r}"
        async with self._transaction("IMMEDIATE", what) as conn:
            return await sqlite_webhooks.retry_delivery(
                conn, self._webhooks, endpoint_id, delivery_id, now
            )

    async def delete_finished_deliveries(self, *, finished_before: str, limit: int) -> int:
        async with self._transaction("IMMEDIATE", "deleting old webhook deliveries") as conn:
            return await sqlite_webhooks.delete_finished_deliveries(
                conn, finished_before=finished_before, limit=limit
            )

    # --- RevocationStore ------------------------------------------------------------------

    async def put_revocation(self, user_id: str, until: datetime) -> None:
        now = _now()
        async with self._transaction("IMMEDIATE", f"revoking {user_id!r}") as conn:
            # Expired rows go here, so the table holds about the live revocations only.
            await conn.execute("DELETE FROM revocations WHERE until <= ?", (now,))
            if format_timestamp(until) <= now:
                await conn.execute("DELETE FROM revocations WHERE user_id = ?", (user_id,))
                return
            await conn.execute(
                "INSERT INTO revocations (user_id, until, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET until = excluded.until, "
                "created_at = excluded.created_at",
                (user_id, format_timestamp(until), now),
            )

    async def active_revocations(self, now: datetime) -> dict[str, datetime]:
        async with self._transaction("DEFERRED", "reading revocations") as conn:
            rows = await conn.execute_fetchall(
                "SELECT user_id, until FROM revocations WHERE until > ?",
                (format_timestamp(now),),
            )
        return {str(row[0]): datetime.fromisoformat(str(row[1])) for row in rows}

    @asynccontextmanager
    async def _transaction(
        self, mode: Literal["DEFERRED", "IMMEDIATE"], what: str
    ) -> AsyncIterator[aiosqlite.Connection]:
        """Hold the lock and one transaction; commit on success, roll back on any exception.

        `sqlite3` and aiosqlite errors raised inside become `StoreError` naming `what`.
        """
        async with self._lock:
            conn = self._connection(what)
            try:
                # BEGIN inside the rollback's reach: a caller cancelled while awaiting it
                # would otherwise leave the transaction open once the thread runs it.
                try:
                    await conn.execute(f"BEGIN {mode}")
                    yield conn
                    await conn.execute("COMMIT")
                except BaseException as exc:
                    self._webhooks.written = False
                    await rollback_after(conn, exc)
                    raise
                # Deliveries written by this transaction are committed: the senders may go.
                self._webhooks.committed()
            except (sqlite3.Error, ValueError) as exc:
                raise self._error(what, exc) from exc

    @asynccontextmanager
    async def _statement(self, what: str) -> AsyncIterator[aiosqlite.Connection]:
        """Hold the lock for one statement outside a transaction (atomic on its own, in
        autocommit mode); errors become `StoreError` naming `what`."""
        async with self._lock:
            conn = self._connection(what)
            try:
                yield conn
            except (sqlite3.Error, ValueError) as exc:
                raise self._error(what, exc) from exc

    def _connection(self, what: str) -> aiosqlite.Connection:
        if self._conn is None:
            raise StoreError(f"SQLite store {self.path!r}: {what} failed: the store is not open")
        return self._conn

    def _error(self, what: str, exc: BaseException) -> StoreError:
        return StoreError(f"SQLite store {self.path!r}: {what} failed: {exc}")


async def _connect(path: str) -> aiosqlite.Connection:
    # Autocommit mode: transactions are begun explicitly, never implicitly.
    conn = aiosqlite.connect(path, isolation_level=None)
    try:
        return await conn
    except BaseException:
        # On a failed connect aiosqlite stops its worker thread without waiting for it; the
        # thread then reports to this event loop, which may be closed by then (aiosqlite#241).
        await asyncio.to_thread(conn._thread.join, THREAD_JOIN_TIMEOUT_S)
        raise


async def _insert_notification(
    conn: aiosqlite.Connection, notification: NewNotification, payload_json: str, created_at: str
) -> Notification:
    rows = await conn.execute_fetchall(
        "INSERT INTO notifications (user_id, workspace_id, kind, payload, created_at) "
        "VALUES (?, ?, ?, ?, ?) RETURNING id",
        (
            notification.user_id,
            notification.workspace_id,
            notification.kind,
            payload_json,
            created_at,
        ),
    )
    return Notification(
        id=int(next(iter(rows))[0]),
        user_id=notification.user_id,
        workspace_id=notification.workspace_id,
        kind=notification.kind,
        payload=decode_payload(payload_json),
        created_at=created_at,
        read_at=None,
    )


async def _settle_log(conn: aiosqlite.Connection) -> None:
    """Settle the update log's tail (migration 0012): add its rows to the room index and
    move the mark above them, in the caller's transaction."""
    for statement in SETTLE_LOG_TAIL:
        await conn.execute(statement)


def _now() -> str:
    return datetime.now(UTC).isoformat()
