"""One contract suite for every `ReminderStore` backend (memory, SQLite, Postgres): arming,
replacing and cancelling a note's reminders, claims with a lease (exclusive between two
instances on one database), the next fire time, the notes never armed, and purges."""

from __future__ import annotations

import asyncio

import pytest

from collab.store import Database
from collab.store.catalog import NoteFields
from collab.store.reminders import DueNote, Reminder
from tests.support.store_backends import Backend

WS = "w1"
ROOM = f"{WS}/n1"
OTHER_ROOM = f"{WS}/n2"
DUE = "2026-12-24"
LATER_DUE = "2026-12-31"


def at(minute: int) -> str:
    """A time `minute` minutes into a fixed day, as `format_timestamp` writes them."""
    return f"2026-12-20T{minute // 60:02d}:{minute % 60:02d}:00.000000+00:00"


def both(soon: int = 10, overdue: int = 20) -> list[tuple[str, str]]:
    """Both reminders, `due_soon` and `overdue`, at those minutes."""
    return [("due_soon", at(soon)), ("overdue", at(overdue))]


async def claim(store: Database, now: int, lease: int = 5, limit: int = 100) -> list[Reminder]:
    return await store.claim_reminders(now=at(now), lease_until=at(now + lease), limit=limit)


async def create_note(
    store: Database, note_id: str, due: str | None, due_at: str | None, workspace_id: str = WS
) -> None:
    fields = NoteFields(title=note_id, due=due, due_at=due_at)
    entry = await store.create_note(workspace_id, note_id, fields, actor="u1", at=at(0))
    assert entry is not None


# --- arming -------------------------------------------------------------------------------


async def test_arming_stores_the_reminders_and_the_due(store: Database) -> None:
    """A note armed for a due has its reminders pending by fire time, and that due armed."""
    assert await store.arm_reminders(ROOM, DUE, [("overdue", at(20)), ("due_soon", at(10))])

    assert await store.pending_reminders(ROOM) == [
        Reminder(ROOM, "due_soon", DUE, at(10)),
        Reminder(ROOM, "overdue", DUE, at(20)),
    ]
    assert await store.armed_due(ROOM) == DUE
    assert await store.pending_reminders(OTHER_ROOM) == []
    assert await store.armed_due(OTHER_ROOM) is None


async def test_arming_the_armed_due_again_changes_nothing(store: Database) -> None:
    """The same due armed again (another instance, another event) keeps the rows as they
    are, claims included."""
    await store.arm_reminders(ROOM, DUE, both())
    [claimed] = await claim(store, 10)

    assert not await store.arm_reminders(ROOM, DUE, both(soon=1, overdue=2))

    assert await store.pending_reminders(ROOM) == [claimed, Reminder(ROOM, "overdue", DUE, at(20))]
    assert await claim(store, 12) == []


async def test_a_new_due_replaces_the_pending_reminders(store: Database) -> None:
    """Arming another due replaces every pending reminder of the note, claimed or not, with
    unclaimed ones for the new due."""
    await store.arm_reminders(ROOM, DUE, both())
    await claim(store, 10)

    assert await store.arm_reminders(ROOM, LATER_DUE, [("overdue", at(30))])

    assert await store.pending_reminders(ROOM) == [Reminder(ROOM, "overdue", LATER_DUE, at(30))]
    assert await store.armed_due(ROOM) == LATER_DUE
    assert await claim(store, 30) == [Reminder(ROOM, "overdue", LATER_DUE, at(30))]


async def test_no_due_cancels_the_reminders_and_forgets_the_due(store: Database) -> None:
    """Arming None deletes the note's reminders and its armed due; again, nothing changes."""
    await store.arm_reminders(ROOM, DUE, both())
    await store.arm_reminders(OTHER_ROOM, DUE, both())

    assert await store.arm_reminders(ROOM, None, [])

    assert await store.pending_reminders(ROOM) == []
    assert await store.armed_due(ROOM) is None
    assert not await store.arm_reminders(ROOM, None, [])
    assert len(await store.pending_reminders(OTHER_ROOM)) == 2


