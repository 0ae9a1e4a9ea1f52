"""The `NotificationStore` interface: durable, user-targeted notifications.

Part of `Database`: every backend (memory, SQLite, Postgres) keeps them beside the documents.
Ids are assigned by the store, increase with creation order per store, and are what clients
replay from ("everything after id N").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class NewNotification:
    user_id: str
    workspace_id: str
    kind: str
    """`message` (sent over REST), `mention` or `assignment` (found in a note)."""
    payload: Mapping[str, Any] = field(default_factory=dict)
    """JSON object shown by clients: e.g. `title`, `body`, `note_id`, `actor`."""


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    user_id: str
    workspace_id: str
    kind: str
    payload: Mapping[str, Any]
    created_at: str
    """ISO-8601 UTC timestamp."""
    read_at: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user": self.user_id,
            "workspace": self.workspace_id,
            "kind": self.kind,
            "payload": dict(self.payload),
            "created_at": self.created_at,
            "read_at": self.read_at,
        }


class NotificationStore(Protocol):
    """Every method raises `StoreError` (and nothing else) when the backend fails."""

    async def create_notifications(
        self, notifications: Sequence[NewNotification]
    ) -> list[Notification]:
        """Store all of them in one transaction; return them with ids, in the same order."""

    async def create_notification_once(
        self, dedup_key: str, notification: NewNotification
    ) -> Notification | None:
        """Store `notification` unless one with `dedup_key` was ever stored (by any
        instance); return it, or None when it existed. Atomic: of two concurrent callers
        with the same key exactly one gets the notification."""

    async def list_notifications(
        self, user_id: str, *, after_id: int = 0, unread_only: bool = False, limit: int = 100
    ) -> list[Notification]:
        """The user's notifications with id > `after_id`, ascending, at most `limit`
        (capped at `MAX_PAGE`)."""

    async def mark_read(self, user_id: str, ids: Sequence[int]) -> list[int]:
        """Mark the user's notifications `ids` read (others' ids are ignored); return the ids
        that changed from unread to read."""

    async def mark_all_read(self, user_id: str) -> list[int]:
        """Mark every unread notification of the user read; return their ids."""

    async def unread_count(self, user_id: str) -> int:
        """How many of the user's notifications are unread."""

    async def last_notification_id(self) -> int:
        """The largest id a stored notification has, of any user (0: none): every later
        notification gets a larger one."""
