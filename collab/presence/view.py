"""`WorkspaceView`: a followed workspace's presence as this instance knows it.

It holds what each instance wrote (with the number of that write) and their merge, the
snapshot local subscribers see. Two things change it:
- a re-read (`replace`) of every instance's entries, which costs the workspace's size: on
  subscribing, when an instance's changes cannot be applied, and when a heartbeat finds
  that the view does not hold every live instance's last write (`holds`: an instance died,
  or a message was lost);
- one instance's changes (`apply`), which cost what they changed: they are applied only on
  top of the write they follow, so none is applied twice, out of order or over a gap.

Reads are numbered as they start. A read does not undo changes applied after it started (it
may have been answered before they were written), and replaces everything else: what was
applied before it started was written before it started too (an instance writes its changes
to the store before it sends them). Numbering by reads, not by the writes' numbers, keeps a
view right when an instance restarts under the same id and numbers its writes anew.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from collab.presence.base import (
    Changes,
    InstanceEntries,
    PresenceEntry,
    apply_changes,
    merge_entries,
)
from collab.presence.snapshots import (
    PresenceEvent,
    Snapshot,
    diff_snapshots,
    merge_instances,
    snapshot_json,
)

UNNUMBERED = -1
"""The number of entries not read from the store (this instance's own, while the store
fails): no change follows it, so the next one makes the view re-read."""


@dataclass(slots=True)
class _Held:
    seq: int
    entries: dict[str, PresenceEntry]
    read: int
    """The number of the read that gave these entries, or the latest read started when
    changes were applied to them."""


class WorkspaceView:
    """Every live instance's entries for one workspace, and their merge."""

    def __init__(
        self, workspace_id: str, instances: Mapping[str, InstanceEntries], read: int
    ) -> None:
        """The view of the read numbered `read`."""
        self.workspace_id = workspace_id
        self._instances = {
            instance_id: _Held(found.seq, dict(found.entries), read)
            for instance_id, found in instances.items()
            if found.entries
        }
        self.snapshot: Snapshot = self._merge()
        self._shown: list[dict[str, Any]] | None = None

    def shown(self) -> list[dict[str, Any]]:
        """The snapshot as JSON (`snapshot_json`), built once per change and shared by every
        subscriber until the next: after a deploy, thousands subscribe to a big workspace
        within seconds. Callers must not change it."""
        if self._shown is None:
            self._shown = snapshot_json(self.snapshot)
        return self._shown

    def replace(self, instances: Mapping[str, InstanceEntries], read: int) -> list[PresenceEvent]:
        """Take the read numbered `read` of every instance, and return the events from the
        previous snapshot. An instance changed after the read started is kept as the view
        holds it; any other is taken as read, and one the read did not find is gone (it
        removed its entries, or they expired)."""
        held: dict[str, _Held] = {}
        for instance_id, current in self._instances.items():
            if current.read >= read:
                held[instance_id] = current
        for instance_id, found in instances.items():
            if instance_id not in held and found.entries:
                held[instance_id] = _Held(found.seq, dict(found.entries), read)
        before = self.snapshot
        self._instances = held
        self.snapshot = self._merge()
        self._shown = None
        return diff_snapshots(self.workspace_id, before, self.snapshot)

    def apply(
        self, instance_id: str, previous_seq: int, seq: int, changes: Changes, latest_read: int
    ) -> list[PresenceEvent] | None:
        """Apply one instance's write of some users and return the events, at the cost of
        the users it changed; `latest_read` is the number of the latest read started. None,
        changing nothing, when the view does not hold the write numbered `previous_seq` of
        that instance (a write or a message was missed, or the view never read the
        instance): re-read the workspace then."""
        current = self._instances.get(instance_id)
        if current is None or current.seq != previous_seq or seq <= previous_seq:
            return None
        apply_changes(current.entries, changes)
        current.seq = seq
        current.read = latest_read
        self._shown = None
        if not current.entries:
            # The store removes an instance's entries when none are left.
            del self._instances[instance_id]
        before = {
            user_id: entry
            for user_id in changes
            if (entry := self.snapshot.get(user_id)) is not None
        }
        for user_id in changes:
            found = [
                entry
                for held in self._instances.values()
                if (entry := held.entries.get(user_id)) is not None
            ]
            if found:
                self.snapshot[user_id] = merge_entries(found)
            else:
                self.snapshot.pop(user_id, None)
        return diff_snapshots(self.workspace_id, before, self.snapshot, users=changes)

    def holds(self, seqs: Mapping[str, int], read: int) -> bool:
        """Whether the view holds the writes `seqs` numbers (each live instance's last, as
        the read numbered `read` found them), so a re-read would change nothing. Instances
        changed after that read started are newer than it and not compared. Writes
        numbered 0 (by a version before writes were numbered, in a rolling upgrade) are
        never known to be held."""
        for instance_id, seq in seqs.items():
            current = self._instances.get(instance_id)
            if current is None or seq == 0 or (current.seq != seq and current.read < read):
                return False
        return all(
            current.read >= read or instance_id in seqs
            for instance_id, current in self._instances.items()
        )

    def _merge(self) -> Snapshot:
        return merge_instances(held.entries for held in self._instances.values())
