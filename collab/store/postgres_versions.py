"""The version history of `PostgresStore`, as statements over an asyncpg connection.

Each write runs inside a READ COMMITTED transaction the store opened; each read is one
statement. Several instances share the database: the writes of one room's history take the
room's version lock (`VERSION_LOCK_NAMESPACE`) first, so an automatic version is compared
with the newest one still newest when it is stored (of several instances trying the same
one, the first stores it and the others find it), and a state a new version refers to is
never deleted meanwhile as no longer referred to. A version is a write of its note: it
holds the purge lock shared (`postgres_catalog.lock_out_purges`), and a purge deletes the
history with the note (`postgres_catalog.purge_note`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from collab.store.postgres_catalog import is_purged, lock_out_purges
from collab.store.versions import (
    MAX_VERSION_ID,
    PackedState,
    Version,
    page_limit,
    refused,
    room_page_limit,
    version_number,
    version_numbers,
)

# Rooms' histories lock in the two-int4 advisory key space, by the hash of the room id, under
# this first key ("collab version room" as ASCII), apart from the rooms' compaction locks.
VERSION_LOCK_NAMESPACE = int.from_bytes(b"clvr", "big")
# In the order of `Version`'s fields.
_VERSION_COLUMNS = "v.id, v.room_id, v.created_at, v.kind, v.name, v.created_by, v.authors, s.size"
_VERSION_FROM = "versions v JOIN version_states s ON s.room_id = v.room_id AND s.digest = v.digest"


async def record_authors(conn: Any, authors: Collection[tuple[str, str]]) -> None:
    # In one order: two batches naming the same authors wait for each other's rows instead
    # of each holding one the other needs next.
    pairs = sorted(set(authors))
    await conn.execute(
        "INSERT INTO version_authors (room_id, user_id) "
        "SELECT a.room_id, a.user_id FROM unnest($1::text[], $2::text[]) "
        "WITH ORDINALITY AS a (room_id, user_id, n) ORDER BY a.n ON CONFLICT DO NOTHING",
        [room_id for room_id, _ in pairs],
        [user_id for _, user_id in pairs],
    )


async def add_version(
    conn: Any,
    room_id: str,
    packed: PackedState,
    *,
    kind: str,
    name: str | None,
    created_by: str | None,
    at: str,
    min_gap_s: float | None,
) -> Version | None:
    # The purge lock first: no write waits for it holding another lock.
    await lock_out_purges(conn)
    await _lock_room(conn, room_id)
    if await is_purged(conn, room_id):
        return None
    newest = await conn.fetchrow(
        "SELECT digest, created_at FROM versions WHERE room_id = $1 ORDER BY id DESC LIMIT 1",
        room_id,
    )
    last = None if newest is None else (bytes(newest["digest"]), str(newest["created_at"]))
    if refused(kind, last, packed.digest, at, min_gap_s):
        return None
    # One statement: the state stored unless it is already, the authors taken (sorted as
    # Python sorts them: "C" order), the version inserted.
    row = await conn.fetchrow(
        "WITH state AS (INSERT INTO version_states (room_id, digest, size, stored_bytes, data) "
        "VALUES ($1::text, $2::bytea, $3::bigint, $4::bigint, $5::bytea) ON CONFLICT DO NOTHING), "
        "taken AS (DELETE FROM version_authors WHERE room_id = $1 RETURNING user_id) "
        "INSERT INTO versions (room_id, created_at, kind, name, created_by, authors, digest) "
        "SELECT $1, $6::text, $7::text, $8::text, $9::text, "
        "coalesce((SELECT array_agg(user_id ORDER BY user_id) FROM taken), '{}'), $2 "
        "RETURNING id, authors",
        room_id,
        packed.digest,
        packed.size,
        len(packed.data),
        packed.data,
        at,
        kind,
        name,
        created_by,
    )
    return Version(
        id=str(row["id"]),
        room_id=room_id,
        created_at=at,
        kind=kind,
        name=name,
        created_by=created_by,
        authors=tuple(row["authors"]),
        size=packed.size,
    )


async def list_versions(
    conn: Any, room_id: str, *, limit: int, before: str | None
) -> list[Version]:
    last = MAX_VERSION_ID if before is None else version_number(before)
    if last is None:
        return []
    if before is not None:
        last -= 1
    rows = await conn.fetch(
        f"SELECT {_VERSION_COLUMNS} FROM {_VERSION_FROM} WHERE v.room_id = $1 AND v.id <= $2 "
        "ORDER BY v.id DESC LIMIT $3",
        room_id,
        last,
        page_limit(limit),
    )
    return [_version(row) for row in rows]


async def get_version(conn: Any, room_id: str, version_id: str) -> Version | None:
    number = version_number(version_id)
    if number is None:
        return None
    row = await conn.fetchrow(
        f"SELECT {_VERSION_COLUMNS} FROM {_VERSION_FROM} WHERE v.room_id = $1 AND v.id = $2",
        room_id,
        number,
    )
    return None if row is None else _version(row)


async def state_data(conn: Any, room_id: str, version_id: str) -> bytes | None:
    """The compressed state of the version; None if there is no such version."""
    number = version_number(version_id)
    if number is None:
        return None
    data = await conn.fetchval(
        f"SELECT s.data FROM {_VERSION_FROM} WHERE v.room_id = $1 AND v.id = $2",
        room_id,
        number,
    )
    return None if data is None else bytes(data)


async def delete_versions(conn: Any, room_id: str, version_ids: Collection[str]) -> int:
    numbers = version_numbers(version_ids)
    if not numbers:
        return 0
    # The purge lock first, as in `add_version`: a purge deleting the same rows waits for
    # this transaction instead of each waiting for rows the other deleted.
    await lock_out_purges(conn)
    await _lock_room(conn, room_id)
    gone = await conn.fetch(
        "DELETE FROM versions WHERE room_id = $1 AND id = ANY($2::bigint[]) RETURNING digest",
        room_id,
        numbers,
    )
    # A statement of its own: one statement does not see the rows its own CTEs delete.
    await conn.execute(
        "DELETE FROM version_states s WHERE s.room_id = $1 AND s.digest = ANY($2::bytea[]) "
        "AND NOT EXISTS (SELECT 1 FROM versions v WHERE v.room_id = $1 AND v.digest = s.digest)",
        room_id,
        list({bytes(row["digest"]) for row in gone}),
    )
    return len(gone)


async def rooms_with_versions(
    conn: Any, *, created_before: str, after: str | None, limit: int
) -> list[str]:
    # A range of the index versions_auto (migration 0008), read in its order.
    params: list[Any] = [created_before, room_page_limit(limit)]
    where = "kind = 'auto' AND created_at < $1"
    if after is not None:
        params.append(after)
        where += " AND room_id > $3"
    rows = await conn.fetch(
        f"SELECT DISTINCT room_id FROM versions WHERE {where} ORDER BY room_id LIMIT $2",
        *params,
    )
    return [str(row["room_id"]) for row in rows]


async def version_bytes(conn: Any) -> int:
    return int(await conn.fetchval("SELECT coalesce(sum(stored_bytes), 0) FROM version_states"))


async def _lock_room(conn: Any, room_id: str) -> None:
    """Hold the room's version lock until the transaction ends."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))", VERSION_LOCK_NAMESPACE, room_id
    )


def _version(row: Any) -> Version:
    return Version(
        id=str(row["id"]),
        room_id=str(row["room_id"]),
        created_at=str(row["created_at"]),
        kind=str(row["kind"]),
        name=row["name"],
        created_by=row["created_by"],
        authors=tuple(row["authors"]),
        size=int(row["size"]),
    )
