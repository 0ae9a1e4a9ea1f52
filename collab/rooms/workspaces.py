"""Workspace rooms: the presence of a workspace, fanned out to its live subscribers.

`PresenceHub` is what the web handlers talk to. It records this instance's connections in
`LocalPresence`, tells the `PresenceService` which workspaces changed (it shares them with
the other instances), and delivers the service's join/leave/update events to the live
connections subscribed to each workspace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from collab.presence.registry import LocalPresence
from collab.presence.service import PresenceService
from collab.presence.snapshots import PresenceEvent


class PresenceSubscriber(Protocol):
    user_id: str

    def send_event(self, event: dict[str, Any]) -> None:
        """Queue one JSON event; never blocks."""


class PresenceHub:
    def __init__(self, local: LocalPresence) -> None:
        self.local = local
        self._service: PresenceService | None = None
        self._subscribers: dict[str, set[PresenceSubscriber]] = {}

    def bind(self, service: PresenceService) -> None:
        self._service = service

    @property
    def service(self) -> PresenceService:
        if self._service is None:
            raise RuntimeError("PresenceHub used before its service was bound")
        return self._service

    def _changed(self, workspaces: Iterable[str]) -> None:
        for workspace_id in workspaces:
            self.service.changed(workspace_id)

    # -- this instance's connections ---------------------------------------------------------

    def connect(self, conn_id: str, user_id: str, name: str | None) -> None:
        self._changed(self.local.connect(conn_id, user_id, name))

    def disconnect(self, conn_id: str) -> None:
        self._changed(self.local.disconnect(conn_id))

    def join_workspace(self, conn_id: str, workspace_id: str) -> None:
        self._changed(self.local.join_workspace(conn_id, workspace_id))

    def leave_workspace(self, conn_id: str, workspace_id: str) -> None:
        self._changed(self.local.leave_workspace(conn_id, workspace_id))

    def set_status(self, conn_id: str, workspace_id: str, status: str | None) -> None:
        """Raises ValueError for a status that is too long."""
        self._changed(self.local.set_status(conn_id, workspace_id, status))

    def open_note(
        self, conn_id: str, user_id: str, name: str | None, workspace_id: str, note_id: str
    ) -> None:
        self._changed(self.local.open_note(conn_id, user_id, name, workspace_id, note_id))

    def close_note(self, conn_id: str) -> None:
        self._changed(self.local.close_note(conn_id))

    # -- following workspaces ----------------------------------------------------------------

    async def subscribe(
        self, workspace_id: str, subscriber: PresenceSubscriber
    ) -> list[dict[str, Any]]:
        """Follow a workspace; return its current users. Idempotent per subscriber."""
        subscribers = self._subscribers.setdefault(workspace_id, set())
        if subscriber in subscribers:
            return await self.service.snapshot(workspace_id)
        subscribers.add(subscriber)
        return await self.service.subscribe(workspace_id)

    async def unsubscribe(self, workspace_id: str, subscriber: PresenceSubscriber) -> None:
        subscribers = self._subscribers.get(workspace_id)
        if subscribers is None or subscriber not in subscribers:
            return
        subscribers.discard(subscriber)
        if not subscribers:
            del self._subscribers[workspace_id]
        await self.service.unsubscribe(workspace_id)

    async def snapshot(self, workspace_id: str) -> list[dict[str, Any]]:
        return await self.service.snapshot(workspace_id)

    def deliver(
        self,
        workspace_id: str,
        events: list[PresenceEvent],
        audience: Callable[[str], bool] | None = None,
    ) -> None:
        """Events for a workspace, to each local subscriber (`audience`: only to those of
        the users it admits)."""
        for subscriber in list(self._subscribers.get(workspace_id, ())):
            if audience is not None and not audience(subscriber.user_id):
                continue
            for event in events:
                subscriber.send_event(event)
