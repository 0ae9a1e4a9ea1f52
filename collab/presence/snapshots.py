"""Merged presence snapshots of a workspace, and the events that lead from one to the next.

Pure functions, shared by the stores (merging what the instances wrote) and `PresenceService`
(turning each re-read into events for the local subscribers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from collab.presence.base import PresenceEntry, merge_entries

Snapshot = dict[str, PresenceEntry]
"""Every present user's merged entry, by user id."""

PresenceEvent = dict[str, Any]
"""A JSON-able event: `presence.join`, `presence.update` or `presence.leave`."""


def merge_instances(per_instance: Iterable[Mapping[str, PresenceEntry]]) -> Snapshot:
    """The instances' entries of one workspace, merged per user with `merge_entries`."""
    by_user: dict[str, list[PresenceEntry]] = {}
    for entries in per_instance:
        for user_id, entry in entries.items():
            by_user.setdefault(user_id, []).append(entry)
    return {user_id: merge_entries(entries) for user_id, entries in by_user.items()}


def snapshot_json(snapshot: Mapping[str, PresenceEntry]) -> list[dict[str, Any]]:
    """The snapshot as JSON, ordered by user id."""
    return [snapshot[user_id].to_json() for user_id in sorted(snapshot)]


def diff_snapshots(
    workspace_id: str,
    before: Mapping[str, PresenceEntry],
    after: Mapping[str, PresenceEntry],
    users: Iterable[str] | None = None,
) -> list[PresenceEvent]:
    """The events that turn `before` into `after`, ordered by user id: a join for each new
    user, a leave for each gone one, and an update for each whose JSON (name, status, notes,
    since) changed. `updated` alone changing is no event: subscribers never see it. With
    `users`, only those users are compared (the others are known not to have changed)."""
    events: list[PresenceEvent] = []
    candidates = before.keys() | after.keys() if users is None else set(users)
    for user_id in sorted(candidates):
        old, new = before.get(user_id), after.get(user_id)
        if new is None:
            if old is not None:
                events.append(
                    {"type": "presence.leave", "workspace": workspace_id, "user": user_id}
                )
        elif old is None:
            events.append(
                {"type": "presence.join", "workspace": workspace_id, "user": new.to_json()}
            )
        elif old is not new and _shown(old) != _shown(new):
            events.append(
                {"type": "presence.update", "workspace": workspace_id, "user": new.to_json()}
            )
    return events


def _shown(entry: PresenceEntry) -> tuple[object, ...]:
    """What `to_json` shows of an entry, compared without building it."""
    return (entry.name, entry.status, entry.notes, entry.since)
