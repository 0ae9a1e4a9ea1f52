"""The pure parts of deadline reminders: fire times, recipients, dedup keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from collab.rooms.reminders import dedup_key, recipients, reminder_times
from collab.store.catalog import CatalogEntry, NoteFields
from collab.store.reminders import Reminder

DUE_AT = datetime(2026, 12, 24, tzinfo=UTC)
DAY_S = 86400


def entry(assignees: tuple[str, ...], created_by: str | None) -> CatalogEntry:
    return CatalogEntry(
        "w1",
        "n1",
        NoteFields(assignees=assignees),
        created_at="2026-12-01T00:00:00.000000+00:00",
        created_by=created_by,
        updated_at="2026-12-01T00:00:00.000000+00:00",
        updated_by=created_by,
    )


def test_a_future_due_gets_due_soon_before_it_and_overdue_at_it() -> None:
    """Armed well ahead: `due_soon` the setting's seconds before the due time, then
    `overdue` at it."""
    now = DUE_AT - timedelta(days=3)
    assert reminder_times(DUE_AT, now, DAY_S) == [
        ("due_soon", "2026-12-23T00:00:00.000000+00:00"),
        ("overdue", "2026-12-24T00:00:00.000000+00:00"),
    ]


def test_a_due_nearer_than_the_warning_still_gets_due_soon_at_once() -> None:
    """Armed less than the warning before the due time: `due_soon` is due already (it is
    sent at once), `overdue` at the due time."""
    times = reminder_times(DUE_AT, DUE_AT - timedelta(hours=1), DAY_S)
    assert [kind for kind, _ in times] == ["due_soon", "overdue"]
    assert times[0][1] < "2026-12-23T23:00:00.000000+00:00"


def test_a_due_reached_gets_overdue_only() -> None:
    """Armed at or after the due time: only `overdue` (sent at once)."""
    for now in (DUE_AT, DUE_AT + timedelta(days=1)):
        assert reminder_times(DUE_AT, now, DAY_S) == [
            ("overdue", "2026-12-24T00:00:00.000000+00:00")
        ]


def test_no_warning_means_no_due_soon() -> None:
    """`COLLAB_DUE_SOON_S=0`: `overdue` only."""
    assert [kind for kind, _ in reminder_times(DUE_AT, DUE_AT - timedelta(days=3), 0)] == [
        "overdue"
    ]


def test_reminders_go_to_the_assignees_or_else_the_creator() -> None:
    """Assignees in their order; the creator only when nobody is assigned; nobody when the
    note has neither."""
    assert recipients(entry(("u2", "u3"), "u1")) == ["u2", "u3"]
    assert recipients(entry((), "u1")) == ["u1"]
    assert recipients(entry((), None)) == []


def test_the_dedup_key_names_kind_note_due_and_user() -> None:
    """One key per kind, note, due and user: a new due is a new reminder."""
    reminder = Reminder("w1/n1", "overdue", "2026-12-24", "2026-12-24T00:00:00.000000+00:00")
    assert dedup_key(reminder, "u2") == "reminder:overdue:w1/n1:2026-12-24:u2"
