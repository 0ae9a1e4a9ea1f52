"""The version history of `SqliteStore`, as statements over a connection inside its
transaction (`SqliteStore._transaction`).

Writes begin IMMEDIATE: they hold the database's write lock from their first read, so the
newest version an automatic one is compared with is still the newest when it is stored,
whichever process tries it too. A purge deletes a room's history with its note
(`sqlite_catalog.purge_note`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import aiosqlite
import orjson

from collab.store import sqlite_catalog
from collab.store.versions import (
    PackedState,
    Version,
    page_limit,
    refused,
    room_page_limit,
    version_number,
    version_numbers,
)

# In the order of `Version`'s fields.
_VERSION_COLUMNS = "v.id, v.room_id, v.created_at, v.kind, v.name, v.created_by, v.authors, s.size"
_VERSION_FROM = "versions v JOIN version_states s ON s.room_id = v.room_id AND s.digest = v.digest"


async def record_authors(conn: aiosqlite.Connection, authors: Collection[tuple[str, str]]) -> None:
    await conn.executemany(
        "INSERT INTO version_authors (room_id, user_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
        authors,
    )


async def add_version(
    conn: aiosqlite.Connection,
    room_id: str,
    packed: PackedState,
    *,
    kind: str,
    name: str | None,
    created_by: str | None,
    at: str,
    min_gap_s: float | None,
) -> Version | None:
    if await sqlite_catalog.is_purged(conn, room_id):
        return None
    rows = await conn.execute_fetchall(
        "SELECT digest, created_at FROM versions WHERE room_id = ? ORDER BY id DESC LIMIT 1",
        (room_id,),
    )
    newest = next(((bytes(row[0]), str(row[1])) for row in rows), None)
    if refused(kind, newest, packed.digest, at, min_gap_s):
        return None
    await conn.execute(
        "INSERT INTO version_states (room_id, digest, size, stored_bytes, data) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (room_id, packed.digest, packed.size, len(packed.data), packed.data),
    )
    taken = await conn.execute_fetchall(
        "DELETE FROM version_authors WHERE room_id = ? RETURNING user_id", (room_id,)
    )
    authors = tuple(sorted(str(row[0]) for row in taken))
    inserted = await conn.execute_fetchall(
        "INSERT INTO versions (room_id, created_at, kind, name, created_by, authors, digest) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (room_id, at, kind, name, created_by, orjson.dumps(authors).decode(), packed.digest),
    )
    return Version(
        id=str(next(iter(inserted))[0]),
        room_id=room_id,
        created_at=at,
        kind=kind,
        name=name,
        created_by=created_by,
        authors=authors,
        size=packed.size,
    )


async def list_versions(
    conn: aiosqlite.Connection, room_id: str, *, limit: int, before: str | None
) -> list[Version]:
    where = "v.room_id = ?"
    params: list[Any] = [room_id]
    if before is not None:
        bound = version_number(before)
        if bound is None:
            return []
        where += " AND v.id < ?"
        params.append(bound)
    rows = await conn.execute_fetchall(
        f"SELECT {_VERSION_COLUMNS} FROM {_VERSION_FROM} WHERE {where} ORDER BY v.id DESC LIMIT ?",
        (*params, page_limit(limit)),
    )
    return [_version(row) for row in rows]


async def get_version(conn: aiosqlite.Connection, room_id: str, version_id: str) -> Version | None:
    number = version_number(version_id)
    if number is None:
        return None
    rows = await conn.execute_fetchall(
        f"SELECT {_VERSION_COLUMNS} FROM {_VERSION_FROM} WHERE v.room_id = ? AND v.id = ?",
        (room_id, number),
    )
    return next((_version(row) for row in rows), None)


async def state_data(conn: aiosqlite.Connection, room_id: str, version_id: str) -> bytes | None:
    """The compressed state of the version; None if there is no such version."""
    number = version_number(version_id)
    if number is None:
        return None
    rows = await conn.execute_fetchall(
        f"SELECT s.data FROM {_VERSION_FROM} WHERE v.room_id = ? AND v.id = ?",
        (room_id, number),
    )
    return next((bytes(row[0]) for row in rows), None)


async def delete_versions(
    conn: aiosqlite.Connection, room_id: str, version_ids: Collection[str]
) -> int:
    numbers = version_numbers(version_ids)
    if not numbers:
        return 0
    # One parameter however many ids: a JSON array, unpacked by json_each.
    rows = await conn.execute_fetchall(
        "DELETE FROM versions WHERE room_id = ? AND id IN (SELECT value FROM json_each(?)) "
        "RETURNING digest",
        (room_id, orjson.dumps(numbers).decode()),
    )
    gone = [bytes(row[0]) for row in rows]
    await conn.executemany(
        "DELETE FROM version_states WHERE room_id = ?1 AND digest = ?2 "
        "AND NOT EXISTS (SELECT 1 FROM versions WHERE room_id = ?1 AND digest = ?2)",
        [(room_id, digest) for digest in set(gone)],
    )
    return len(gone)


async def rooms_with_versions(
    conn: aiosqlite.Connection, *, created_before: str, after: str | None, limit: int
) -> list[str]:
    # A range of the index versions_auto (migration 0008), read in its order.
    where = "kind = 'auto' AND created_at < ?"
    params: list[Any] = [created_before]
    if after is not None:
        where += " AND room_id > ?"
        params.append(after)
    rows = await conn.execute_fetchall(
        f"SELECT DISTINCT room_id FROM versions WHERE {where} ORDER BY room_id LIMIT ?",
        (*params, room_page_limit(limit)),
    )
    return [str(row[0]) for row in rows]


async def version_bytes(conn: aiosqlite.Connection) -> int:
    rows = await conn.execute_fetchall("SELECT coalesce(sum(stored_bytes), 0) FROM version_states")
    return int(next(iter(rows))[0])


def _version(row: Any) -> Version:
    version_id, room_id, created_at, kind, name, created_by, authors, size = row
    return Version(
        id=str(version_id),
        room_id=str(room_id),
        created_at=str(created_at),
        kind=str(kind),
        name=name,
        created_by=created_by,
        authors=tuple(orjson.loads(authors)),
        size=int(size),
    )
