"""`PostgresStore`: the `Database` in a PostgreSQL database shared by every server instance."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg  # type: ignore[import-untyped, unused-ignore]

from collab.errors import StoreError
from collab.store import (
    postgres_catalog,
    postgres_email,
    postgres_members,
    postgres_note_access,
    postgres_reminders,
    postgres_versions,
    postgres_webhooks,
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
from collab.store.migrations import (
    POSTGRES_DRIVER_ERRORS,
    apply_postgres_migrations,
    describe_driver_error,
)
from collab.store.notification_rows import from_postgres_record
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

CONNECT_TIMEOUT_S = 5.0
COMMAND_TIMEOUT_S = 10.0
PING_TIMEOUT_S = 2.0
CLOSE_TIMEOUT_S = 5.0
# Rooms are locked in the two-int4 advisory key space, apart from the one-bigint key of the
# migration lock; this first key says "a collab room" ("clbr" as ASCII).
ROOM_LOCK_NAMESPACE = int.from_bytes(b"clbr", "big")
# Users creating notifications lock in the same space under "collab notification user".
NOTIFICATION_USER_LOCK_NAMESPACE = int.from_bytes(b"clnu", "big")
_NOTIFICATION_COLUMNS = "id, user_id, workspace_id, kind, payload, created_at, read_at"
# Creating the pool also parses the DSN: a malformed one raises ValueError.
_CONNECT_ERRORS: tuple[type[Exception], ...] = (*POSTGRES_DRIVER_ERRORS, ValueError)
_CLOSE_ERRORS: tuple[type[Exception], ...] = (*POSTGRES_DRIVER_ERRORS, TimeoutError)


DEFAULT_POOL_SIZE = 20
"""Connections an instance may open (COLLAB_DATABASE_POOL_SIZE). Every joining client waits
for a few queries (its access, the note's status, its member record): with asyncpg's 10, the
joins of a drained instance's 1,000 clients queued for seconds on the pool (loadtests/RESULTS.md,
"Rooms under pressure, second pass")."""


class PostgresStore:
    """A `Database` in the PostgreSQL database at `dsn`, through an asyncpg pool.

    Several instances may share the database: compactions of one room serialize on an
    advisory lock, the writes of one room's version history on another
    (`postgres_versions`), creations of one user's notifications on a third (so that user's
    ids commit in id order), purges and the writes of documents and notes they must not miss
    exclude each other on a third (`postgres_catalog.PURGE_LOCK_NAMESPACE`), and `open`
    migrates under a fourth. A connection lost while the server is down fails the calls using
    it with `StoreError`; the pool reconnects once it is back. Messages name the host and
    database, never the DSN's password. Timestamps are formatted by `format_timestamp`; the
    catalog's are kept as the strings it is given.
    """

    def __init__(
        self,
        dsn: str,
        *,
        min_pool: int = 1,
        max_pool: int = DEFAULT_POOL_SIZE,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        command_timeout_s: float = COMMAND_TIMEOUT_S,
        ping_timeout_s: float = PING_TIMEOUT_S,
    ) -> None:
        self._dsn = dsn
        self._secrets = _dsn_secrets(dsn)
        self.where = _describe_dsn(dsn)
        self.min_pool = min_pool
        self.max_pool = max_pool
        self.connect_timeout_s = connect_timeout_s
        self.command_timeout_s = command_timeout_s
        self.ping_timeout_s = ping_timeout_s
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()
        self._webhooks = postgres_webhooks.PostgresOutbox()

    def __repr__(self) -> str:
        return f"PostgresStore({self.where!r})"

    async def open(self) -> None:
        async with self._lock:
            if self._pool is not None:
                return
            try:
                pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=self.min_pool,
                    max_size=self.max_pool,
                    timeout=self.connect_timeout_s,
                    command_timeout=self.command_timeout_s,
                )
            except _CONNECT_ERRORS as exc:
                # Not chained: the parse error of a malformed DSN may quote it.
                raise self._error("connecting", exc) from None
            try:
                async with pool.acquire(timeout=self.connect_timeout_s) as conn:
                    await apply_postgres_migrations(conn)
                    await postgres_members.fill_name_keys(conn)
            except BaseException as exc:
                await self._close_pool(pool, exc)
                if isinstance(exc, StoreError):
                    raise StoreError(self._redact(f"Postgres store {self.where}: {exc}")) from exc
                if isinstance(exc, POSTGRES_DRIVER_ERRORS):
                    raise self._error("migrating", exc) from exc
                raise
            self._pool = pool

    async def close(self) -> None:
        async with self._lock:
            pool, self._pool = self._pool, None
            if pool is None:
                return
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await pool.close()
            except TimeoutError:
                # Connections still busy (or a server that stopped answering): drop them.
                pool.terminate()
            except POSTGRES_DRIVER_ERRORS as exc:
                pool.terminate()
                raise self._error("closing the pool", exc) from exc

    async def load(self, room_id: str) -> StoredDocument:
        # One snapshot for both reads: a compaction committed between them would otherwise
        # hide the log rows it folded into the snapshot.
        async with (
            self._connection(f"loading room {room_id!r}") as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            snapshot = await conn.fetchval(
                "SELECT state FROM document_snapshots WHERE room_id = $1", room_id
            )
            rows = await conn.fetch(
                "SELECT data FROM document_updates WHERE room_id = $1 ORDER BY id", room_id
            )
        return StoredDocument(
            snapshot=None if snapshot is None else bytes(snapshot),
            updates=[bytes(row["data"]) for row in rows],
        )

    async def append_updates(
        self,
        batch: Sequence[tuple[str, bytes, str | None]],
        authors: Collection[tuple[str, str]] = (),
        writers: Mapping[str, int] | None = None,
    ) -> None:
        if not batch and not authors:
            return
        writer_of = (writers or {}).get
        rows = [
            (room_id, bytes(update), author, writer_of(room_id))
            for room_id, update, author in batch
        ]
        async with (
            self._connection(f"appending {len(rows)} updates") as conn,
            conn.transaction(isolation="read_committed"),
        ):
            await postgres_catalog.lock_out_purges(conn)
            # A client still holding a purged note cannot bring it back: its tombstone stops it
            # (a purge committed while this waited for the lock included; none commits while
            # it is held). Checked once per room of the batch, not per row.
            rooms = {row[0] for row in rows}
            rooms.update(room_id for room_id, _ in authors)
            purged = await postgres_catalog.purged_rooms(conn, rooms)
            await conn.executemany(
                "INSERT INTO document_updates (room_id, data, author, writer) "
                "VALUES ($1, $2, $3, $4)",
                [row for row in rows if row[0] not in purged] if purged else rows,
            )
            if authors:
                await postgres_versions.record_authors(
                    conn, [pair for pair in authors if pair[0] not in purged]
                )

    async def compact(self, room_id: str, state: bytes, held: Held | None = None) -> None:
        writer, loaded = (None, None) if held is None else (held.writer, held.loaded)
        async with (
            self._connection(f"compacting room {room_id!r}") as conn,
            conn.transaction(isolation="read_committed"),
        ):
            # The purge lock first: no write waits for it holding another lock.
            await postgres_catalog.lock_out_purges(conn)
            # Two instances compacting one room serialize here. Each statement below then
            # sees what the other committed (READ COMMITTED), its snapshot included.
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))", ROOM_LOCK_NAMESPACE, room_id
            )
            if await postgres_catalog.is_purged(conn, room_id):
                return
            # What `writer` stored is held by `state`: not read (`writer = NULL` is never
            # true, so without a writer everything is).
            snapshot = await conn.fetchval(
                "SELECT CASE WHEN writer = $2 THEN NULL ELSE state END "
                "FROM document_snapshots WHERE room_id = $1",
                room_id,
                writer,
            )
            rows = await conn.fetch(
                "SELECT id, CASE WHEN writer = $2 THEN NULL ELSE data END AS data "
                "FROM document_updates WHERE room_id = $1 ORDER BY id",
                room_id,
                writer,
            )
            stored = [] if snapshot is None else [bytes(snapshot)]
            stored += [bytes(row["data"]) for row in rows if row["data"] is not None]
            merged, own = await compacted_state_off_loop(
                bytes(state), stored, f"Postgres store {self.where}: room {room_id!r}", loaded
            )
            await conn.execute(
                "INSERT INTO document_snapshots (room_id, state, updated_at, writer) "
                "VALUES ($1, $2, now(), $3) "
                "ON CONFLICT (room_id) DO UPDATE "
                "SET state = excluded.state, updated_at = excluded.updated_at, "
                "writer = excluded.writer",
                room_id,
                merged,
                writer if own else None,
            )
            if rows:
                # Exactly the rows read: identity values are handed out at insert time, not in
                # commit order, so a smaller id may commit after this transaction read the log.
                await conn.execute(
                    "DELETE FROM document_updates WHERE room_id = $1 AND id = ANY($2::bigint[])",
                    room_id,
                    [row["id"] for row in rows],
                )

    async def ping(self) -> None:
        pool = self._open_pool("answering a ping")
        try:
            async with asyncio.timeout(self.ping_timeout_s):
                async with pool.acquire() as conn:
                    await conn.fetchval("SELECT 1")
        except POSTGRES_DRIVER_ERRORS as exc:
            raise self._error("answering a ping", exc) from exc

    # --- NotificationStore ----------------------------------------------------------------

    async def create_notifications(
        self, notifications: Sequence[NewNotification]
    ) -> list[Notification]:
        encoded = [(n, encode_payload(n.payload)) for n in notifications]
        if not encoded:
            return []
        async with (
            self._connection(f"creating {len(encoded)} notifications") as conn,
            conn.transaction(),
        ):
            await _lock_users(conn, {notification.user_id for notification in notifications})
            created = await _insert_notifications(conn, encoded)
            await self._webhooks.notifications(conn, created)
        return created

    async def create_notification_once(
        self, dedup_key: str, notification: NewNotification
    ) -> Notification | None:
        encoded = [(notification, encode_payload(notification.payload))]
        async with (
            self._connection(f"creating the notification with key {dedup_key!r}") as conn,
            conn.transaction(),
        ):
            # A second caller with this key waits here until the first one's transaction
            # ends, then finds the key (None) or, if it rolled back, claims it. The key comes
            # before the user lock: no transaction holding a user lock ever waits for a key.
            claimed = await conn.fetchval(
                "INSERT INTO notification_keys (dedup_key) VALUES ($1) "
                "ON CONFLICT DO NOTHING RETURNING true",
                dedup_key,
            )
            if claimed is None:
                return None
            await _lock_users(conn, {notification.user_id})
            [created] = await _insert_notifications(conn, encoded)
            await conn.execute(
                "UPDATE notification_keys SET notification_id = $1 WHERE dedup_key = $2",
                created.id,
                dedup_key,
            )
            await self._webhooks.notifications(conn, [created])
        return created

    async def list_notifications(
        self, user_id: str, *, after_id: int = 0, unread_only: bool = False, limit: int = 100
    ) -> list[Notification]:
        page = page_size(limit)
        # Two fixed statements rather than "($3 OR read_at IS NULL)", so each keeps a plan
        # that can use its own index.
        unread = " AND read_at IS NULL" if unread_only else ""
        async with self._connection(f"listing notifications of {user_id!r}") as conn:
            rows = await conn.fetch(
                f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications "
                f"WHERE user_id = $1 AND id > $2{unread} ORDER BY id LIMIT $3",
                user_id,
                clamp_after_id(after_id),
                page,
            )
        return [from_postgres_record(row) for row in rows]

    async def mark_read(self, user_id: str, ids: Sequence[int]) -> list[int]:
        wanted = requested_ids(ids)
        if not wanted:
            return []
        async with self._connection(
            f"marking {len(wanted)} notifications of {user_id!r} read"
        ) as conn:
            # A concurrent caller marking the same row waits for this update, then finds it
            # read: each id is reported as changed once.
            rows = await conn.fetch(
                "UPDATE notifications SET read_at = now() "
                "WHERE user_id = $1 AND id = ANY($2::bigint[]) AND read_at IS NULL "
                "RETURNING id",
                user_id,
                wanted,
            )
        return sorted(int(row["id"]) for row in rows)

    async def mark_all_read(self, user_id: str) -> list[int]:
        async with self._connection(f"marking every notification of {user_id!r} read") as conn:
            rows = await conn.fetch(
                "UPDATE notifications SET read_at = now() "
                "WHERE user_id = $1 AND read_at IS NULL RETURNING id",
                user_id,
            )
        return sorted(int(row["id"]) for row in rows)

    async def last_notification_id(self) -> int:
        async with self._connection("reading the last notification id") as conn:
            last = await conn.fetchval("SELECT coalesce(max(id), 0) FROM notifications")
        return int(last)

    async def unread_count(self, user_id: str) -> int:
        async with self._connection(f"counting unread notifications of {user_id!r}") as conn:
            count = await conn.fetchval(
                "SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL",
                user_id,
            )
        return int(count)

    # --- CatalogStore ---------------------------------------------------------------------
    # Writes run in a READ COMMITTED transaction whatever the server's default: each of their
    # statements must see what a purge committed while they waited for its lock. Reads are one
    # statement each.

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
        async with self._connection(f"indexing {len(readings)} notes") as conn:
            # Most passes find the notes' fields as their rows have them: one statement then
            # (in a transaction with the deliveries it reports, when an endpoint may want them).
            if self._webhooks.may_want(*INDEX_EVENTS):
                async with conn.transaction(isolation="read_committed"):
                    unchanged = await postgres_catalog.index_unchanged(conn, readings)
                    await self._webhooks.indexed(
                        conn,
                        ((r, unchanged[r.note_key]) for r in readings if r.note_key in unchanged),
                    )
            else:
                unchanged = await postgres_catalog.index_unchanged(conn, readings)
        return [unchanged.get(r.note_key) or await self._index_one(r) for r in readings]

    async def _index_one(self, reading: NoteReading) -> Indexed:
        async with (
            self._connection(f"indexing note {reading.workspace_id}/{reading.note_id}") as conn,
            conn.transaction(isolation="read_committed"),
        ):
            indexed = await postgres_catalog.index_note(conn, reading)
            await self._webhooks.indexed(conn, [(reading, indexed)])
            return indexed

    async def create_note(
        self, workspace_id: str, note_id: str, fields: NoteFields, *, actor: str, at: str
    ) -> CatalogEntry | None:
        async with (
            self._connection(f"creating note {workspace_id}/{note_id}") as conn,
            conn.transaction(isolation="read_committed"),
        ):
            entry = await postgres_catalog.create_note(
                conn, workspace_id, note_id, fields, actor=actor, at=at
            )
            if entry is not None:
                await self._webhooks.note(conn, "note.created", entry, at)
            return entry

    async def get_note(self, workspace_id: str, note_id: str) -> CatalogEntry | None:
        async with self._connection(f"reading note {workspace_id}/{note_id}") as conn:
            return await postgres_catalog.get_note(conn, workspace_id, note_id)

    async def note_status(self, room_id: str) -> NoteStatus:
        async with self._connection(f"reading the status of {room_id!r}") as conn:
            return await postgres_catalog.note_status(conn, room_id)

    async def list_notes(self, workspace_id: str, query: CatalogQuery) -> CatalogPage:
        async with (
            self._connection(f"listing the notes of workspace {workspace_id!r}") as conn,
            conn.transaction(readonly=True),
        ):
            # Planned for its own values each time: after five runs of a prepared statement
            # the server may switch to a plan for any values, and for "the words of every
            # note" that one sorts every match (75 ms at 100,000 notes) where the page's own
            # plan reads 50 rows along notes_ranked (0.4 ms).
            await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            return await postgres_catalog.list_notes(conn, workspace_id, query)

    async def get_access(self, workspace_id: str, note_id: str) -> NoteAccess | None:
        async with self._connection(f"reading who may read note {workspace_id}/{note_id}") as conn:
            return await postgres_note_access.get_access(conn, workspace_id, note_id)

    async def set_access(
        self,
        workspace_id: str,
        note_id: str,
        *,
        visibility: Visibility,
        users: Mapping[str, str],
        at: str,
    ) -> NoteAccess | None:
        async with (
            self._connection(f"setting who may read note {workspace_id}/{note_id}") as conn,
            conn.transaction(isolation="read_committed"),
        ):
            return await postgres_note_access.set_access(
                conn, workspace_id, note_id, visibility=visibility, users=users
            )

    async def trash_note(self, workspace_id: str, note_id: str, *, at: str) -> CatalogEntry | None:
        async with self._connection(f"trashing note {workspace_id}/{note_id}") as conn:
            if not self._webhooks.may_want("note.trashed"):
                return await postgres_catalog.trash_note(conn, workspace_id, note_id, at=at)
            async with conn.transaction(isolation="read_committed"):
                entry = await postgres_catalog.trash_note(conn, workspace_id, note_id, at=at)
                # Trashed now, not before (a trash keeps the first time).
                if entry is not None and entry.trashed_at == at:
                    await self._webhooks.note(conn, "note.trashed", entry, at)
                return entry

    async def restore_note(self, workspace_id: str, note_id: str) -> CatalogEntry | None:
        async with self._connection(f"restoring note {workspace_id}/{note_id}") as conn:
            if not self._webhooks.may_want("note.restored"):
                return await postgres_catalog.restore_note(conn, workspace_id, note_id)
            async with conn.transaction(isolation="read_committed"):
                trashed = await self._webhooks.wants(
                    conn, "note.restored", workspace_id
                ) and await postgres_webhooks.lock_trashed(conn, workspace_id, note_id)
                entry = await postgres_catalog.restore_note(conn, workspace_id, note_id)
                if entry is not None and trashed:
                    await self._webhooks.note(conn, "note.restored", entry, format_timestamp())
                return entry

    async def purge_note(self, workspace_id: str, note_id: str, *, at: str) -> bool:
        async with (
            self._connection(f"purging note {workspace_id}/{note_id}") as conn,
            conn.transaction(isolation="read_committed"),
        ):
            purged = await postgres_catalog.purge_note(conn, workspace_id, note_id, at=at)
            if purged:
                await self._webhooks.purged(conn, workspace_id, note_id, at)
            return purged

    async def trashed_before(self, cutoff: str, *, limit: int = 100) -> list[str]:
        async with self._connection("listing notes due for purging") as conn:
            return await postgres_catalog.trashed_before(conn, cutoff, limit=limit)

    async def rooms_to_index(
        self,
        *,
        workspace_id: str | None = None,
        everything: bool = False,
        limit: int = 100,
        after: str = "",
    ) -> list[str]:
        async with self._connection("listing notes to index") as conn:
            return await postgres_catalog.rooms_to_index(
                conn, workspace_id=workspace_id, everything=everything, limit=limit, after=after
            )

    async def first_stored_at(self, room_id: str) -> str | None:
        async with self._connection(f"reading the age of {room_id!r}") as conn:
            return await postgres_catalog.first_stored_at(conn, room_id)

    # --- MemberStore ----------------------------------------------------------------------
    # Writes run in a READ COMMITTED transaction whatever the server's default: a write that
    # waited for another instance's write of the same row then reads that row (an upsert
    # updates it, `put_member` locks it), where a stricter level would fail the write.

    async def record_seen(self, seen: Sequence[SeenMember]) -> None:
        if not seen:
            return
        async with (
            self._connection(f"recording {len(seen)} members seen") as conn,
            conn.transaction(isolation="read_committed"),
        ):
            await postgres_members.record_seen(conn, seen)

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
        async with (
            self._connection(f"putting member {user_id!r} of workspace {workspace_id!r}") as conn,
            conn.transaction(isolation="read_committed"),
        ):
            member, added = await postgres_members.put_member(
                conn, workspace_id, user_id, role=role, name=name, email=email, at=at
            )
            if added:
                await self._webhooks.member(conn, "member.added", member, at)
            return member, added

    async def remove_member(self, workspace_id: str, user_id: str, *, at: str) -> Member | None:
        what = f"removing member {user_id!r} of workspace {workspace_id!r}"
        async with self._connection(what) as conn, conn.transaction(isolation="read_committed"):
            removed = await postgres_members.remove_member(conn, workspace_id, user_id, at=at)
            await self._webhooks.member(conn, "member.removed", removed, at)
            return removed

    async def get_member(self, workspace_id: str, user_id: str) -> Member | None:
        what = f"reading member {user_id!r} of workspace {workspace_id!r}"
        async with self._connection(what) as conn:
            return await postgres_members.get_member(conn, workspace_id, user_id)

    async def list_members(
        self, workspace_id: str, *, prefix: str = "", after: str = "", limit: int = 50
    ) -> list[Member]:
        async with self._connection(f"listing the members of workspace {workspace_id!r}") as conn:
            return await postgres_members.list_members(
                conn, workspace_id, prefix=prefix, after=after, limit=limit
            )

    async def managed_members(self) -> list[Member]:
        async with self._connection("listing the managed members") as conn:
            return await postgres_members.managed_members(conn)

    async def non_members(self, workspace_id: str, user_ids: Sequence[str]) -> list[str]:
        what = f"checking {len(user_ids)} members of workspace {workspace_id!r}"
        async with self._connection(what) as conn:
            return await postgres_members.non_members(conn, workspace_id, user_ids)

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
        # Before the transaction, off the event loop: no lock is held meanwhile.
        packed = await pack_state(state)
        async with (
            self._connection(f"adding a version of room {room_id!r}") as conn,
            conn.transaction(isolation="read_committed"),
        ):
            version = await postgres_versions.add_version(
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
        async with self._connection(f"listing the versions of {room_id!r}") as conn:
            return await postgres_versions.list_versions(conn, room_id, limit=limit, before=before)

    async def get_version(self, room_id: str, version_id: str) -> Version | None:
        async with self._connection(f"reading version {version_id!r} of {room_id!r}") as conn:
            return await postgres_versions.get_version(conn, room_id, version_id)

    async def version_state(self, room_id: str, version_id: str) -> bytes | None:
        what = f"reading the state of version {version_id!r} of {room_id!r}"
        async with self._connection(what) as conn:
            data = await postgres_versions.state_data(conn, room_id, version_id)
        if data is None:
            return None
        try:
            return await unpack_state(data)
        except StoreError as exc:
            raise StoreError(f"Postgres store {self.where}: {what} failed: {exc}") from exc

    async def delete_versions(self, room_id: str, version_ids: Collection[str]) -> int:
        async with (
            self._connection(f"deleting {len(version_ids)} versions of {room_id!r}") as conn,
            conn.transaction(isolation="read_committed"),
        ):
            return await postgres_versions.delete_versions(conn, room_id, version_ids)

    async def rooms_with_versions(
        self, *, created_before: str, after: str | None, limit: int
    ) -> list[str]:
        async with self._connection("listing rooms with old versions") as conn:
            return await postgres_versions.rooms_with_versions(
                conn, created_before=created_before, after=after, limit=limit
            )

    async def version_bytes(self) -> int:
        async with self._connection("summing the versions' bytes") as conn:
            return await postgres_versions.version_bytes(conn)

    # --- EmailStore -----------------------------------------------------------------------

    async def email_recipient(self, user_id: str) -> Recipient:
        async with self._connection(f"reading the recipient {user_id!r}") as conn:
            return await postgres_email.email_recipient(conn, user_id)

    async def claim_digest(
        self, user_id: str, *, claim_id: str, now: float, hold_s: float
    ) -> DigestClaim | None:
        async with self._connection(f"claiming the digest of {user_id!r}") as conn:
            return await postgres_email.claim_digest(
                conn, user_id, claim_id=claim_id, now=now, hold_s=hold_s
            )

    async def digest_due_at(self, user_id: str) -> float | None:
        async with self._connection(f"reading when the digest of {user_id!r} is due") as conn:
            return await postgres_email.digest_due_at(conn, user_id)

    async def unemailed_notifications(
        self, user_id: str, *, after_id: int, limit: int
    ) -> tuple[list[Notification], int]:
        what = f"listing the notifications to email {user_id!r}"
        async with self._connection(what) as conn, conn.transaction(isolation="repeatable_read"):
            # One snapshot: the count agrees with the page.
            return await postgres_email.unemailed_notifications(
                conn, user_id, after_id=clamp_after_id(after_id), limit=limit
            )

    async def finish_digest(
        self, claim: DigestClaim, *, emailed_up_to: int, next_allowed_at: float, at: str
    ) -> bool:
        async with self._connection(f"recording the digest of {claim.user_id!r}") as conn:
            return await postgres_email.finish_digest(
                conn, claim, emailed_up_to=emailed_up_to, next_allowed_at=next_allowed_at, at=at
            )

    async def release_digest(self, claim: DigestClaim, *, next_allowed_at: float) -> bool:
        async with self._connection(f"releasing the digest of {claim.user_id!r}") as conn:
            return await postgres_email.release_digest(conn, claim, next_allowed_at=next_allowed_at)

    async def set_email_opt_out(self, user_id: str, *, opted_out: bool, at: str) -> None:
        async with self._connection(f"recording the email opt-out of {user_id!r}") as conn:
            await postgres_email.set_email_opt_out(conn, user_id, opted_out=opted_out, at=at)

    # --- ReminderStore --------------------------------------------------------------------

    async def arm_reminders(
        self, room_id: str, due: str | None, reminders: Sequence[tuple[str, str]]
    ) -> bool:
        check_reminders(reminders)
        async with (
            self._connection(f"arming the reminders of {room_id!r}") as conn,
            conn.transaction(isolation="read_committed"),
        ):
            return await postgres_reminders.arm_reminders(conn, room_id, due, reminders)

    async def armed_due(self, room_id: str) -> str | None:
        async with self._connection(f"reading the armed due of {room_id!r}") as conn:
            return await postgres_reminders.armed_due(conn, room_id)

    async def pending_reminders(self, room_id: str) -> list[Reminder]:
        async with self._connection(f"listing the reminders of {room_id!r}") as conn:
            return await postgres_reminders.pending_reminders(conn, room_id)

    async def claim_reminders(self, *, now: str, lease_until: str, limit: int) -> list[Reminder]:
        async with (
            self._connection("claiming the reminders due") as conn,
            conn.transaction(isolation="read_committed"),
        ):
            return await postgres_reminders.claim_reminders(
                conn, now=now, lease_until=lease_until, limit=limit
            )

    async def finish_reminder(self, reminder: Reminder) -> bool:
        what = f"finishing the {reminder.kind} reminder of {reminder.room_id!r}"
        async with self._connection(what) as conn:
            return await postgres_reminders.finish_reminder(conn, reminder)

    async def next_fire_at(self) -> str | None:
        async with self._connection("reading the next reminder's time") as conn:
            return await postgres_reminders.next_fire_at(conn)

    async def unarmed_notes(self, *, after: DueNote, limit: int) -> list[DueNote]:
        async with self._connection("listing notes without reminders") as conn:
            return await postgres_reminders.unarmed_notes(conn, after=after, limit=limit)

    # --- WebhookStore ---------------------------------------------------------------------

    async def add_endpoint(self, endpoint: Endpoint) -> None:
        async with self._connection(f"adding webhook {endpoint.id!r}") as conn:
            await postgres_webhooks.add_endpoint(conn, endpoint)
        self._webhooks.routes.forget()
        # Every other instance reads its routes again within this time.
        await asyncio.sleep(ROUTES_TTL_S)

    async def list_endpoints(self) -> list[Endpoint]:
        async with self._connection("listing the webhooks") as conn:
            return await postgres_webhooks.list_endpoints(conn)

    async def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        async with self._connection(f"reading webhook {endpoint_id!r}") as conn:
            return await postgres_webhooks.get_endpoint(conn, endpoint_id)

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        async with self._connection(f"deleting webhook {endpoint_id!r}") as conn:
            deleted = await postgres_webhooks.delete_endpoint(conn, endpoint_id)
        self._webhooks.routes.forget()
        return deleted

    async def add_test_delivery(self, endpoint_id: str, event: WebhookEvent) -> Delivery | None:
        what = f"testing webhook {endpoint_id!r}"
        async with self._connection(what) as conn, conn.transaction():
            return await postgres_webhooks.add_test_delivery(
                conn, self._webhooks, endpoint_id, event
            )

    async def postpone_delivery(self, delivery_id: str, lease: str, *, until: str) -> bool:
        async with self._connection(f"postponing webhook delivery {delivery_id!r}") as conn:
            return await postgres_webhooks.postpone_delivery(conn, delivery_id, lease, until)

    async def update_endpoint(
        self, endpoint_id: str, change: EndpointChange, *, at: str
    ) -> Endpoint | None:
        async with self._connection(f"updating webhook {endpoint_id!r}") as conn:
            updated = await postgres_webhooks.update_endpoint(conn, endpoint_id, change, at=at)
        self._webhooks.routes.forget()
        # Every other instance reads its routes again within this time.
        await asyncio.sleep(ROUTES_TTL_S)
        return updated

    async def replace_secrets(
        self,
        endpoint_id: str,
        expected: SecretPair,
        replacement: SecretPair,
    ) -> bool:
        async with self._connection(f"storing webhook {endpoint_id!r}'s secrets") as conn:
            return await postgres_webhooks.replace_secrets(conn, endpoint_id, expected, replacement)

    async def rotate_secret(
        self, endpoint_id: str, secret: str, *, previous_until: str | None
    ) -> Endpoint | None:
        async with self._connection(f"rotating webhook {endpoint_id!r}") as conn:
            return await postgres_webhooks.rotate_secret(
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
        async with self._connection("claiming webhook deliveries") as conn:
            # Without an enabled endpoint nothing is due.
            if not await self._webhooks.any_enabled(conn):
                return []
            return await postgres_webhooks.claim_deliveries(
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
        async with self._connection(what) as conn, conn.transaction(isolation="read_committed"):
            return await postgres_webhooks.record_attempt(
                conn, delivery_id, lease, record, disable_after_s=disable_after_s
            )

    async def list_deliveries(
        self, endpoint_id: str, *, limit: int, before: str | None = None
    ) -> list[Delivery]:
        what = f"listing the deliveries of webhook {endpoint_id!r}"
        async with self._connection(what) as conn, conn.transaction(isolation="repeatable_read"):
            # One snapshot: the attempts are those of the deliveries read.
            return await postgres_webhooks.list_deliveries(
                conn, endpoint_id, limit=limit, before=before
            )

    async def get_delivery(self, endpoint_id: str, delivery_id: str) -> Delivery | None:
        what = f"reading webhook delivery {delivery_id!r}"
        async with self._connection(what) as conn, conn.transaction(isolation="repeatable_read"):
            return await postgres_webhooks.get_delivery(conn, endpoint_id, delivery_id)

    async def retry_delivery(
        self, endpoint_id: str, delivery_id: str, *, now: str
    ) -> Delivery | None:
        what = f"retrying webhook delivery {delivery_id!r}"
        async with self._connection(what) as conn, conn.transaction(isolation="read_committed"):
            return await postgres_webhooks.retry_delivery(
                conn, self._webhooks, endpoint_id, delivery_id, now
            )

    async def delete_finished_deliveries(self, *, finished_before: str, limit: int) -> int:
        async with self._connection("deleting old webhook deliveries") as conn:
            return await postgres_webhooks.delete_finished_deliveries(
                conn, finished_before=finished_before, limit=limit
            )

    # --- RevocationStore ------------------------------------------------------------------

    async def put_revocation(self, user_id: str, until: datetime) -> None:
        async with self._connection(f"revoking {user_id!r}") as conn, conn.transaction():
            # Expired rows go here, so the table holds about the live revocations only.
            await conn.execute("DELETE FROM revocations WHERE until <= now()")
            await conn.execute(
                "INSERT INTO revocations (user_id, until) VALUES ($1, $2) "
                "ON CONFLICT (user_id) DO UPDATE SET until = excluded.until, created_at = now()",
                user_id,
                until,
            )
            await conn.execute(
                "DELETE FROM revocations WHERE user_id = $1 AND until <= now()", user_id
            )

    async def active_revocations(self, now: datetime) -> dict[str, datetime]:
        async with self._connection("reading revocations") as conn:
            rows = await conn.fetch("SELECT user_id, until FROM revocations WHERE until > $1", now)
        return {str(row["user_id"]): row["until"] for row in rows}

    @asynccontextmanager
    async def _connection(self, what: str) -> AsyncIterator[Any]:
        """Hold a pooled connection; driver errors raised inside become `StoreError`."""
        pool = self._open_pool(what)
        queued = False
        try:
            # Waiting for a free connection is waiting for other commands: bounded like them.
            async with pool.acquire(timeout=self.command_timeout_s) as conn:
                try:
                    yield conn
                finally:
                    queued = self._webhooks.take(conn)
        except POSTGRES_DRIVER_ERRORS as exc:
            raise self._error(what, exc) from exc
        # Deliveries written through `conn` are committed (its transaction ended first).
        if queued:
            self._webhooks.notify()

    def _open_pool(self, what: str) -> Any:
        pool = self._pool
        if pool is None:
            raise StoreError(f"Postgres store {self.where}: {what} failed: the store is not open")
        return pool

    async def _close_pool(self, pool: Any, exc: BaseException) -> None:
        """Close `pool` because `exc` made the store unusable; failures become notes."""
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await pool.close()
        except _CLOSE_ERRORS as close_exc:
            pool.terminate()
            exc.add_note(self._redact(f"closing the pool also failed: {close_exc}"))

    def _error(self, what: str, exc: BaseException) -> StoreError:
        return StoreError(
            self._redact(
                f"Postgres store {self.where}: {what} failed: {describe_driver_error(exc)}"
            )
        )

    def _redact(self, message: str) -> str:
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return message


async def _lock_users(conn: Any, user_ids: Collection[str]) -> None:
    """Take the transaction-scoped creation lock of each user, in one global order.

    Identity values are drawn at insert time but become visible at commit, so without this
    lock a user's notification 11 could commit while 10 is still in flight, and a client
    that replayed "after 11" would never see 10. Holding the user's lock from before its ids
    are drawn until commit makes a user's notifications commit in id order. Locks are taken
    in key order, so two batches naming the same users cannot deadlock.
    """
    # The lock calls are evaluated after the sort: PostgreSQL computes output expressions
    # after ORDER BY when they are not themselves sorted on (SELECT reference, "SELECT List").
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, key) "
        "FROM (SELECT DISTINCT hashtext(user_id) AS key FROM unnest($2::text[]) AS user_id) "
        "AS keys ORDER BY key",
        NOTIFICATION_USER_LOCK_NAMESPACE,
        sorted(user_ids),
    )


async def _insert_notifications(
    conn: Any, encoded: Sequence[tuple[NewNotification, str]]
) -> list[Notification]:
    """Insert `(notification, payload_json)` pairs; ids increase in the order given."""
    # One statement however many rows. The ids are drawn first and sorted, since the order in
    # which one INSERT ... SELECT draws identity values is not specified.
    id_rows = await conn.fetch(
        "SELECT nextval(pg_get_serial_sequence('notifications', 'id')) AS id "
        "FROM generate_series(1, $1)",
        len(encoded),
    )
    ids = sorted(int(row["id"]) for row in id_rows)
    rows = await conn.fetch(
        "INSERT INTO notifications (id, user_id, workspace_id, kind, payload) "
        "OVERRIDING SYSTEM VALUE "
        "SELECT id, user_id, workspace_id, kind, payload::json "
        "FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[]) "
        "AS new (id, user_id, workspace_id, kind, payload) "
        "RETURNING id, created_at",
        ids,
        [notification.user_id for notification, _ in encoded],
        [notification.workspace_id for notification, _ in encoded],
        [notification.kind for notification, _ in encoded],
        [payload_json for _, payload_json in encoded],
    )
    created_at = {int(row["id"]): format_timestamp(row["created_at"]) for row in rows}
    return [
        Notification(
            id=notification_id,
            user_id=notification.user_id,
            workspace_id=notification.workspace_id,
            kind=notification.kind,
            payload=decode_payload(payload_json),
            created_at=created_at[notification_id],
            read_at=None,
        )
        for notification_id, (notification, payload_json) in zip(ids, encoded, strict=True)
    ]


def _dsn_secrets(dsn: str) -> list[str]:
    """The password of `dsn` (in the authority or a `password=` parameter), as it may appear."""
    secrets: set[str] = set()
    authority = dsn.partition("://")[2].partition("/")[0].partition("?")[0]
    userinfo, at, _ = authority.rpartition("@")
    if at and ":" in userinfo:
        password = userinfo.partition(":")[2]
        secrets |= {password, unquote(password)}
    query = dsn.partition("?")[2]
    for password in parse_qs(query).get("password", []):
        secrets.add(password)
    return sorted((secret for secret in secrets if secret), key=len, reverse=True)


def _describe_dsn(dsn: str) -> str:
    """`host:port/database` of `dsn`, without user or password; a placeholder if unparsable."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "(unparsable DSN)"
    host = parts.netloc.rpartition("@")[2] or "(default host)"
    database = parts.path.lstrip("/") or "(default database)"
    return f"{host}/{database}"
