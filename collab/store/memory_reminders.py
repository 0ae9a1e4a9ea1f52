"""The deadline reminders of `MemoryStore`: the reference for what every backend answers. The
SQL backends are held to the same answers by the reminder contract suite."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from collab.store.catalog import CatalogEntry
from collab.store.reminders import DueNote, Reminder, reminder_page


@dataclass(slots=True)
class _Pending:
    reminder: Reminder
    claimed_until: str | None = None


class MemoryReminders:
    """Every room's pending reminders (by kind) and armed due."""

    def __init__(self) -> None:
        self._pending: dict[str, dict[str, _Pending]] = {}
        self._armed: dict[str, str] = {}

    def arm(self, room_id: str, due: str | None, reminders: Sequence[tuple[str, str]]) -> bool:
        if due is None:
            existed = room_id in self._armed or room_id in self._pending
            self.forget(room_id)
            return existed
        if self._armed.get(room_id) == due:
            return False
        self._armed[room_id] = due
        self._pending[room_id] = {
            kind: _Pending(Reminder(room_id, kind, due, fire_at)) for kind, fire_at in reminders
        }
        if not self._pending[room_id]:
            del self._pending[room_id]
        return True

    def armed_due(self, room_id: str) -> str | None:
        return self._armed.get(room_id)

    def pending(self, room_id: str) -> list[Reminder]:
        found = [p.reminder for p in self._pending.get(room_id, {}).values()]
        return sorted(found, key=lambda r: (r.fire_at, r.kind))

    def claim(self, *, now: str, lease_until: str, limit: int) -> list[Reminder]:
        claimable = sorted(
            (
                p
                for by_kind in self._pending.values()
                for p in by_kind.values()
                if p.reminder.fire_at <= now and (p.claimed_until is None or p.claimed_until <= now)
            ),
            key=lambda p: (p.reminder.fire_at, p.reminder.room_id, p.reminder.kind),
        )[: reminder_page(limit)]
        for pending in claimable:
            pending.claimed_until = lease_until
        return [p.reminder for p in claimable]

    def finish(self, reminder: Reminder) -> bool:
        by_kind = self._pending.get(reminder.room_id, {})
        pending = by_kind.get(reminder.kind)
        if pending is None or pending.reminder.due != reminder.due:
            return False
        del by_kind[reminder.kind]
        if not by_kind:
            del self._pending[reminder.room_id]
        return True

    def next_fire_at(self) -> str | None:
        moments = [
            p.claimed_until or p.reminder.fire_at
            for by_kind in self._pending.values()
            for p in by_kind.values()
        ]
        return min(moments, default=None)

    def unarmed(
        self, entries: Iterable[CatalogEntry], *, after: DueNote, limit: int
    ) -> list[DueNote]:
        found = [
            DueNote(entry.room_id, entry.fields.due, entry.fields.due_at)
            for entry in entries
            if entry.trashed_at is None
            and entry.fields.due is not None
            and entry.fields.due_at is not None
            and self._armed.get(entry.room_id) != entry.fields.due
        ]
        later = sorted((note for note in found if note.key > after.key), key=lambda n: n.key)
        return later[: reminder_page(limit)]

    def forget(self, room_id: str) -> None:
        """Delete the room's reminders and armed due (its note is purged, or has no due)."""
        self._pending.pop(room_id, None)
        self._armed.pop(room_id, None)
