"""The deadline reminders of `PostgresStore`, as statements over an asyncpg connection.

Each write runs inside a READ COMMITTED transaction the store opened; each read is one
statement. Several instances share the rows:

- **Arming** a note takes the note's reminder lock (`REMINDER_LOCK_NAMESPACE`), so two
  instances arming it at once replace its rows one after the other, each seeing what the
  other armed. Arming is a write of its note: it holds the purge lock shared
  (`postgres_catalog.lock_out_purges`), and a purge deletes the note's reminders with it
  (`postgres_catalog.purge_note`).
- **Claiming** locks the rows it takes and skips those another instance is claiming
  (`FOR UPDATE SKIP LOCKED`); a row claimed by a transaction that committed meanwhile is
  read again with its claim, and left out: each row goes to one instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from collab.store.postgres_catalog import is_purged, lock_out_purges
from collab.store.reminders import DueNote, Reminder, reminder_page

# Notes' reminders lock in the two-int4 advisory key space, by the hash of the room id, under
# this first key ("collab reminders" as ASCII), apart from the rooms' other locks.
REMINDER_LOCK_NAMESPACE = int.from_bytes(b"clrm", "big")
_COLUMNS = "room_id, kind, due, fire_at"


async def arm_reminders(
    conn: Any, room_id: str, due: str | None, reminders: Sequence[tuple[str, str]]
) -> bool:
    # The purge lock first: no write waits for it holding another lock.
    await lock_out_purges(conn)
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))", REMINDER_LOCK_NAMESPACE, room_id
    )
    if due is None:
        changed = await conn.fetchval(
            "WITH gone_due AS (DELETE FROM reminder_dues WHERE room_id = $1 RETURNING 1), "
            "gone AS (DELETE FROM reminders WHERE room_id = $1 RETURNING 1) "
            "SELECT EXISTS (SELECT 1 FROM gone_due) OR EXISTS (SELECT 1 FROM gone)",
            room_id,
        )
        return bool(changed)
    armed = await conn.fetchval("SELECT due FROM reminder_dues WHERE room_id = $1", room_id)
    if armed == due or await is_purged(conn, room_id):
        return False
    await conn.execute("DELETE FROM reminders WHERE room_id = $1", room_id)
    await conn.execute(
        "INSERT INTO reminders (room_id, kind, due, fire_at) "
        "SELECT $1, kind, $2, fire_at FROM unnest($3::text[], $4::text[]) AS r (kind, fire_at)",
        room_id,
        due,
        [kind for kind, _ in reminders],
        [fire_at for _, fire_at in reminders],
    )
    await conn.execute(
        "INSERT INTO reminder_dues (room_id, due) VALUES ($1, $2) "
        "ON CONFLICT (room_id) DO UPDATE SET due = excluded.due",
        room_id,
        due,
    )
    return True


async def armed_due(conn: Any, room_id: str) -> str | None:
    due = await conn.fetchval("SELECT due FROM reminder_dues WHERE room_id = $1", room_id)
    return None if due is None else str(due)


async def pending_reminders(conn: Any, room_id: str) -> list[Reminder]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM reminders WHERE room_id = $1 ORDER BY fire_at, kind", room_id
    )
    return [_reminder(row) for row in rows]


async def claim_reminders(conn: Any, *, now: str, lease_until: str, limit: int) -> list[Reminder]:
    # A range of the index reminders_fire_at (migration 0009). The outer ORDER BY: UPDATE
    # ... RETURNING returns rows in no promised order.
    rows = await conn.fetch(
        "WITH claimed AS (UPDATE reminders r SET claimed_until = $2 FROM ("
        "SELECT room_id, kind FROM reminders "
        "WHERE fire_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1) "
        "ORDER BY fire_at, room_id, kind LIMIT $3 FOR UPDATE SKIP LOCKED) AS due "
        "WHERE r.room_id = due.room_id AND r.kind = due.kind "
        "RETURNING r.room_id, r.kind, r.due, r.fire_at) "
        f"SELECT {_COLUMNS} FROM claimed ORDER BY fire_at, room_id, kind",
        now,
        lease_until,
        reminder_page(limit),
    )
    return [_reminder(row) for row in rows]


async def finish_reminder(conn: Any, reminder: Reminder) -> bool:
    deleted = await conn.fetchval(
        "DELETE FROM reminders WHERE room_id = $1 AND kind = $2 AND due = $3 RETURNING true",
        reminder.room_id,
        reminder.kind,
        reminder.due,
    )
    return deleted is not None


async def next_fire_at(conn: Any) -> str | None:
    moment = await conn.fetchval(
        "SELECT least("
        "(SELECT min(fire_at) FROM reminders WHERE claimed_until IS NULL), "
        "(SELECT min(claimed_until) FROM reminders WHERE claimed_until IS NOT NULL))"
    )
    return None if moment is None else str(moment)


async def unarmed_notes(conn: Any, *, after: DueNote, limit: int) -> list[DueNote]:
    # A range of the index notes_due_at (migration 0009), read in its order.
    due_at, workspace_id, note_id = after.key
    rows = await conn.fetch(
        "SELECT n.workspace_id, n.note_id, n.due, n.due_at FROM notes n "
        "LEFT JOIN reminder_dues d ON d.room_id = n.workspace_id || '/' || n.note_id "
        "WHERE n.due_at IS NOT NULL AND n.trashed_at IS NULL "
        "AND (n.due_at, n.workspace_id, n.note_id) > ($1::text, $2::text, $3::text) "
        "AND d.due IS DISTINCT FROM n.due "
        "ORDER BY n.due_at, n.workspace_id, n.note_id LIMIT $4",
        due_at,
        workspace_id,
        note_id,
        reminder_page(limit),
    )
    return [
        DueNote(f"{row['workspace_id']}/{row['note_id']}", str(row["due"]), str(row["due_at"]))
        for row in rows
    ]


def _reminder(row: Any) -> Reminder:
    return Reminder(str(row["room_id"]), str(row["kind"]), str(row["due"]), str(row["fire_at"]))
