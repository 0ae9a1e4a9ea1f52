"""Deadline reminders (`DueReminders`): a note's `due` notifies its people when it is near
(`due_soon`, `due_soon_s` before) and when it is reached (`overdue`).

- **Armed from the catalog.** Every catalog event carrying a note's entry (`note.created`,
  `note.updated`, `note.restored`; this instance's and other instances' alike) arms the
  note's reminders for its `due` when it is not the one this instance last armed; a due
  removed, or a purge, cancels them. The store keeps each note's armed due: arming it again
  (on another instance) changes nothing, a new one replaces the note's pending reminders in
  one transaction. At start, notes due from now on whose reminders were never armed for
  their due are armed (written before reminders existed, or an instance died between
  indexing a note and arming it).
- **Fire times** (`reminder_times`): `due_soon` at the due time less `due_soon_s` (none when
  it is 0, or when the due time is reached already), `overdue` at the due time. One whose
  time has passed when it is armed fires at once. A date alone is due at 00:00 UTC.
- **Driven by the fire times.** One loop sleeps until the store's next fire time (at most
  `max_sleep_s`), woken early whenever a note's due is armed here, so a new due time sooner
  than the next is met.
- **Exactly once.** A reminder is claimed in the store with a lease, sent, and deleted only
  then: one that falls due while every instance is down is sent at the next start, and one
  whose instance died sending it is claimed again when the lease ends. Each notification is
  stored under the key `reminder:{kind}:{room_id}:{due}:{user}`, so a repeat sends nothing:
  once per note, due, kind and user, however many instances run.
- **Checked when sent.** The note is read again: a note in the trash or purged gets nothing
  (the reminder is dropped), one whose due changed meanwhile is armed again, and a
  `due_soon` whose due is reached by then (every instance was down) is dropped for the
  `overdue` that follows. Recipients are
  the note's assignees, or its creator when it has none, among the active members of the
  workspace's directory that the note's access lets read it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from collab.errors import StoreError
from collab.rooms.catalog import NotesCatalog
from collab.rooms.note_fields import parse_due
from collab.rooms.notifier import Notifier
from collab.store.catalog import CatalogEntry, CatalogStore, room_parts
from collab.store.notifications import NewNotification
from collab.store.reminders import DueNote, Reminder, ReminderStore
from collab.store.rows import format_timestamp
from collab.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
"""The current time, timezone-aware."""
Sleep = Callable[[float], Awaitable[None]]
"""Sleeps that many seconds (the loop is woken early by cancelling it)."""

MAX_SLEEP_S = 30.0
"""The loop looks at the store at least this often, whatever it expects."""
MIN_SLEEP_S = 0.05
LEASE_S = 60.0
"""How long an instance holds a reminder it claimed before another may claim it again."""
RETRY_S = 5.0
CLAIM_PAGE = 100
CATCH_UP_PAGE = 200
MAX_ARMED = 100_000
ARMING_EVENTS = frozenset({"note.created", "note.updated", "note.restored"})


def _utc_now() -> datetime:
    return datetime.now(UTC)


def reminder_times(due_at: datetime, now: datetime, due_soon_s: float) -> list[tuple[str, str]]:
    """The (kind, fire time) of a note due at `due_at`, armed at `now`."""
    times: list[tuple[str, str]] = []
    if due_soon_s > 0 and due_at > now:
        times.append(("due_soon", format_timestamp(due_at - timedelta(seconds=due_soon_s))))
    times.append(("overdue", format_timestamp(due_at)))
    return times


def recipients(entry: CatalogEntry) -> list[str]:
    """Who a note's reminders are for, before any check: its assignees, or its creator."""
    if entry.fields.assignees:
        return list(entry.fields.assignees)
    return [] if entry.created_by is None else [entry.created_by]


def dedup_key(reminder: Reminder, user_id: str) -> str:
    return f"reminder:{reminder.kind}:{reminder.room_id}:{reminder.due}:{user_id}"


