"""`MemoryStore`: the in-memory backend, for `memory://` and as the test fake."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from collab.errors import StoreError
from collab.store.base import Held, StoredDocument, compacted_state
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
from collab.store.email import DigestClaim, Recipient, digest_page
from collab.store.members import Member, SeenMember
from collab.store.memory_catalog import MemoryCatalog
from collab.store.memory_email import MemoryEmail
from collab.store.memory_members import MemoryMembers
from collab.store.memory_reminders import MemoryReminders
from collab.store.memory_versions import MemoryVersions
from collab.store.memory_webhooks import MemoryWebhooks
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
    AttemptRecord,
    ClaimedDelivery,
    Delivery,
    Endpoint,
    EndpointChange,
    OutboxListener,
    SecretPair,
    WebhookEvent,
)


class MemoryStore:
    """A `Database` in process memory; everything survives `close()` + `open()` but not the
    process. Timestamps are formatted by `format_timestamp`.

    Like a real backend it refuses calls before `open()` and after `close()` (`StoreError`).

    Fault injection for tests:

    - `fail_with`: while set to a `StoreError`, every call (including `open` and `close`)
      raises it and changes nothing.
    - `fail_next`: when set, the next call raises it and changes nothing; it is then cleared.
    """

    def __init__(self) -> None:
        self.fail_with: StoreError | None = None
        self.fail_next: StoreError | None = None
        self._is_open = False
        # Each with the number of the live document that holds it (`Held`), if any.
        self._snapshots: dict[str, tuple[bytes, int | None]] = {}
        self._updates: dict[str, list[tuple[bytes, int | None]]] = {}
        self._members = MemoryMembers()
        # Per user, by id; dicts keep insertion order, which is id order.
        self._notifications: dict[str, dict[int, _StoredNotification]] = {}
        self._notification_keys: dict[str, int] = {}
        self._last_notification_id = 0
        self._revocations: dict[str, datetime] = {}
        self._versions = MemoryVersions()
        self._catalog = MemoryCatalog(self._snapshots, self._updates, self._versions)
        self._webhooks = MemoryWebhooks()
        self._reminders = MemoryReminders()
        self._email = MemoryEmail(self._members)

    async def open(self) -> None:
        self._raise_injected_fault()
        self._is_open = True

    async def close(self) -> None:
        self._raise_injected_fault()
        self._is_open = False

    async def load(self, room_id: str) -> StoredDocument:
        self._check_callable()
        snapshot = self._snapshots.get(room_id)
        return StoredDocument(
            snapshot=None if snapshot is None else snapshot[0],
            updates=[update for update, _ in self._updates.get(room_id, ())],
        )

    async def append_updates(
        self,
        batch: Sequence[tuple[str, bytes, str | None]],
        authors: Collection[tuple[str, str]] = (),
        writers: Mapping[str, int] | None = None,
    ) -> None:
        self._check_callable()
        stored_at = format_timestamp()
        writer_of = (writers or {}).get
        # The log keeps the updates only: nothing reads an update's author back.
        for room_id, update, _ in batch:
            if self._catalog.is_purged(room_id):
                continue  # a client still holding a purged note cannot bring it back
            self._catalog.first_stored.setdefault(room_id, stored_at)
            self._updates.setdefault(room_id, []).append((bytes(update), writer_of(room_id)))
        self._versions.record_authors(
            (room_id, user_id)
            for room_id, user_id in authors
            if not self._catalog.is_purged(room_id)
        )

    async def compact(self, room_id: str, state: bytes, held: Held | None = None) -> None:
        writer, loaded = (None, None) if held is None else (held.writer, held.loaded)
        self._check_callable()
        if self._catalog.is_purged(room_id):
            return
        self._catalog.first_stored.setdefault(room_id, format_timestamp())
        snapshot = self._snapshots.get(room_id)
        parts = [] if snapshot is None else [snapshot]
        parts += self._updates.get(room_id, [])
        # What `writer` stored is held by `state` (a None writer holds nothing).
        stored = [part for part, by in parts if by is None or by != writer]
        # In one step, the digest too: no await may come between reading the log and
        # dropping it, nothing else here keeps it as read.
        merged, own = compacted_state(
            bytes(state), stored, f"memory store: room {room_id!r}", loaded
        )
        self._snapshots[room_id] = (merged, writer if own else None)
        self._updates.pop(room_id, None)

    async def ping(self) -> None:
        self._check_callable()

    # --- NotificationStore ----------------------------------------------------------------

    async def create_notifications(
        self, notifications: Sequence[NewNotification]
    ) -> list[Notification]:
        payloads = [encode_payload(notification.payload) for notification in notifications]
        self._check_callable()
        created_at = format_timestamp()
        created = [
            self._insert(notification, payload_json, created_at)
            for notification, payload_json in zip(notifications, payloads, strict=True)
        ]
        await self._webhooks.notifications(None, created)
        return created

    async def create_notification_once(
        self, dedup_key: str, notification: NewNotification
    ) -> Notification | None:
        payload_json = encode_payload(notification.payload)
        self._check_callable()
        if dedup_key in self._notification_keys:
            return None
        created = self._insert(notification, payload_json, format_timestamp())
        self._notification_keys[dedup_key] = created.id
        await self._webhooks.notifications(None, [created])
        return created

    async def list_notifications(
        self, user_id: str, *, after_id: int = 0, unread_only: bool = False, limit: int = 100
    ) -> list[Notification]:
        page = page_size(limit)
        after_id = clamp_after_id(after_id)
        self._check_callable()
        found: list[Notification] = []
        for stored in self._notifications.get(user_id, {}).values():
            if len(found) == page:
                break
            if stored.id > after_id and not (unread_only and stored.read_at is not None):
                found.append(stored.to_notification())
        return found

    async def mark_read(self, user_id: str, ids: Sequence[int]) -> list[int]:
        self._check_callable()
        own = self._notifications.get(user_id, {})
        return self._mark(own[i] for i in requested_ids(ids) if i in own)

    async def mark_all_read(self, user_id: str) -> list[int]:
        self._check_callable()
        return self._mark(self._notifications.get(user_id, {}).values())

    async def last_notification_id(self) -> int:
        self._check_callable()
        return self._last_notification_id

    async def unread_count(self, user_id: str) -> int:
        self._check_callable()
        return sum(
            stored.read_at is None for stored in self._notifications.get(user_id, {}).values()
        )

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
        self._check_callable()
        written = [
            self._catalog.index_note(
                r.workspace_id, r.note_id, r.fields, clock=r.clock, actor=r.actor, at=r.at
            )
            for r in readings
        ]
        await self._webhooks.indexed(None, zip(readings, written, strict=True))
        return written

    async def create_note(
        self, workspace_id: str, note_id: str, fields: NoteFields, *, actor: str, at: str
    ) -> CatalogEntry | None:
        self._check_callable()
        entry = self._catalog.create_note(workspace_id, note_id, fields, actor=actor, at=at)
        if entry is not None:
            await self._webhooks.note(None, "note.created", entry, at)
        return entry

    async def get_note(self, workspace_id: str, note_id: str) -> CatalogEntry | None:
        self._check_callable()
        return self._catalog.get_note(workspace_id, note_id)

    async def note_status(self, room_id: str) -> NoteStatus:
        self._check_callable()
        return self._catalog.note_status(room_id)

    async def list_notes(self, workspace_id: str, query: CatalogQuery) -> CatalogPage:
        self._check_callable()
        return self._catalog.list_notes(workspace_id, query)

    async def get_access(self, workspace_id: str, note_id: str) -> NoteAccess | None:
        self._check_callable()
        return self._catalog.get_access(workspace_id, note_id)

    async def set_access(
        self,
        workspace_id: str,
        note_id: str,
        *,
        visibility: Visibility,
        users: Mapping[str, str],
        at: str,
    ) -> NoteAccess | None:
        self._check_callable()
        return self._catalog.set_access(workspace_id, note_id, visibility=visibility, users=users)

    async def trash_note(self, workspace_id: str, note_id: str, *, at: str) -> CatalogEntry | None:
        self._check_callable()
        entry = self._catalog.trash_note(workspace_id, note_id, at=at)
        if entry is not None and entry.trashed_at == at:
            await self._webhooks.note(None, "note.trashed", entry, at)
        return entry

    async def restore_note(self, workspace_id: str, note_id: str) -> CatalogEntry | None:
        self._check_callable()
        before = self._catalog.get_note(workspace_id, note_id)
        entry = self._catalog.restore_note(workspace_id, note_id)
        if entry is not None and before is not None and before.trashed_at is not None:
            await self._webhooks.note(None, "note.restored", entry, format_timestamp())
        return entry

    async def purge_note(self, workspace_id: str, note_id: str, *, at: str) -> bool:
        self._check_callable()
        self._reminders.forget(f"{workspace_id}/{note_id}")
        purged = self._catalog.purge_note(workspace_id, note_id, at=at)
        if purged:
            await self._webhooks.purged(None, workspace_id, note_id, at)
        return purged

    async def trashed_before(self, cutoff: str, *, limit: int = 100) -> list[str]:
        self._check_callable()
        return self._catalog.trashed_before(cutoff, limit=limit)

    async def rooms_to_index(
        self,
        *,
        workspace_id: str | None = None,
        everything: bool = False,
        limit: int = 100,
        after: str = "",
    ) -> list[str]:
        self._check_callable()
        return self._catalog.rooms_to_index(
            workspace_id=workspace_id, everything=everything, limit=limit, after=after
        )

    async def first_stored_at(self, room_id: str) -> str | None:
        self._check_callable()
        return self._catalog.first_stored.get(room_id)

    # --- MemberStore ----------------------------------------------------------------------

    async def record_seen(self, seen: Sequence[SeenMember]) -> None:
        self._check_callable()
        self._members.record_seen(seen)

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
        self._check_callable()
        member, added = self._members.put_member(
            workspace_id, user_id, role=role, name=name, email=email
        )
        if added:
            await self._webhooks.member(None, "member.added", member, at)
        return member, added

    async def remove_member(self, workspace_id: str, user_id: str, *, at: str) -> Member | None:
        self._check_callable()
        removed = self._members.remove_member(workspace_id, user_id, at=at)
        await self._webhooks.member(None, "member.removed", removed, at)
        return removed

    async def get_member(self, workspace_id: str, user_id: str) -> Member | None:
        self._check_callable()
        return self._members.get_member(workspace_id, user_id)

    async def list_members(
        self, workspace_id: str, *, prefix: str = "", after: str = "", limit: int = 50
    ) -> list[Member]:
        self._check_callable()
        return self._members.list_members(workspace_id, prefix=prefix, after=after, limit=limit)

    async def managed_members(self) -> list[Member]:
        self._check_callable()
        return self._members.managed_members()

    async def non_members(self, workspace_id: str, user_ids: Sequence[str]) -> list[str]:
        self._check_callable()
        return self._members.non_members(workspace_id, user_ids)

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
        packed = await pack_state(state)
        # Checked after the await: nothing else runs between the check and the change.
        self._check_callable()
        if self._catalog.is_purged(room_id):
            return None
        version = self._versions.add_version(
            room_id,
            packed,
            kind=kind,
            name=name,
            created_by=created_by,
            at=at,
            min_gap_s=min_gap_s,
        )
        await self._webhooks.version(None, version)
        return version

    async def list_versions(
        self, room_id: str, *, limit: int, before: str | None = None
    ) -> list[Version]:
        self._check_callable()
        return self._versions.list_versions(room_id, limit=limit, before=before)

    async def get_version(self, room_id: str, version_id: str) -> Version | None:
        self._check_callable()
        return self._versions.get_version(room_id, version_id)

    async def version_state(self, room_id: str, version_id: str) -> bytes | None:
        self._check_callable()
        data = self._versions.state_data(room_id, version_id)
        return None if data is None else await unpack_state(data)

    async def delete_versions(self, room_id: str, version_ids: Collection[str]) -> int:
        self._check_callable()
        return self._versions.delete_versions(room_id, version_ids)

    async def rooms_with_versions(
        self, *, created_before: str, after: str | None, limit: int
    ) -> list[str]:
        self._check_callable()
        return self._versions.rooms_with_versions(
            created_before=created_before, after=after, limit=limit
        )

    async def version_bytes(self) -> int:
        self._check_callable()
        return self._versions.version_bytes()

    # --- EmailStore -----------------------------------------------------------------------

    async def email_recipient(self, user_id: str) -> Recipient:
        self._check_callable()
        return self._email.email_recipient(user_id)

    async def claim_digest(
        self, user_id: str, *, claim_id: str, now: float, hold_s: float
    ) -> DigestClaim | None:
        self._check_callable()
        return self._email.claim_digest(user_id, claim_id=claim_id, now=now, hold_s=hold_s)

    async def digest_due_at(self, user_id: str) -> float | None:
        self._check_callable()
        return self._email.digest_due_at(user_id)

    async def unemailed_notifications(
        self, user_id: str, *, after_id: int, limit: int
    ) -> tuple[list[Notification], int]:
        self._check_callable()
        pending = [
            stored
            for stored in reversed(self._notifications.get(user_id, {}).values())
            if stored.id > after_id and stored.read_at is None
        ]
        shown = pending[: digest_page(limit)]
        return [stored.to_notification() for stored in shown], len(pending)

    async def finish_digest(
        self, claim: DigestClaim, *, emailed_up_to: int, next_allowed_at: float, at: str
    ) -> bool:
        self._check_callable()
        return self._email.finish_digest(
            claim, emailed_up_to=emailed_up_to, next_allowed_at=next_allowed_at, at=at
        )

    async def release_digest(self, claim: DigestClaim, *, next_allowed_at: float) -> bool:
        self._check_callable()
        return self._email.release_digest(claim, next_allowed_at=next_allowed_at)

    async def set_email_opt_out(self, user_id: str, *, opted_out: bool, at: str) -> None:
        self._check_callable()
        self._email.set_email_opt_out(user_id, opted_out=opted_out, at=at)

    # --- ReminderStore --------------------------------------------------------------------

    async def arm_reminders(
        self, room_id: str, due: str | None, reminders: Sequence[tuple[str, str]]
    ) -> bool:
        check_reminders(reminders)
        self._check_callable()
        if due is not None and self._catalog.is_purged(room_id):
            return False
        return self._reminders.arm(room_id, due, reminders)

    async def armed_due(self, room_id: str) -> str | None:
        self._check_callable()
        return self._reminders.armed_due(room_id)

    async def pending_reminders(self, room_id: str) -> list[Reminder]:
        self._check_callable()
        return self._reminders.pending(room_id)

    async def claim_reminders(self, *, now: str, lease_until: str, limit: int) -> list[Reminder]:
        self._check_callable()
        return self._reminders.claim(now=now, lease_until=lease_until, limit=limit)

    async def finish_reminder(self, reminder: Reminder) -> bool:
        self._check_callable()
        return self._reminders.finish(reminder)

    async def next_fire_at(self) -> str | None:
        self._check_callable()
        return self._reminders.next_fire_at()

    async def unarmed_notes(self, *, after: DueNote, limit: int) -> list[DueNote]:
        self._check_callable()
        return self._reminders.unarmed(self._catalog.entries(), after=after, limit=limit)

    # --- WebhookStore ---------------------------------------------------------------------

    async def add_endpoint(self, endpoint: Endpoint) -> None:
        self._check_callable()
        self._webhooks.add_endpoint(endpoint)

    async def list_endpoints(self) -> list[Endpoint]:
        self._check_callable()
        return self._webhooks.list_endpoints()

    async def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        self._check_callable()
        return self._webhooks.get_endpoint(endpoint_id)

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        self._check_callable()
        return self._webhooks.delete_endpoint(endpoint_id)

    async def add_test_delivery(self, endpoint_id: str, event: WebhookEvent) -> Delivery | None:
        self._check_callable()
        return self._webhooks.add_test_delivery(endpoint_id, event)

    async def postpone_delivery(self, delivery_id: str, lease: str, *, until: str) -> bool:
        self._check_callable()
        return self._webhooks.postpone_delivery(delivery_id, lease, until=until)

    async def update_endpoint(
        self, endpoint_id: str, change: EndpointChange, *, at: str
    ) -> Endpoint | None:
        self._check_callable()
        return self._webhooks.update_endpoint(endpoint_id, change, at=at)

    async def replace_secrets(
        self,
        endpoint_id: str,
        expected: SecretPair,
        replacement: SecretPair,
    ) -> bool:
        self._check_callable()
        return self._webhooks.replace_secrets(endpoint_id, expected, replacement)

    async def rotate_secret(
        self, endpoint_id: str, secret: str, *, previous_until: str | None
    ) -> Endpoint | None:
        self._check_callable()
        return self._webhooks.rotate_secret(endpoint_id, secret, previous_until=previous_until)

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
        self._check_callable()
        return self._webhooks.claim_deliveries(
            now=now, lease_until=lease_until, lease=lease, limit=limit, per_endpoint=per_endpoint
        )

    async def record_attempt(
        self, delivery_id: str, lease: str, record: AttemptRecord, *, disable_after_s: float
    ) -> bool:
        self._check_callable()
        return self._webhooks.record_attempt(
            delivery_id, lease, record, disable_after_s=disable_after_s
        )

    async def list_deliveries(
        self, endpoint_id: str, *, limit: int, before: str | None = None
    ) -> list[Delivery]:
        self._check_callable()
        return self._webhooks.list_deliveries(endpoint_id, limit=limit, before=before)

    async def get_delivery(self, endpoint_id: str, delivery_id: str) -> Delivery | None:
        self._check_callable()
        return self._webhooks.get_delivery(endpoint_id, delivery_id)

    async def retry_delivery(
        self, endpoint_id: str, delivery_id: str, *, now: str
    ) -> Delivery | None:
        self._check_callable()
        return self._webhooks.retry_delivery(endpoint_id, delivery_id, now=now)

    async def delete_finished_deliveries(self, *, finished_before: str, limit: int) -> int:
        self._check_callable()
        return self._webhooks.delete_finished_deliveries(
            finished_before=finished_before, limit=limit
        )

    # --- RevocationStore ------------------------------------------------------------------

    async def put_revocation(self, user_id: str, until: datetime) -> None:
        self._check_callable()
        now = datetime.now(UTC)
        self._revocations = {u: t for u, t in self._revocations.items() if t > now}
        if until > now:
            self._revocations[user_id] = until.astimezone(UTC)
        else:
            self._revocations.pop(user_id, None)

    async def active_revocations(self, now: datetime) -> dict[str, datetime]:
        self._check_callable()
        return {user: until for user, until in self._revocations.items() if until > now}

    def _insert(
        self, notification: NewNotification, payload_json: str, created_at: str
    ) -> Notification:
        self._last_notification_id += 1
        stored = _StoredNotification(
            id=self._last_notification_id,
            user_id=notification.user_id,
            workspace_id=notification.workspace_id,
            kind=notification.kind,
            payload_json=payload_json,
            created_at=created_at,
            read_at=None,
        )
        self._notifications.setdefault(notification.user_id, {})[stored.id] = stored
        return stored.to_notification()

    def _mark(self, candidates: Iterable[_StoredNotification]) -> list[int]:
        read_at = format_timestamp()
        changed: list[int] = []
        for stored in candidates:
            if stored.read_at is None:
                stored.read_at = read_at
                changed.append(stored.id)
        return changed

    def _check_callable(self) -> None:
        self._raise_injected_fault()
        if not self._is_open:
            raise StoreError("memory store: the store is not open")

    def _raise_injected_fault(self) -> None:
        if self.fail_next is not None:
            fault, self.fail_next = self.fail_next, None
            raise fault.with_traceback(None)
        if self.fail_with is not None:
            raise self.fail_with.with_traceback(None)


@dataclass(slots=True)
class _StoredNotification:
    id: int
    user_id: str
    workspace_id: str
    kind: str
    # Kept encoded, as the SQL backends keep it: every read returns a payload of its own.
    payload_json: str
    created_at: str
    read_at: str | None

    def to_notification(self) -> Notification:
        return Notification(
            id=self.id,
            user_id=self.user_id,
            workspace_id=self.workspace_id,
            kind=self.kind,
            payload=decode_payload(self.payload_json),
            created_at=self.created_at,
            read_at=self.read_at,
        )
