"""Who may read a note in `PostgresStore`: the `private` flag of its catalog row and its
share list (`note_shares`, migration 0007), as statements over an asyncpg connection.

A write runs in a transaction the store opened and begins with `lock_out_purges`, as every
write of a note does: a purge (which deletes the list with the row,
`postgres_catalog.purge_note`) never leaves a list behind. Listings leave out the private
notes a reader cannot read (`postgres_catalog.list_statements`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collab.store.catalog import NoteAccess, Visibility
from collab.store.postgres_catalog import lock_out_purges


async def get_access(conn: Any, workspace_id: str, note_id: str) -> NoteAccess | None:
    rows = await conn.fetch(
        "SELECT n.private, n.created_by, s.user_id, s.role FROM notes n "
        "LEFT JOIN note_shares s ON s.workspace_id = n.workspace_id AND s.note_id = n.note_id "
        "WHERE n.workspace_id = $1 AND n.note_id = $2 ORDER BY s.user_id",
        workspace_id,
        note_id,
    )
    if not rows:
        return None
    users = {str(row["user_id"]): str(row["role"]) for row in rows if row["user_id"] is not None}
    visibility = Visibility.PRIVATE if rows[0]["private"] else Visibility.WORKSPACE
    return NoteAccess(visibility, users, rows[0]["created_by"])


async def set_access(
    conn: Any,
    workspace_id: str,
    note_id: str,
    *,
    visibility: Visibility,
    users: Mapping[str, str],
) -> NoteAccess | None:
    await lock_out_purges(conn)
    # The row is locked by the update: concurrent changes of one note's list take turns.
    row = await conn.fetchrow(
        "UPDATE notes SET private = $3 WHERE workspace_id = $1 AND note_id = $2 "
        "RETURNING created_by",
        workspace_id,
        note_id,
        visibility is Visibility.PRIVATE,
    )
    if row is None:
        return None
    await conn.execute(
        "DELETE FROM note_shares WHERE workspace_id = $1 AND note_id = $2", workspace_id, note_id
    )
    await conn.execute(
        "INSERT INTO note_shares (workspace_id, note_id, user_id, role) "
        "SELECT $1, $2, u.user_id, u.role FROM unnest($3::text[], $4::text[]) AS u(user_id, role)",
        workspace_id,
        note_id,
        list(users),
        list(users.values()),
    )
    return NoteAccess(visibility, dict(users), row["created_by"])