async def test_a_due_with_no_reminders_is_armed_all_the_same(store: Database) -> None:
    """A due armed with no reminders (none left to send) is the armed due: arming it again
    changes nothing."""
    assert await store.arm_reminders(ROOM, DUE, [])

    assert await store.pending_reminders(ROOM) == []
    assert await store.armed_due(ROOM) == DUE
    assert not await store.arm_reminders(ROOM, DUE, both())


@pytest.mark.parametrize(
    "reminders",
    [[("later", at(1))], [("overdue", at(1)), ("overdue", at(2))]],
    ids=["unknown kind", "kind twice"],
)
async def test_bad_reminders_are_refused(store: Database, reminders: list[tuple[str, str]]) -> None:
    """An unknown kind, or a kind given twice, raises ValueError and arms nothing."""
    with pytest.raises(ValueError, match="reminder kind"):
        await store.arm_reminders(ROOM, DUE, reminders)
    assert await store.armed_due(ROOM) is None


# --- claiming -----------------------------------------------------------------------------


async def test_claims_take_what_fell_due_earliest_first(store: Database) -> None:
    """A claim takes the reminders due by then, earliest first, at most `limit`; what it
    took is not claimed again while its lease lasts."""
    await store.arm_reminders(ROOM, DUE, both(soon=10, overdue=40))
    await store.arm_reminders(OTHER_ROOM, DUE, both(soon=5, overdue=20))

    assert await claim(store, 4) == []
    first = await claim(store, 20, limit=2)
    assert first == [
        Reminder(OTHER_ROOM, "due_soon", DUE, at(5)),
        Reminder(ROOM, "due_soon", DUE, at(10)),
    ]
    assert await claim(store, 21) == [Reminder(OTHER_ROOM, "overdue", DUE, at(20))]
    assert await claim(store, 22) == []


async def test_an_expired_lease_is_claimed_again(store: Database) -> None:
    """A claim whose lease ended (its instance died sending it) is claimed again."""
    await store.arm_reminders(ROOM, DUE, [("overdue", at(10))])
    [claimed] = await claim(store, 10, lease=5)

    assert await claim(store, 14) == []
    assert await claim(store, 15, lease=5) == [claimed]
    assert await claim(store, 16) == []


async def test_finishing_deletes_the_reminder_of_its_due_only(store: Database) -> None:
    """A finished reminder is gone (once); one re-armed for another due is not touched."""
    await store.arm_reminders(ROOM, DUE, both())
    soon, overdue = await claim(store, 20)

    assert await store.finish_reminder(soon)
    assert not await store.finish_reminder(soon)
    assert await store.pending_reminders(ROOM) == [overdue]
    await store.arm_reminders(ROOM, LATER_DUE, [("overdue", at(30))])
    assert not await store.finish_reminder(overdue)
    assert await store.pending_reminders(ROOM) == [Reminder(ROOM, "overdue", LATER_DUE, at(30))]


async def test_the_next_fire_time_is_the_earliest_claimable_moment(store: Database) -> None:
    """None without reminders; the earliest fire time of those unclaimed, or the end of a
    claim when that is sooner."""
    assert await store.next_fire_at() is None
    await store.arm_reminders(ROOM, DUE, both(soon=10, overdue=40))
    await store.arm_reminders(OTHER_ROOM, DUE, [("overdue", at(30))])
    assert await store.next_fire_at() == at(10)

    await claim(store, 10, lease=5)
    assert await store.next_fire_at() == at(15)
    await claim(store, 15, lease=60)
    assert await store.next_fire_at() == at(30)
    await store.arm_reminders(ROOM, None, [])
    await store.arm_reminders(OTHER_ROOM, None, [])
    assert await store.next_fire_at() is None


