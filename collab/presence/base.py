"""Presence data and the `PresenceStore` interface that shares it between instances.

Each instance owns the presence of the users connected to it and writes it, per workspace,
as one entry per user. A `PresenceStore` merges what every live instance wrote; an instance
that stops renewing its entries (it died) drops out after `ttl_s` by itself.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

MAX_STATUS_CHARS = 200


@dataclass(frozen=True, slots=True)
class PresenceEntry:
    """One user's presence in one workspace, as one instance (or all, merged) sees it."""

    user_id: str
    name: str | None
    status: str | None
    notes: frozenset[str]
    """Ids of the workspace's notes the user has open (document connections)."""
    since: float
    """Unix time of the user's first connection (the earliest over instances)."""
    updated: float
    """Unix time of the last change; decides whose `status`/`name` wins when merging."""

    def to_json(self) -> dict[str, Any]:
        return {
            "user": self.user_id,
            "name": self.name,
            "status": self.status,
            "notes": sorted(self.notes),
            "since": self.since,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> PresenceEntry:
        """Parse what `to_json` + `updated` produced. Raises ValueError/KeyError/TypeError."""
        return cls(
            user_id=str(value["user"]),
            name=None if value.get("name") is None else str(value["name"]),
            status=None if value.get("status") is None else str(value["status"]),
            notes=frozenset(str(note) for note in value.get("notes", ())),
            since=float(value["since"]),
            updated=float(value.get("updated", value["since"])),
        )


def merge_entries(entries: list[PresenceEntry]) -> PresenceEntry:
    """One user's entries from several instances: notes united, earliest `since`, and the
    most recently updated name and status."""
    latest = max(entries, key=lambda entry: entry.updated)
    return PresenceEntry(
        user_id=latest.user_id,
        name=latest.name,
        status=latest.status,
        notes=frozenset().union(*(entry.notes for entry in entries)),
        since=min(entry.since for entry in entries),
        updated=latest.updated,
    )


class PresenceStore(Protocol):
    """Shared presence of all instances. Raises `BusError` when the backend fails."""

    async def write(
        self, instance_id: str, workspace_id: str, entries: Mapping[str, PresenceEntry]
    ) -> None:
        """Replace this instance's entries for the workspace (empty: remove them) and renew
        their expiry (`ttl_s` from now)."""

    async def renew(
        self, instance_id: str, written: Mapping[str, Mapping[str, PresenceEntry]]
    ) -> None:
        """Renew the expiry of this instance's entries for each workspace of `written`, which
        maps it to those entries (what the instance wrote last, not empty). Where they are
        gone (expired, or the backend lost them), write them again. One call for all of an
        instance's workspaces, so a backend can renew them in one round trip."""

    async def read(self, workspace_id: str) -> dict[str, PresenceEntry]:
        """Every live instance's entries for the workspace, merged per user."""

    async def read_many(
        self, workspace_ids: Collection[str]
    ) -> dict[str, dict[str, PresenceEntry]]:
        """`read` for each workspace, keyed by workspace id, in as few round trips as the
        backend allows."""

    async def close(self) -> None:
        """Release connections. Safe to call twice."""
