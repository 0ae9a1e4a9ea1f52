"""`MemoryPresenceStore`: the in-process `PresenceStore` (and the test fake of the Redis one)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from collab.errors import BusError, ConfigError
from collab.presence.base import Changes, InstanceEntries, PresenceEntry, apply_changes
from collab.presence.snapshots import merge_instances


@dataclass(slots=True)
class _Written:
    seq: int
    entries: dict[str, PresenceEntry]
    expires_at: float


class MemoryPresenceBroker:
    """What the `MemoryPresenceStore`s created with it share, as instances share Redis."""

    def __init__(self) -> None:
        self.workspaces: dict[str, dict[str, _Written]] = {}
        """Per workspace, per instance id: what the instance wrote last."""


class MemoryPresenceStore:
    """Presence kept in a `MemoryPresenceBroker`. An instance's entries expire `ttl_s` after
    its last write, measured with `clock`; reads drop them from then on."""

    def __init__(
        self,
        ttl_s: float,
        clock: Callable[[], float] = time.time,
        broker: MemoryPresenceBroker | None = None,
    ) -> None:
        if not ttl_s > 0:
            raise ConfigError(["ttl_s must be positive"])
        self._ttl_s = ttl_s
        self._clock = clock
        self._broker = broker or MemoryPresenceBroker()
        self._closed = False

    async def write(self, instance_id: str, workspace_id: str, written: InstanceEntries) -> None:
        self._check_open()
        self._store(instance_id, workspace_id, written.seq, dict(written.entries))

    async def write_changes(
        self,
        instance_id: str,
        workspace_id: str,
        changes: Changes,
        seq: int,
        before: InstanceEntries,
    ) -> None:
        self._check_open()
        stored = self._live(workspace_id, instance_id)
        entries = dict(before.entries) if stored is None else stored.entries
        apply_changes(entries, changes)
        self._store(instance_id, workspace_id, seq, entries)

    async def renew(self, instance_id: str, written: Mapping[str, InstanceEntries]) -> None:
        self._check_open()
        for workspace_id, last in written.items():
            stored = self._live(workspace_id, instance_id)
            if stored is None:
                await self.write(instance_id, workspace_id, last)
            else:
                stored.expires_at = self._clock() + self._ttl_s

    async def read(self, workspace_id: str) -> dict[str, PresenceEntry]:
        instances = (await self.read_instances([workspace_id]))[workspace_id]
        return merge_instances(read.entries for read in instances.values())

    async def read_seqs(self, workspace_ids: Collection[str]) -> dict[str, dict[str, int]]:
        self._check_open()
        return {
            workspace_id: {
                instance_id: written.seq
                for instance_id, written in self._live_instances(workspace_id).items()
            }
            for workspace_id in workspace_ids
        }

    async def is_present(self, user_id: str, workspace_ids: Collection[str]) -> bool:
        self._check_open()
        now = self._clock()
        return any(
            user_id in written.entries and written.expires_at > now
            for workspace_id in workspace_ids
            for written in self._broker.workspaces.get(workspace_id, {}).values()
        )

    async def read_instances(
        self, workspace_ids: Collection[str]
    ) -> dict[str, dict[str, InstanceEntries]]:
        self._check_open()
        return {
            workspace_id: {
                instance_id: InstanceEntries(written.seq, dict(written.entries))
                for instance_id, written in self._live_instances(workspace_id).items()
            }
            for workspace_id in workspace_ids
        }

    async def close(self) -> None:
        """Stop answering; what this store wrote stays in the broker until it expires."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise BusError("the presence store is closed")

    def _live_instances(self, workspace_id: str) -> dict[str, _Written]:
        """What each instance wrote for the workspace, the expired dropped."""
        instances = self._broker.workspaces.get(workspace_id, {})
        now = self._clock()
        for instance_id in [i for i, w in instances.items() if w.expires_at <= now]:
            del instances[instance_id]
        self._forget_if_empty(workspace_id)
        return instances

    def _live(self, workspace_id: str, instance_id: str) -> _Written | None:
        """What the instance wrote for the workspace, unless it expired."""
        stored = self._broker.workspaces.get(workspace_id, {}).get(instance_id)
        if stored is None or stored.expires_at <= self._clock():
            return None
        return stored

    def _store(
        self, instance_id: str, workspace_id: str, seq: int, entries: dict[str, PresenceEntry]
    ) -> None:
        instances = self._broker.workspaces.setdefault(workspace_id, {})
        if entries:
            instances[instance_id] = _Written(seq, entries, self._clock() + self._ttl_s)
        else:
            instances.pop(instance_id, None)
        self._forget_if_empty(workspace_id)

    def _forget_if_empty(self, workspace_id: str) -> None:
        if not self._broker.workspaces.get(workspace_id, True):
            del self._broker.workspaces[workspace_id]
