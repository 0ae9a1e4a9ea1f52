"""Who may read a note in `SqliteStore`: the `private` flag of its catalog row and its share
list (`note_shares`, migration 0007), as statements inside the store's transaction.

A purge deletes the list with the row (`sqlite_catalog.purge_note`); listings leave out the
private notes a reader cannot read (`sqlite_catalog.list_notes`).
"""

from __future__ import annotations

from collections.abc import Mapping

import aiosqlite

from collab.store.catalog import NoteAccess, Visibility


async def get_access(
    conn: aiosqlite.Connection, workspace_id: str, note_id: str
) -> NoteAccess | None:
    rows = await conn.execute_fetchall(
        "SELECT private, created_by FROM notes WHERE workspace_id = ? AND note_id = ?",
        (workspace_id, note_id),
    )
    row = next(iter(rows), None)
    if row is None:
        return None
    return NoteAccess(
        Visibility.PRIVATE if row[0] else Visibility.WORKSPACE,
        await _users(conn, workspace_id, note_id),
        row[1],
    )


async def set_access(
    conn: aiosqlite.Connection,
    workspace_id: str,
    note_id: str,
    *,
    visibility: Visibility,
    users: Mapping[str, str],
) -> NoteAccess | None:
    rows = await conn.execute_fetchall(
        "UPDATE notes SET private = ? WHERE workspace_id = ? AND note_id = ? RETURNING created_by",
        (int(visibility is Visibility.PRIVATE), workspace_id, note_id),
    )
    row = next(iter(rows), None)
    if row is None:
        return None
    await conn.execute(
        "DELETE FROM note_shares WHERE workspace_id = ? AND note_id = ?", (workspace_id, note_id)
    )
    await conn.executemany(
        "INSERT INTO note_shares (workspace_id, note_id, user_id, role) VALUES (?, ?, ?, ?)",
        [(workspace_id, note_id, user_id, role) for user_id, role in users.items()],
    )
    return NoteAccess(visibility, dict(users), row[0])


async def _users(conn: aiosqlite.Connection, workspace_id: str, note_id: str) -> dict[str, str]:
    rows = await conn.execute_fetchall(
        "SELECT user_id, role FROM note_shares WHERE workspace_id = ? AND note_id = ? "
        "ORDER BY user_id",
        (workspace_id, note_id),
    )
    return {str(row[0]): str(row[1]) for row in rows}
