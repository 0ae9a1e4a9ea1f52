"""The deadline reminders of `SqliteStore`, as statements over a connection inside its
transaction (`SqliteStore._transaction`).

Writes begin IMMEDIATE: they hold the database's write lock from their first read, so of two
processes claiming at once the second reads the first one's claims, and a note's armed due
is still the one read when its rows are replaced. A purge deletes a note's reminders with it
(`sqlite_catalog.purge_note`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiosqlite

from collab.store import sqlite_catalog
from collab.store.reminders import DueNote, Reminder, reminder_page

_COLUMNS = "room_id, kind, due, fire_at"


async def arm_reminders(
    conn: aiosqlite.Connection,
    room_id: str,
    due: str | None,
    reminders: Sequence[tuple[str, str]],
) -> bool:
    if due is None:
        gone = await conn.execute_fetchall(
            "DELETE FROM reminder_dues WHERE room_id = ? RETURNING 1", (room_id,)
        )
        rows = await conn.execute_fetchall(
            "DELETE FROM reminders WHERE room_id = ? RETURNING 1", (room_id,)
        )
        return bool(gone) or bool(rows)
    armed = await conn.execute_fetchall(
        "SELECT due FROM reminder_dues WHERE room_id = ?", (room_id,)
    )
    if any(str(row[0]) == due for row in armed):
        return False
    if await sqlite_catalog.is_purged(conn, room_id):
        return False
    await conn.execute("DELETE FROM reminders WHERE room_id = ?", (room_id,))
    await conn.executemany(
        "INSERT INTO reminders (room_id, kind, due, fire_at) VALUES (?, ?, ?, ?)",
        [(room_id, kind, due, fire_at) for kind, fire_at in reminders],
    )
    await conn.execute(
        "INSERT INTO reminder_dues (room_id, due) VALUES (?, ?) "
        "ON CONFLICT (room_id) DO UPDATE SET due = excluded.due",
        (room_id, due),
    )
    return True


async def armed_due(conn: aiosqlite.Connection, room_id: str) -> str | None:
    rows = await conn.execute_fetchall(
        "SELECT due FROM reminder_dues WHERE room_id = ?", (room_id,)
    )
    return next((str(row[0]) for row in rows), None)


async def pending_reminders(conn: aiosqlite.Connection, room_id: str) -> list[Reminder]:
    rows = await conn.execute_fetchall(
        f"SELECT {_COLUMNS} FROM reminders WHERE room_id = ? ORDER BY fire_at, kind",
        (room_id,),
    )
    return [_reminder(row) for row in rows]


async def claim_reminders(
    conn: aiosqlite.Connection, *, now: str, lease_until: str, limit: int
) -> list[Reminder]:
    # A range of the index reminders_fire_at (migration 0009); the write lock held since
    # BEGIN IMMEDIATE keeps another process from claiming the same rows in between.
    rows = await conn.execute_fetchall(
        f"SELECT {_COLUMNS} FROM reminders "
        "WHERE fire_at <= ?1 AND (claimed_until IS NULL OR claimed_until <= ?1) "
        "ORDER BY fire_at, room_id, kind LIMIT ?2",
        (now, reminder_page(limit)),
    )
    claimed = [_reminder(row) for row in rows]
    await conn.executemany(
        "UPDATE reminders SET claimed_until = ? WHERE room_id = ? AND kind = ?",
        [(lease_until, r.room_id, r.kind) for r in claimed],
    )
    return claimed


async def finish_reminder(conn: aiosqlite.Connection, reminder: Reminder) -> bool:
    rows = await conn.execute_fetchall(
        "DELETE FROM reminders WHERE room_id = ? AND kind = ? AND due = ? RETURNING 1",
        (reminder.room_id, reminder.kind, reminder.due),
    )
    return bool(rows)


async def next_fire_at(conn: aiosqlite.Connection) -> str | None:
    rows = await conn.execute_fetchall(
        "SELECT min(m) FROM ("
        "SELECT min(fire_at) AS m FROM reminders WHERE claimed_until IS NULL "
        "UNION ALL "
        "SELECT min(claimed_until) FROM reminders WHERE claimed_until IS NOT NULL)"
    )
    return next((None if row[0] is None else str(row[0]) for row in rows), None)


async def unarmed_notes(conn: aiosqlite.Connection, *, after: DueNote, limit: int) -> list[DueNote]:
    # A range of the index notes_due_at (migration 0009), read in its order.
    due_at, workspace_id, note_id = after.key
    rows = await conn.execute_fetchall(
        "SELECT n.workspace_id, n.note_id, n.due, n.due_at FROM notes n "
        "LEFT JOIN reminder_dues d ON d.room_id = n.workspace_id || '/' || n.note_id "
        "WHERE n.due_at IS NOT NULL AND n.trashed_at IS NULL "
        "AND (n.due_at, n.workspace_id, n.note_id) > (?, ?, ?) "
        "AND d.due IS NOT n.due "
        "ORDER BY n.due_at, n.workspace_id, n.note_id LIMIT ?",
        (due_at, workspace_id, note_id, reminder_page(limit)),
    )
    return [DueNote(f"{row[0]}/{row[1]}", str(row[2]), str(row[3])) for row in rows]


def _reminder(row: Any) -> Reminder:
    room_id, kind, due, fire_at = row
    return Reminder(str(room_id), str(kind), str(due), str(fire_at))
