"""`MemoryPresenceStore`: the in-process `PresenceStore` (and the test fake of the Redis one)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from collab.errors import BusError, ConfigError
from collab.presence.base import PresenceEntry
from collab.presence.snapshots import merge_instances


@dataclass(frozen=True, slots=True)
class _Written:
    entries: dict[str, PresenceEntry]
    expires_at: float


class MemoryPresenceBroker:
    """What the `MemoryPresenceStore`s created with it share, as instances share Redis."""

    def __init__(self) -> None:
        self.workspaces: dict[str, dict[str, _Written]] = {}
        """Per workspace, per instance id: what the instance wrote last."""


class MemoryPresenceStore:
    """Presence kept in a `MemoryPresenceBroker`. An instance's entries expire `ttl_s` after
    its last write, measured with `clock`; `read` drops them from then on."""

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

    async def write(
        self, instance_id: str, workspace_id: str, entries: Mapping[str, PresenceEntry]
    ) -> None:
        self._check_open()
        instances = self._broker.workspaces.setdefault(workspace_id, {})
        if entries:
            instances[instance_id] = _Written(dict(entries), self._clock() + self._ttl_s)
        else:
            instances.pop(instance_id, None)
        self._forget_if_empty(workspace_id)

    async def renew(
        self, instance_id: str, written: Mapping[str, Mapping[str, PresenceEntry]]
    ) -> None:
        self._check_open()
        for workspace_id, entries in written.items():
            stored = self._broker.workspaces.get(workspace_id, {}).get(instance_id)
            if stored is None or stored.expires_at <= self._clock():
                await self.write(instance_id, workspace_id, entries)
                continue
            expires_at = self._clock() + self._ttl_s
            self._broker.workspaces[workspace_id][instance_id] = _Written(
                stored.entries, expires_at
            )

    async def read(self, workspace_id: str) -> dict[str, PresenceEntry]:
        self._check_open()
        instances = self._broker.workspaces.get(workspace_id, {})
        now = self._clock()
        for instance_id in [i for i, written in instances.items() if written.expires_at <= now]:
            del instances[instance_id]
        self._forget_if_empty(workspace_id)
        return merge_instances(written.entries for written in instances.values())

    async def read_many(
        self, workspace_ids: Collection[str]
    ) -> dict[str, dict[str, PresenceEntry]]:
        return {workspace_id: await self.read(workspace_id) for workspace_id in workspace_ids}

    async def close(self) -> None:
        """Stop answering; what this store wrote stays in the broker until it expires."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise BusError("the presence store is closed")

    def _forget_if_empty(self, workspace_id: str) -> None:
        if not self._broker.workspaces.get(workspace_id, True):
            del self._broker.workspaces[workspace_id]