class DueReminders:
    def __init__(
        self,
        store: ReminderStore,
        notes: CatalogStore,
        catalog: NotesCatalog,
        notifier: Notifier,
        *,
        due_soon_s: float,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
        max_sleep_s: float = MAX_SLEEP_S,
        lease_s: float = LEASE_S,
    ) -> None:
        self._store = store
        self._notes = notes
        self._catalog = catalog
        self._notifier = notifier
        self._due_soon_s = due_soon_s
        self._clock = clock or _utc_now
        self._sleep = sleep
        self._max_sleep_s = max_sleep_s
        self._lease_s = lease_s
        # The due this instance last armed per note (None: none), oldest first when full.
        self._armed: dict[str, str | None] = {}
        # Notes being armed, and the due to arm next for those an event changed meanwhile:
        # one note's arms run one after the other, in the order of its events.
        self._arming: set[str] = set()
        self._wanted: dict[str, str | None] = {}
        self._woken = asyncio.Event()
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Task[None]] = set()
        # Read by tests and logs: notifications created here, reminders that failed.
        self.sent = 0
        self.failures = 0

    async def start(self) -> None:
        """After the catalog started: listens to its events, arms what was never armed, and
        sends what falls due."""
        self._catalog.add_event_listener(self._on_event)
        self._tasks = [
            asyncio.create_task(self._catch_up(), name="reminders-catch-up"),
            asyncio.create_task(self._run(), name="reminders"),
        ]

    async def close(self) -> None:
        """Before the catalog closes: what it indexes on its way out is armed at the next
        start (`catch_up`)."""
        self._closed = True
        await cancel_and_wait(self._tasks)
        if self._pending:
            await asyncio.wait(list(self._pending))

    def wake(self) -> None:
        """Look at the store now rather than at the next expected fire time (a due changed;
        a test moved its clock)."""
        self._woken.set()

    # -- arming ------------------------------------------------------------------------------

    def _on_event(self, event: dict[str, Any]) -> None:
        if self._closed:
            return
        kind = event.get("type")
        if kind == "note.purged":
            note_id = event.get("id")
            if isinstance(note_id, str):
                self._want(f"{event['workspace']}/{note_id}", None)
            return
        if kind not in ARMING_EVENTS:
            return
        note = event.get("note")
        if not isinstance(note, dict):
            return
        note_id, due = note.get("id"), note.get("due")
        if not isinstance(note_id, str) or not (due is None or isinstance(due, str)):
            return
        room_id = f"{event['workspace']}/{note_id}"
        if room_id in self._armed and self._armed[room_id] == due:
            return
        self._want(room_id, due)

    def _want(self, room_id: str, due: str | None) -> None:
        if room_id in self._arming:
            self._wanted[room_id] = due
            return
        self._arming.add(room_id)
        self._spawn(self._arm_in_turn(room_id, due), "reminders-arm")

    async def _arm_in_turn(self, room_id: str, due: str | None) -> None:
        """Arm the note (already in `_arming`), then whatever its events asked for since."""
        try:
            while True:
                try:
                    await self.arm(room_id, due)
                except StoreError as error:
                    self.failures += 1
                    log.warning("reminders: the reminders of %s not armed: %s", room_id, error)
                if room_id not in self._wanted:
                    return
                due = self._wanted.pop(room_id)
        finally:
            self._arming.discard(room_id)

    async def arm(self, room_id: str, due: str | None) -> bool:
        """Arm the note's reminders for `due` as the catalog lists it (None: cancel them);
        whether the store changed them. Raises `StoreError`."""
        parsed = None if due is None else parse_due(due)
        if parsed is None:
            # Most notes have no due: a read, not a write, for each seen the first time.
            armed = await self._store.armed_due(room_id)
            changed = armed is not None and await self._store.arm_reminders(room_id, None, [])
        else:
            due_at = datetime.fromisoformat(parsed[1])
            times = reminder_times(due_at, self._clock(), self._due_soon_s)
            changed = await self._store.arm_reminders(room_id, due, times)
        self._armed.pop(room_id, None)
        self._armed[room_id] = due if parsed is not None else None
        if len(self._armed) > MAX_ARMED:
            del self._armed[next(iter(self._armed))]
        # Another instance's arm may have put sooner rows in the store: look again.
        self.wake()
        return changed

    async def catch_up(self) -> int:
        """Arm the reminders of the notes never armed for their due; how many were armed.
        Raises `StoreError`.

        Past dues too: a note indexed with its due just before its instance died was never
        armed, and its reminder goes out now (overdue at once). Notes already due when
        reminders came (migration 0009) count as armed, so this never floods."""
        after = DueNote.start("")
        armed = 0
        while page := await self._store.unarmed_notes(after=after, limit=CATCH_UP_PAGE):
            for note in page:
                if note.room_id in self._arming:
                    continue  # an event is arming it, with its latest due
                self._arming.add(note.room_id)
                try:
                    armed += await self.arm(note.room_id, note.due)
                finally:
                    self._arming.discard(note.room_id)
                if note.room_id in self._wanted:
                    self._want(note.room_id, self._wanted.pop(note.room_id))
            if len(page) < CATCH_UP_PAGE:
                break
            after = page[-1]
        return armed

    async def _catch_up(self) -> None:
        try:
            armed = await self.catch_up()
        except StoreError as error:
            log.warning("reminders: notes due later were not armed at start: %s", error)
            return
        if armed:
            log.info("reminders: armed the reminders of %d notes due later", armed)

    # -- sending -----------------------------------------------------------------------------

    async def fire_due(self) -> int:
        """Send the reminders due by the clock that no other instance holds; how many
        notifications were created. Raises `StoreError` when they cannot be claimed."""
        created = 0
        while True:
            now = self._clock()
            claimed = await self._store.claim_reminders(
                now=format_timestamp(now),
                lease_until=format_timestamp(now + timedelta(seconds=self._lease_s)),
                limit=CLAIM_PAGE,
            )
            for reminder in claimed:
                try:
                    created += await self._fire(reminder)
                except StoreError as error:
                    self.failures += 1
                    log.warning(
                        "reminders: the %s reminder of %s not sent, tried again after its "
                        "lease: %s",
                        reminder.kind,
                        reminder.room_id,
                        error,
                    )
            if len(claimed) < CLAIM_PAGE:
                return created

    async def _fire(self, reminder: Reminder) -> int:
        workspace_id, note_id = room_parts(reminder.room_id)
        entry = await self._notes.get_note(workspace_id, note_id)
        if entry is None or entry.trashed_at is not None:
            log.info(
                "reminders: the %s reminder of %s dropped: the note is %s",
                reminder.kind,
                reminder.room_id,
                "gone" if entry is None else "in the trash",
            )
            await self._store.finish_reminder(reminder)
            return 0
        if entry.fields.due != reminder.due:
            # Armed for a due since changed, its new one not armed yet: armed now.
            await self._store.finish_reminder(reminder)
            self._armed.pop(reminder.room_id, None)
            self._want(reminder.room_id, entry.fields.due)
            return 0
        if reminder.kind == "due_soon" and self._reached(reminder.due):
            # Fell due while no instance ran, with the due itself: `overdue` says it all.
            log.info("reminders: due_soon of %s dropped: the due is reached", reminder.room_id)
            await self._store.finish_reminder(reminder)
            return 0
        created = 0
        users = recipients(entry)
        if users:
            readers = await self._notifier.readers_among(
                workspace_id, note_id, users, reminder.kind
            )
            payload = {"note": note_id, "title": entry.fields.title, "due": reminder.due}
            for user_id in readers:
                notification = NewNotification(user_id, workspace_id, reminder.kind, payload)
                sent = await self._notifier.notify_once(dedup_key(reminder, user_id), notification)
                created += sent is not None
        await self._store.finish_reminder(reminder)
        self.sent += created
        if created:
            log.info(
                "reminders: %s of %s sent to %d users", reminder.kind, reminder.room_id, created
            )
        return created

    def _reached(self, due: str) -> bool:
        parsed = parse_due(due)
        return parsed is not None and datetime.fromisoformat(parsed[1]) <= self._clock()

    async def _run(self) -> None:
        while True:
            self._woken.clear()
            try:
                await self.fire_due()
                delay = await self._delay()
            except StoreError as error:
                log.warning("reminders: the reminders due could not be read: %s", error)
                delay = RETRY_S
            await self._nap(delay)

    async def _delay(self) -> float:
        """Seconds until the store's next fire time, within the loop's bounds."""
        next_at = await self._store.next_fire_at()
        if next_at is None:
            return self._max_sleep_s
        seconds = (datetime.fromisoformat(next_at) - self._clock()).total_seconds()
        return min(max(seconds, MIN_SLEEP_S), self._max_sleep_s)

    async def _nap(self, delay_s: float) -> None:
        if self._woken.is_set():
            return
        sleeping = asyncio.ensure_future(self._sleep(delay_s))
        woken = asyncio.ensure_future(self._woken.wait())
        try:
            await asyncio.wait({sleeping, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait([sleeping, woken])

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
