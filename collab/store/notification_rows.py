"""A stored notification read back from a row: the one reading of each backend's rows, for
the notification store and the email digests alike."""

from __future__ import annotations

from typing import Any

from collab.store.notifications import Notification
from collab.store.rows import decode_payload, format_timestamp


def from_sqlite_row(row: Any) -> Notification:
    """`(id, user_id, workspace_id, kind, payload, created_at, read_at)` as SQLite returns it."""
    notification_id, user_id, workspace_id, kind, payload_json, created_at, read_at = row
    return Notification(
        id=int(notification_id),
        user_id=str(user_id),
        workspace_id=str(workspace_id),
        kind=str(kind),
        payload=decode_payload(payload_json),
        created_at=str(created_at),
        read_at=None if read_at is None else str(read_at),
    )


def from_postgres_record(row: Any) -> Notification:
    """A record of the notifications table as asyncpg returns it (times as datetimes)."""
    read_at = row["read_at"]
    return Notification(
        id=int(row["id"]),
        user_id=str(row["user_id"]),
        workspace_id=str(row["workspace_id"]),
        kind=str(row["kind"]),
        payload=decode_payload(row["payload"]),
        created_at=format_timestamp(row["created_at"]),
        read_at=None if read_at is None else format_timestamp(read_at),
    )
