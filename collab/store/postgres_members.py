"""The member directory of `PostgresStore`, as statements over an asyncpg connection.

Each write runs inside a READ COMMITTED transaction the store opened (`PostgresStore`'s
MemberStore section); each read is one statement; `fill_name_keys` runs at open. Several
instances share the database: `record_seen` upserts its rows in one order
(`members.latest_seen`), so two batches naming the same members cannot deadlock, and
`put_member` locks the row before it reads it (a row another instance inserts meanwhile is
waited for, then locked).

A prefix search is two ranges (`members.prefix_end`): of the user id, along the primary key,
and of `name_key` (the listed name case-folded by the store, `members.name_key`), along its
index (migration 0006). Those columns are COLLATE "C": code point order, as Python's, so
pages and prefixes agree with `memory_members` whatever the database's locale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from collab.store.members import (
    MAX_MEMBERS_READ,
    Member,
    SeenMember,
    latest_seen,
    name_key,
    prefix_end,
)

# In the order of `Member`'s fields.
_MEMBER_COLUMNS = (
    "workspace_id, user_id, assigned_name, token_name, email, token_role, assigned_role, "
    "last_seen_at, removed_at"
)


async def record_seen(conn: Any, seen: Sequence[SeenMember]) -> None:
    # One row per member: ON CONFLICT refuses to update a row twice in one statement.
    latest = latest_seen(seen)
    # The name key follows the token's name only while no assigned name is listed instead;
    # a removed member's row is left as it is.
    await conn.execute(
        "INSERT INTO workspace_members AS m (workspace_id, user_id, token_name, token_role, "
        "name_key, first_seen, last_seen_at, token_email) "
        "SELECT s.workspace_id, s.user_id, s.name, s.role, s.name_key, s.at::timestamptz, s.at, "
        "s.email "
        "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
        "$7::text[]) "
        "WITH ORDINALITY AS s (workspace_id, user_id, name, role, name_key, at, email, n) "
        "ORDER BY s.n "
        "ON CONFLICT (workspace_id, user_id) DO UPDATE SET "
        "token_role = excluded.token_role, "
        "token_name = coalesce(excluded.token_name, m.token_name), "
        "token_email = coalesce(excluded.token_email, m.token_email), "
        "name_key = CASE WHEN coalesce(m.assigned_name, '') = '' "
        "AND excluded.token_name IS NOT NULL THEN excluded.name_key ELSE m.name_key END, "
        "last_seen_at = greatest(m.last_seen_at, excluded.last_seen_at) "
        "WHERE m.removed_at IS NULL",
        [s.workspace_id for s in latest],
        [s.user_id for s in latest],
        [s.name for s in latest],
        [s.role for s in latest],
        [name_key(None, s.name) for s in latest],
        [s.at for s in latest],
        [s.email for s in latest],
    )


async def put_member(
    conn: Any,
    workspace_id: str,
    user_id: str,
    *,
    role: str,
    name: str | None,
    email: str | None,
    at: str,
) -> tuple[Member, bool]:
    row = await _lock_row(conn, workspace_id, user_id)
    if row is None:
        inserted = await conn.fetchrow(
            "INSERT INTO workspace_members (workspace_id, user_id, assigned_role, "
            "assigned_name, email, name_key, first_seen) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7::text::timestamptz) "
            f"ON CONFLICT (workspace_id, user_id) DO NOTHING RETURNING {_MEMBER_COLUMNS}",
            workspace_id,
            user_id,
            role,
            name,
            email,
            name_key(name, None),
            at,
        )
        if inserted is not None:
            return _member(inserted), True
        # Another instance inserted the row first (the insert waited for its commit).
        row = await _lock_row(conn, workspace_id, user_id)
    updated = await conn.fetchrow(
        "UPDATE workspace_members SET assigned_role = $3, assigned_name = $4, email = $5, "
        "name_key = $6, removed_at = NULL WHERE workspace_id = $1 AND user_id = $2 "
        f"RETURNING {_MEMBER_COLUMNS}",
        workspace_id,
        user_id,
        role,
        name,
        email,
        name_key(name, row["token_name"]),
    )
    return _member(updated), row["removed_at"] is not None


async def remove_member(conn: Any, workspace_id: str, user_id: str, *, at: str) -> Member | None:
    row = await conn.fetchrow(
        "UPDATE workspace_members SET removed_at = $3 "
        "WHERE workspace_id = $1 AND user_id = $2 AND removed_at IS NULL "
        f"RETURNING {_MEMBER_COLUMNS}",
        workspace_id,
        user_id,
        at,
    )
    return None if row is None else _member(row)


async def get_member(conn: Any, workspace_id: str, user_id: str) -> Member | None:
    row = await conn.fetchrow(
        f"SELECT {_MEMBER_COLUMNS} FROM workspace_members WHERE workspace_id = $1 AND user_id = $2",
        workspace_id,
        user_id,
    )
    return None if row is None else _member(row)


async def list_members(
    conn: Any, workspace_id: str, *, prefix: str, after: str, limit: int
) -> list[Member]:
    params: list[Any] = [workspace_id, after]
    where = ["workspace_id = $1", "removed_at IS NULL", "user_id > $2"]
    if prefix:
        in_id = _in_range("user_id", prefix, params)
        in_name = _in_range("name_key", prefix.casefold(), params)
        where.append(f"({in_id} OR {in_name})")
    params.append(max(1, min(limit, MAX_MEMBERS_READ)))
    rows = await conn.fetch(
        f"SELECT {_MEMBER_COLUMNS} FROM workspace_members WHERE {' AND '.join(where)} "
        f"ORDER BY user_id LIMIT ${len(params)}",
        *params,
    )
    return [_member(row) for row in rows]


async def managed_members(conn: Any) -> list[Member]:
    # The condition of the index workspace_members_managed (migration 0006), word for word.
    rows = await conn.fetch(
        f"SELECT {_MEMBER_COLUMNS} FROM workspace_members "
        "WHERE assigned_role IS NOT NULL OR removed_at IS NOT NULL "
        "ORDER BY workspace_id, user_id"
    )
    return [_member(row) for row in rows]


async def non_members(conn: Any, workspace_id: str, user_ids: Sequence[str]) -> list[str]:
    rows = await conn.fetch(
        "SELECT user_id FROM workspace_members "
        "WHERE workspace_id = $1 AND user_id = ANY($2::text[]) AND removed_at IS NULL",
        workspace_id,
        list(user_ids),
    )
    members = {row["user_id"] for row in rows}
    return [u for u in user_ids if u not in members]


async def fill_name_keys(conn: Any) -> None:
    """Write the name keys migration 0006 left NULL (names not in ASCII: SQL has no
    `str.casefold`), in one transaction. Run when the store opens, before it serves: a read
    of an index holding no rows once done. A key another instance wrote meanwhile is kept."""
    rows = await conn.fetch(
        "SELECT workspace_id, user_id, assigned_name, token_name FROM workspace_members "
        "WHERE name_key IS NULL"
    )
    if not rows:
        return
    async with conn.transaction():
        await conn.executemany(
            "UPDATE workspace_members SET name_key = $3 "
            "WHERE workspace_id = $1 AND user_id = $2 AND name_key IS NULL",
            [
                (
                    row["workspace_id"],
                    row["user_id"],
                    name_key(row["assigned_name"], row["token_name"]),
                )
                for row in rows
            ],
        )


async def _lock_row(conn: Any, workspace_id: str, user_id: str) -> Any:
    return await conn.fetchrow(
        "SELECT token_name, removed_at FROM workspace_members "
        "WHERE workspace_id = $1 AND user_id = $2 FOR UPDATE",
        workspace_id,
        user_id,
    )


def _in_range(column: str, prefix: str, params: list[Any]) -> str:
    """The condition that `column` starts with `prefix`, its bounds appended to `params`."""
    end = prefix_end(prefix)
    params.append(prefix)
    if end is None:
        return f"{column} >= ${len(params)}"
    params.append(end)
    return f"({column} >= ${len(params) - 1} AND {column} < ${len(params)})"


def _member(row: Any) -> Member:
    return Member(*row)