async def test_two_instances_claiming_at_once_take_each_reminder_once(backend: Backend) -> None:
    """Many claims at once over two store instances on one database: every reminder goes to
    exactly one of them."""
    first = await backend.new_store()
    second = await backend.another_store(first)
    rooms = [f"{WS}/race{n:02d}" for n in range(12)]
    for n, room_id in enumerate(rooms):
        await first.arm_reminders(room_id, DUE, both(soon=n, overdue=20 + n))

    results = await asyncio.gather(
        *(claim(instance, 40, limit=3) for instance in [first, second] * 10)
    )

    claimed = [reminder for result in results for reminder in result]
    assert len(claimed) == len(set(claimed)) == 2 * len(rooms)
    assert {r.room_id for r in claimed} == set(rooms)


async def test_a_lease_ended_on_one_instance_is_claimed_by_the_other(backend: Backend) -> None:
    """One instance claims and never finishes; the other claims it once the lease ended."""
    first = await backend.new_store()
    second = await backend.another_store(first)
    await first.arm_reminders(ROOM, DUE, [("overdue", at(10))])
    [claimed] = await claim(first, 10, lease=5)

    assert await claim(second, 12) == []
    assert await second.next_fire_at() == at(15)
    assert await claim(second, 15) == [claimed]
    assert await second.finish_reminder(claimed)
    assert await first.pending_reminders(ROOM) == []


async def test_pending_reminders_outlive_the_store_instance(durable_backend: Backend) -> None:
    """Reminders armed and claims made are in the database: a new instance finds them."""
    store = await durable_backend.new_store()
    await store.arm_reminders(ROOM, DUE, both())
    await claim(store, 10, lease=5)
    await store.close()

    reopened = await durable_backend.another_store(store)

    assert await reopened.armed_due(ROOM) == DUE
    assert await reopened.next_fire_at() == at(15)
    assert [r.kind for r in await claim(reopened, 20)] == ["due_soon", "overdue"]


# --- notes never armed, and purges --------------------------------------------------------


async def test_notes_never_armed_for_their_due_are_listed_in_due_order(store: Database) -> None:
    """Listed: notes due from the given time whose armed due is not theirs, not trashed, by
    due time, workspace and note, page after page."""
    await create_note(store, "past", "2026-12-01", "2026-12-01T00:00:00.000000+00:00")
    await create_note(store, "none", None, None)
    await create_note(store, "b", "2026-12-24", "2026-12-24T00:00:00.000000+00:00")
    await create_note(store, "a", "2026-12-24", "2026-12-24T00:00:00.000000+00:00")
    await create_note(store, "z", "2026-12-22", "2026-12-22T00:00:00.000000+00:00", "w0")
    await create_note(store, "armed", "2026-12-23", "2026-12-23T00:00:00.000000+00:00")
    await create_note(store, "stale", "2026-12-25", "2026-12-25T00:00:00.000000+00:00")
    await create_note(store, "binned", "2026-12-26", "2026-12-26T00:00:00.000000+00:00")
    await store.arm_reminders(f"{WS}/armed", "2026-12-23", [])
    await store.arm_reminders(f"{WS}/stale", "2026-12-20", [])
    await store.trash_note(WS, "binned", at=at(1))

    start = DueNote.start(at(0))
    first = await store.unarmed_notes(after=start, limit=2)
    second = await store.unarmed_notes(after=first[-1], limit=2)

    assert [note.room_id for note in first + second] == ["w0/z", "w1/a", "w1/b", "w1/stale"]
    assert first[0] == DueNote("w0/z", "2026-12-22", "2026-12-22T00:00:00.000000+00:00")
    assert await store.unarmed_notes(after=second[-1], limit=2) == []


async def test_a_purge_deletes_the_reminders_and_nothing_arms_them_again(store: Database) -> None:
    """A purged note's reminders and armed due go with it; arming it later does nothing."""
    await create_note(store, "n1", DUE, "2026-12-24T00:00:00.000000+00:00")
    await store.arm_reminders(ROOM, DUE, both())

    assert await store.purge_note(WS, "n1", at=at(1))

    assert await store.pending_reminders(ROOM) == []
    assert await store.armed_due(ROOM) is None
    assert not await store.arm_reminders(ROOM, LATER_DUE, both())
    assert await store.pending_reminders(ROOM) == []
