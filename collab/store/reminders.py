"""The `ReminderStore` interface: the pending deadline reminders of notes, by fire time.

Part of `Database`. A note whose catalog entry has a `due` gets up to two reminders, one row
each: `due_soon` (some time before the due time) and `overdue` (at it). The rooms layer
decides the fire times and arms them (`arm_reminders`); the store keeps, per note, the `due`
it armed them for, so arming the same `due` again changes nothing, and a new one replaces
the note's pending reminders in one transaction.

Instances share the rows. A reminder that falls due is **claimed** with a lease
(`claim_reminders`: `claimed_until`), sent, and only then deleted (`finish_reminder`): an
instance that dies holding a claim leaves the row, and another claims it again once the
lease expired. A claim is atomic across instances: of several claiming at once, each row
goes to one. Times are `format_timestamp` strings (fixed width: text order is time order),
kept as given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

from collab.store.catalog import room_parts

ReminderKind = Literal["due_soon", "overdue"]
REMINDER_KINDS: tuple[str, ...] = get_args(ReminderKind)
MAX_REMINDER_PAGE = 500


@dataclass(frozen=True, slots=True)
class Reminder:
    room_id: str
    kind: str
    """A `ReminderKind`."""
    due: str
    """The note's `due` it was armed for, as the catalog lists it."""
    fire_at: str
    """When it falls due."""


@dataclass(frozen=True, slots=True)
class DueNote:
    """A note with a due time, as the catalog lists it."""

    room_id: str
    due: str
    due_at: str

    @property
    def key(self) -> tuple[str, str, str]:
        """The order of `unarmed_notes`: due time, workspace id, note id."""
        return (self.due_at, *room_parts(self.room_id))

    @classmethod
    def start(cls, after: str) -> DueNote:
        """What `unarmed_notes` starts after: notes due at or after the time `after`."""
        return cls("/", "", after)


class ReminderStore(Protocol):
    """Every method raises `StoreError` (and nothing else) when the backend fails."""

    async def arm_reminders(
        self, room_id: str, due: str | None, reminders: Sequence[tuple[str, str]]
    ) -> bool:
        """Make `due` the room's armed due, in one transaction: unless it is armed already,
        the room's pending reminders (claimed or not) are replaced by `reminders`, pairs of
        (kind, fire time) of distinct kinds, and True is returned. False when `due` is the
        armed one (nothing changes), or the room's note was purged. `due` None cancels: the
        room's reminders are deleted and its due forgotten (True if there was any). Raises
        `ValueError` for a kind that is not a `ReminderKind`, or one given twice."""

    async def armed_due(self, room_id: str) -> str | None:
        """The `due` the room's reminders were last armed for; None if none."""

    async def pending_reminders(self, room_id: str) -> list[Reminder]:
        """The room's pending reminders (claimed or not), by fire time, then kind."""

    async def claim_reminders(self, *, now: str, lease_until: str, limit: int) -> list[Reminder]:
        """Claim the pending reminders whose fire time is at or before `now`, unclaimed or
        whose claim expired (its `claimed_until` at or before `now`): each is claimed until
        `lease_until`, earliest fire time first, at most `limit` (1 to `MAX_REMINDER_PAGE`).
        Of several callers at once (on any instance), each reminder goes to one."""

    async def finish_reminder(self, reminder: Reminder) -> bool:
        """Delete the pending reminder of its room and kind if it is still armed for its
        `due` (sent, or dropped); False when it is gone or was re-armed for another due."""

    async def next_fire_at(self) -> str | None:
        """The earliest moment a pending reminder may be claimed: the fire time of an
        unclaimed one, or the end of a claim; None when there is no pending reminder."""

    async def unarmed_notes(self, *, after: DueNote, limit: int) -> list[DueNote]:
        """The notes not in the trash whose due is not their armed one (their reminders
        were never armed for it: written before reminders existed, or an instance died
        between indexing and arming), ordered by due time, workspace id and note id
        (`DueNote.key`), strictly after `after` (the last of the previous page, or
        `DueNote.start(now)`), at most `limit` (1 to `MAX_REMINDER_PAGE`)."""


def check_reminders(reminders: Sequence[tuple[str, str]]) -> None:
    """Raise `ValueError` unless every kind is a `ReminderKind`, each at most once."""
    kinds = [kind for kind, _ in reminders]
    for kind in kinds:
        if kind not in REMINDER_KINDS:
            raise ValueError(f"a reminder kind is one of {', '.join(REMINDER_KINDS)}, not {kind!r}")
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"a reminder kind is given once per note, not {kinds!r}")


def reminder_page(limit: int) -> int:
    """`limit` within 1 and `MAX_REMINDER_PAGE`."""
    return max(1, min(limit, MAX_REMINDER_PAGE))
