"""`WebhookOutbox`: what a backend's writes call, inside their transaction, to report a change.

Each method checks the cached routes first (`WebhookRoutes`, read again inside the
transaction once stale), so a change no endpoint wants builds no payload and writes nothing;
otherwise it builds the event (`webhook_events`) and the backend inserts one delivery per
enabled endpoint wanting it, in the same transaction (`_insert`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

from collab.store.catalog import CatalogEntry, Indexed, NoteReading
from collab.store.members import Member
from collab.store.notifications import Notification
from collab.store.versions import Version
from collab.store.webhook_events import (
    indexed_event,
    indexed_kind,
    member_event,
    note_event,
    notification_event,
    purged_event,
    version_event,
)
from collab.store.webhooks import OutboxListener, WebhookEvent, WebhookRoutes

log = logging.getLogger(__name__)

Conn = TypeVar("Conn")
Routes = list[tuple[str | None, Sequence[str]]]


class WebhookOutbox(Generic[Conn]):
    """The outbox of one store instance over connections of type `Conn`."""

    def __init__(self, routes: WebhookRoutes | None = None) -> None:
        self.routes = routes if routes is not None else WebhookRoutes()
        self._listeners: list[OutboxListener] = []

    def watch(self, listener: OutboxListener) -> None:
        self._listeners.append(listener)

    def notify(self) -> None:
        """Tell the listeners deliveries were committed."""
        for listener in self._listeners:
            try:
                listener()
            except Exception:
                log.exception("webhooks: an outbox listener failed")

    def may_want(self, *event_types: str) -> bool:
        """False when, without a query, no endpoint can want any of `event_types`."""
        return self.routes.may_want(event_types)

    async def wants(self, conn: Conn, event_type: str, workspace_id: str) -> bool:
        await self.refresh(conn)
        return self.routes.wants(event_type, workspace_id)

    async def any_enabled(self, conn: Conn) -> bool:
        """Whether an enabled endpoint exists (none: nothing is due either)."""
        await self.refresh(conn)
        return not self.routes.empty

    async def refresh(self, conn: Conn) -> None:
        """Read the routes again if they are stale."""
        if not self.routes.fresh:
            self.routes.replace(await self._read_routes(conn))

    async def note(self, conn: Conn, kind: str, entry: CatalogEntry, at: str) -> None:
        if await self.wants(conn, kind, entry.workspace_id):
            await self._insert(conn, [note_event(kind, entry, at)])

    async def purged(self, conn: Conn, workspace_id: str, note_id: str, at: str) -> None:
        if await self.wants(conn, "note.purged", workspace_id):
            await self._insert(conn, [purged_event(workspace_id, note_id, at)])

    async def indexed(self, conn: Conn, written: Iterable[tuple[NoteReading, Indexed]]) -> None:
        events = []
        for reading, indexed in written:
            kind = indexed_kind(reading, indexed)
            if kind is not None and await self.wants(conn, kind, reading.workspace_id):
                events.append(indexed_event(kind, indexed))
        if events:
            await self._insert(conn, events)

    async def notifications(self, conn: Conn, created: Iterable[Notification]) -> None:
        events = [
            notification_event(n)
            for n in created
            if await self.wants(conn, "notification.created", n.workspace_id)
        ]
        if events:
            await self._insert(conn, events)

    async def version(self, conn: Conn, version: Version | None) -> None:
        if version is None:
            return
        workspace_id = version.room_id.partition("/")[0]
        if await self.wants(conn, "version.created", workspace_id):
            await self._insert(conn, [version_event(version)])

    async def member(self, conn: Conn, kind: str, member: Member | None, at: str) -> None:
        if member is not None and await self.wants(conn, kind, member.workspace_id):
            await self._insert(conn, [member_event(kind, member, at)])

    async def _read_routes(self, conn: Conn) -> Routes:
        """`(workspace_id or None, event types)` of each enabled endpoint."""
        raise NotImplementedError

    async def _insert(self, conn: Conn, events: Sequence[WebhookEvent]) -> None:
        """One delivery of each event per enabled endpoint wanting it (re-checked by the
        database, whatever the cached routes said)."""
        raise NotImplementedError
