"""The webhook events of each change, built the same way by every backend.

A payload is `{"type", "timestamp", "data"}` as Standard Webhooks suggests: `timestamp` is
when the change happened (`format_timestamp`), `data` what the REST API shows of the thing
that changed (one function per kind of thing, below). Each event gets a fresh `msg_…` id,
the `webhook-id` of every attempt to every endpoint.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

import orjson

from collab.store.catalog import CatalogEntry, Indexed, NoteReading, NoteStatus
from collab.store.members import Member
from collab.store.notifications import Notification
from collab.store.versions import Version
from collab.store.webhooks import Endpoint, WebhookEvent

MESSAGE_ID_BYTES = 15


def new_message_id() -> str:
    """`msg_` and 24 random base32 characters (120 bits)."""
    raw = base64.b32encode(secrets.token_bytes(MESSAGE_ID_BYTES)).decode()
    return "msg_" + raw.lower()


def note_subject(workspace_id: str, note_id: str) -> str:
    return f"note:{workspace_id}/{note_id}"


def note_event(kind: str, entry: CatalogEntry, at: str) -> WebhookEvent:
    """`note.created`, `note.updated`, `note.trashed`, `note.restored`: the catalog entry."""
    subject = note_subject(entry.workspace_id, entry.note_id)
    return _event(kind, entry.workspace_id, subject, at, entry.to_json())


def indexed_kind(reading: NoteReading, indexed: Indexed) -> str | None:
    """The event an index write reports: `note.created` for a new entry, `note.updated` for
    an entry rewritten from a user's edit or with other listed fields; None for the rest (a
    stale reading, a deleted note, a reindex that changed nothing)."""
    entry = indexed.entry
    if entry is None or indexed.status is not NoteStatus.ACTIVE:
        return None
    if indexed.created:
        return "note.created"
    if indexed.changed or reading.actor is not None:
        return "note.updated"
    return None


def indexed_event(kind: str, indexed: Indexed) -> WebhookEvent:
    entry = indexed.entry
    assert entry is not None, "indexed_kind said it is reported"
    at = entry.created_at if kind == "note.created" else entry.updated_at
    return note_event(kind, entry, at)


def purged_event(workspace_id: str, note_id: str, at: str) -> WebhookEvent:
    """`note.purged`: which note, and when (its content is gone with it)."""
    data = {"id": note_id, "workspace": workspace_id, "purged_at": at}
    return _event("note.purged", workspace_id, note_subject(workspace_id, note_id), at, data)


def notification_event(notification: Notification) -> WebhookEvent:
    """`notification.created`: the notification as its user lists it."""
    return _event(
        "notification.created",
        notification.workspace_id,
        None,
        notification.created_at,
        notification.to_json(),
    )


def version_event(version: Version) -> WebhookEvent:
    """`version.created`: the note and the version as its history lists it."""
    workspace_id, _, note_id = version.room_id.partition("/")
    data = {"workspace": workspace_id, "note": note_id, "version": version.to_json()}
    subject = note_subject(workspace_id, note_id)
    return _event("version.created", workspace_id, subject, version.created_at, data)


def member_event(kind: str, member: Member, at: str) -> WebhookEvent:
    """`member.added`, `member.removed`: the member as the directory shows it to owners."""
    data = {
        "workspace": member.workspace_id,
        "user": member.user_id,
        "name": member.name,
        "role": member.role,
        "email": member.email,
        "last_seen_at": member.last_seen_at,
        "removed_at": member.removed_at,
    }
    subject = f"member:{member.workspace_id}/{member.user_id}"
    return _event(kind, member.workspace_id, subject, at, data)


TEST_EVENT = "webhook.test"
"""Sent on an operator's request to one endpoint, whatever events it wants."""


def webhook_test_event(endpoint: Endpoint, at: str) -> WebhookEvent:
    """`webhook.test`: which endpoint it was sent to, and where."""
    data = {"webhook": endpoint.id, "url": endpoint.url}
    return _event(TEST_EVENT, endpoint.workspace_id or "", None, at, data)


def _event(
    kind: str, workspace_id: str, subject: str | None, at: str, data: dict[str, Any]
) -> WebhookEvent:
    body = orjson.dumps({"type": kind, "timestamp": at, "data": data})
    return WebhookEvent(new_message_id(), kind, workspace_id, subject, body)
