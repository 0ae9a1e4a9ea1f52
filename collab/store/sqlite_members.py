"""The member directory of `SqliteStore`, as statements over a connection inside its
transaction (`SqliteStore._transaction`); `fill_name_keys` alone runs at open, on its own.

A prefix search is two ranges (`members.prefix_end`): of the user id, along the primary key,
and of `name_key` (the listed name case-folded by the store, `members.name_key`), along its
index (migration 0006). Text compares in code point order (SQLite's BINARY collation), as
Python's does, so pages and prefixes agree with `memory_members`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiosqlite

from collab.store.members import (
    MAX_MEMBERS_READ,
    Member,
    SeenMember,
    latest_seen,
    name_key,
    prefix_end,
)
from collab.store.migrations import rollback_after

MAX_IN_LIST = 500
"""Ids per `IN (...)` list: SQLite caps the parameters of one statement (999 in older builds)."""
# In the order of `Member`'s fields.
_MEMBER_COLUMNS = (
    "workspace_id, user_id, assigned_name, token_name, email, token_role, assigned_role, "
    "last_seen_at, removed_at"
)


async def record_seen(conn: aiosqlite.Connection, seen: Sequence[SeenMember]) -> None:
    rows = [
        (s.workspace_id, s.user_id, s.name, s.role, name_key(None, s.name), s.at, s.email)
        for s in latest_seen(seen)
    ]
    # The name key follows the token's name only while no assigned name is listed instead;
    # a removed member's row is left as it is.
    await conn.executemany(
        "INSERT INTO workspace_members (workspace_id, user_id, token_name, token_role, "
        "name_key, first_seen, last_seen_at, token_email) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7) "
        "ON CONFLICT (workspace_id, user_id) DO UPDATE SET "
        "token_role = excluded.token_role, "
        "token_name = coalesce(excluded.token_name, token_name), "
        "token_email = coalesce(excluded.token_email, token_email), "
        "name_key = CASE WHEN coalesce(assigned_name, '') = '' "
        "AND excluded.token_name IS NOT NULL THEN excluded.name_key ELSE name_key END, "
        "last_seen_at = max(coalesce(last_seen_at, ''), excluded.last_seen_at) "
        "WHERE removed_at IS NULL",
        rows,
    )


async def put_member(
    conn: aiosqlite.Connection,
    workspace_id: str,
    user_id: str,
    *,
    role: str,
    name: str | None,
    email: str | None,
    at: str,
) -> tuple[Member, bool]:
    found = await conn.execute_fetchall(
        "SELECT token_name, removed_at FROM workspace_members "
        "WHERE workspace_id = ? AND user_id = ?",
        (workspace_id, user_id),
    )
    row = next(iter(found), None)
    if row is None:
        rows = await conn.execute_fetchall(
            "INSERT INTO workspace_members (workspace_id, user_id, assigned_role, "
            "assigned_name, email, name_key, first_seen) VALUES (?, ?, ?, ?, ?, ?, ?) "
            f"RETURNING {_MEMBER_COLUMNS}",
            (workspace_id, user_id, role, name, email, name_key(name, None), at),
        )
        return _member(next(iter(rows))), True
    rows = await conn.execute_fetchall(
        "UPDATE workspace_members SET assigned_role = ?, assigned_name = ?, email = ?, "
        "name_key = ?, removed_at = NULL WHERE workspace_id = ? AND user_id = ? "
        f"RETURNING {_MEMBER_COLUMNS}",
        (role, name, email, name_key(name, row[0]), workspace_id, user_id),
    )
    return _member(next(iter(rows))), row[1] is not None


async def remove_member(
    conn: aiosqlite.Connection, workspace_id: str, user_id: str, *, at: str
) -> Member | None:
    rows = await conn.execute_fetchall(
        "UPDATE workspace_members SET removed_at = ? "
        "WHERE workspace_id = ? AND user_id = ? AND removed_at IS NULL "
        f"RETURNING {_MEMBER_COLUMNS}",
        (at, workspace_id, user_id),
    )
    return next((_member(row) for row in rows), None)


async def get_member(conn: aiosqlite.Connection, workspace_id: str, user_id: str) -> Member | None:
    rows = await conn.execute_fetchall(
        f"SELECT {_MEMBER_COLUMNS} FROM workspace_members WHERE workspace_id = ? AND user_id = ?",
        (workspace_id, user_id),
    )
    return next((_member(row) for row in rows), None)


async def list_members(
    conn: aiosqlite.Connection, workspace_id: str, *, prefix: str, after: str, limit: int
) -> list[Member]:
    where = ["workspace_id = ?", "removed_at IS NULL", "user_id > ?"]
    params: list[Any] = [workspace_id, after]
    if prefix:
        in_id = _in_range("user_id", prefix, params)
        in_name = _in_range("name_key", prefix.casefold(), params)
        where.append(f"({in_id} OR {in_name})")
    rows = await conn.execute_fetchall(
        f"SELECT {_MEMBER_COLUMNS} FROM workspace_members WHERE {' AND '.join(where)} "
        "ORDER BY user_id LIMIT ?",
        (*params, max(1, min(limit, MAX_MEMBERS_READ))),
    )
    return [_member(row) for row in rows]


async def managed_members(conn: aiosqlite.Connection) -> list[Member]:
    # The condition of the index workspace_members_managed (migration 0006), word for word.
    rows = await conn.execute_fetchall(
        f"SELECT {_MEMBER_COLUMNS} FROM workspace_members "
        "WHERE assigned_role IS NOT NULL OR removed_at IS NOT NULL "
        "ORDER BY workspace_id, user_id"
    )
    return [_member(row) for row in rows]


async def non_members(
    conn: aiosqlite.Connection, workspace_id: str, user_ids: Sequence[str]
) -> list[str]:
    members: set[str] = set()
    for start in range(0, len(user_ids), MAX_IN_LIST):
        chunk = list(user_ids[start : start + MAX_IN_LIST])
        rows = await conn.execute_fetchall(
            "SELECT user_id FROM workspace_members WHERE workspace_id = ? "
            f"AND user_id IN ({', '.join('?' * len(chunk))}) AND removed_at IS NULL",
            (workspace_id, *chunk),
        )
        members.update(row[0] for row in rows)
    return [u for u in user_ids if u not in members]


async def fill_name_keys(conn: aiosqlite.Connection) -> None:
    """Write the name keys migration 0006 left NULL (names not in ASCII: SQL has no
    `str.casefold`), in one transaction. Run when the store opens, before it serves: a
    read of an index holding no rows once done. `conn` is in autocommit mode."""
    unkeyed = "SELECT workspace_id, user_id, assigned_name, token_name FROM workspace_members "
    unkeyed += "WHERE name_key IS NULL"
    if not await conn.execute_fetchall(f"{unkeyed} LIMIT 1"):
        return
    try:
        await conn.execute("BEGIN IMMEDIATE")
        rows = await conn.execute_fetchall(unkeyed)
        await conn.executemany(
            "UPDATE workspace_members SET name_key = ? WHERE workspace_id = ? AND user_id = ?",
            [(name_key(row[2], row[3]), row[0], row[1]) for row in rows],
        )
        await conn.execute("COMMIT")
    except BaseException as exc:
        await rollback_after(conn, exc)
        raise


def _in_range(column: str, prefix: str, params: list[Any]) -> str:
    """The condition that `column` starts with `prefix`, its bounds appended to `params`."""
    end = prefix_end(prefix)
    params.append(prefix)
    if end is None:
        return f"{column} >= ?"
    params.append(end)
    return f"({column} >= ? AND {column} < ?)"


def _member(row: Any) -> Member:
    return Member(*row)
