"""Presence data and the `PresenceStore` interface that shares it between instances.

Each instance owns the presence of the users connected to it and writes it, per workspace,
as one entry per user: whole when it first writes a workspace, then only the users that
changed, so a change costs the same in a workspace of ten users or ten thousand. A
`PresenceStore` merges what every live instance wrote; an instance that stops renewing its
entries (it died) drops out after `ttl_s` by itself.
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

    def to_record(self) -> dict[str, Any]:
        """What instances exchange: `to_json` and `updated`."""
        return {**self.to_json(), "updated": self.updated}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> PresenceEntry:
        """Parse what `to_record` (or `to_json`) produced. Raises ValueError, KeyError or
        TypeError."""
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
    if len(entries) == 1:
        return entries[0]
    latest = max(entries, key=lambda entry: entry.updated)
    return PresenceEntry(
        user_id=latest.user_id,
        name=latest.name,
        status=latest.status,
        notes=frozenset().union(*(entry.notes for entry in entries)),
        since=min(entry.since for entry in entries),
        updated=latest.updated,
    )


@dataclass(frozen=True, slots=True)
class InstanceEntries:
    """What one instance wrote for one workspace: its entries, by user id, and the sequence
    number of the write that made them (an instance numbers its writes, increasing, over all
    its workspaces). Readers that follow a workspace by its changes apply a change only to
    the entries of the write it follows (`ChangesNudge.previous_seq`), and re-read the
    workspace otherwise."""

    seq: int
    entries: Mapping[str, PresenceEntry]


Changes = Mapping[str, PresenceEntry | None]
"""Per user id, the user's new entry, or None when the user left."""


def apply_changes(entries: dict[str, PresenceEntry], changes: Changes) -> None:
    """Apply `changes` to `entries`, in place."""
    for user_id, entry in changes.items():
        if entry is None:
            entries.pop(user_id, None)
        else:
            entries[user_id] = entry


class PresenceStore(Protocol):
    """Shared presence of all instances. Raises `BusError` when the backend fails."""

    async def write(self, instance_id: str, workspace_id: str, written: InstanceEntries) -> None:
        """Replace this instance's entries for the workspace (no entries: remove them) and
        renew their expiry (`ttl_s` from now)."""

    async def write_changes(
        self,
        instance_id: str,
        workspace_id: str,
        changes: Changes,
        seq: int,
        before: InstanceEntries,
    ) -> None:
        """Apply `changes` to this instance's entries for the workspace, number them `seq`
        and renew their expiry, at the cost of the changes, not of the workspace. `before`
        is what the instance wrote last: where the backend lost it (expired, restarted), the
        whole result is written instead. Entries left empty are removed."""

    async def renew(self, instance_id: str, written: Mapping[str, InstanceEntries]) -> None:
        """Renew the expiry of this instance's entries for each workspace of `written`, which
        maps it to what the instance wrote last (entries not empty). Where they are gone
        (expired, or the backend lost them), write them again. One call for all of an
        instance's workspaces, so a backend can renew them in one round trip."""

    async def read(self, workspace_id: str) -> dict[str, PresenceEntry]:
        """Every live instance's entries for the workspace, merged per user."""

    async def read_seqs(self, workspace_ids: Collection[str]) -> dict[str, dict[str, int]]:
        """Per workspace, the number of each live instance's last write, without its
        entries: what a heartbeat compares with what it holds, at the cost of the
        instances, not of the users."""

    async def is_present(self, user_id: str, workspace_ids: Collection[str]) -> bool:
        """Whether any live instance has an entry of the user in any of the workspaces, at
        the cost of the instances, not of the workspaces' users."""

    async def read_instances(
        self, workspace_ids: Collection[str]
    ) -> dict[str, dict[str, InstanceEntries]]:
        """Per workspace, what each live instance wrote, not merged, with its sequence
        number, in as few round trips as the backend allows. The caller owns the returned
        mappings."""

    async def close(self) -> None:
        """Release connections. Safe to call twice."""
