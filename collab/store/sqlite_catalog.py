"""The catalog of `SqliteStore`, as statements over a connection inside its transaction.

Each function runs inside one transaction the store opened (`SqliteStore._transaction`).
Search is FTS5 over `search_words` (so every backend splits words alike), its title, tags and
body columns, with no folding of its own (migration 0005): a term matches there exactly when
it begins a word, as in `memory_catalog`. Relevance is `SearchRank`: one column-filtered
match expression per rank, each read in rowid order. Every filter and sort has an index
(migrations 0004, 0005), whose expressions the statements here repeat exactly (the due
sort's `coalesce`). A listing for a reader tests each row it reads: a workspace note passes
at once, a private one by its creator or a lookup of its share list (migration 0007,
`sqlite_note_access`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Any

import aiosqlite
import orjson

from collab.store.catalog import (
    MAX_CATALOG_PAGE,
    CatalogEntry,
    CatalogPage,
    CatalogQuery,
    Indexed,
    NoteFields,
    NoteReading,
    NoteStatus,
    Priority,
    SearchRank,
    SortKey,
    Visibility,
    room_parts,
    search_terms,
    search_words,
)

# Room ids per statement of `purged_rooms`: under SQLite's parameter cap.
PURGED_CHECK_BATCH = 500
# Readings per statement of `index_unchanged`: 6 parameters each, under SQLite's 32,766.
UNCHANGED_BATCH = 500
_ENTRY_COLUMNS = (
    "n.workspace_id, n.note_id, n.title, n.tags, n.pinned, n.priority, n.due, n.due_at, "
    "n.assignees, n.excerpt, n.created_at, n.created_by, n.updated_at, n.updated_by, "
    "n.trashed_at, n.private"
)
# What each sort orders by, after the trash flag the indexes lead with. {desc} is the order.
_SORT_COLUMNS: dict[SortKey, tuple[str, ...]] = {
    SortKey.DEFAULT: ("n.pinned", "n.updated_at", "n.note_id"),
    SortKey.UPDATED: ("n.updated_at", "n.note_id"),
    SortKey.CREATED: ("n.created_at", "n.note_id"),
    SortKey.PRIORITY: ("n.priority", "n.note_id"),
    SortKey.TITLE: ("n.title_key", "n.note_id"),
    # Without a text query every note ranks `SearchRank.BODY` (a CAST: a bare 0 in ORDER BY
    # would name the first column).
    SortKey.RELEVANCE: ("CAST(0 AS INTEGER)", "n.seq"),
}


async def index_note(conn: aiosqlite.Connection, reading: NoteReading) -> Indexed:
    workspace_id, note_id, fields = reading.workspace_id, reading.note_id, reading.fields
    clock, actor, at = reading.clock, reading.actor, reading.at
    room_id = f"{workspace_id}/{note_id}"
    if await _is_purged(conn, room_id):
        return Indexed(None, NoteStatus.PURGED)
    rows = await conn.execute_fetchall(
        f"SELECT n.seq, n.clock, {_ENTRY_COLUMNS} FROM notes n "
        "WHERE n.workspace_id = ? AND n.note_id = ?",
        (workspace_id, note_id),
    )
    if not rows:
        seq = await _insert(conn, workspace_id, note_id, fields, clock=clock, actor=actor, at=at)
        await _write_search(conn, seq, fields, replace=False)
        await _write_sets(conn, workspace_id, note_id, fields, replace=False)
        entry = CatalogEntry(workspace_id, note_id, fields, at, actor, at, actor)
        return Indexed(entry, NoteStatus.ACTIVE, created=True, changed=True)
    row = next(iter(rows))
    seq, stored = int(row[0]), _entry(row[2:])
    if clock < int(row[1]):
        return Indexed(None, stored.status)
    entry = stored.reindexed(fields, actor=actor, at=at)
    await conn.execute(
        "UPDATE notes SET title = ?, title_key = ?, tags = ?, pinned = ?, priority = ?, "
        "due = ?, due_at = ?, assignees = ?, excerpt = ?, content_hash = ?, search_title = ?, "
        "search_tags = ?, clock = ?, updated_at = ?, updated_by = ? WHERE seq = ?",
        (*_field_values(fields), clock, entry.updated_at, entry.updated_by, seq),
    )
    await _write_search(conn, seq, fields, replace=True)
    await _write_sets(conn, workspace_id, note_id, fields, replace=True)
    return Indexed.rewritten(stored, entry)


async def index_unchanged(
    conn: aiosqlite.Connection, readings: Sequence[NoteReading]
) -> dict[tuple[str, str], Indexed]:
    """`index_note` of the readings whose row already holds their fields, in one statement
    per `UNCHANGED_BATCH` (outside a transaction: one round trip to the database thread,
    where a full write takes a dozen), by (workspace id, note id). Those left out (no row,
    other fields, or a later row) need `index_note`. A purged note has no row, so its
    tombstone needs no check here."""
    found: dict[tuple[str, str], Indexed] = {}
    fields_of = {r.note_key: r.fields for r in readings}
    for start in range(0, len(readings), UNCHANGED_BATCH):
        batch = readings[start : start + UNCHANGED_BATCH]
        values = [
            (r.workspace_id, r.note_id, r.fields.content_digest, r.clock, r.at, r.actor)
            for r in batch
        ]
        rows = await conn.execute_fetchall(
            "UPDATE notes SET clock = v.column4, updated_at = max(updated_at, v.column5), "
            "updated_by = coalesce(v.column6, updated_by) "
            f"FROM (VALUES {', '.join(['(?, ?, ?, ?, ?, ?)'] * len(batch))}) AS v "
            "WHERE notes.workspace_id = v.column1 AND notes.note_id = v.column2 "
            "AND notes.content_hash = v.column3 AND notes.clock <= v.column4 "
            f"RETURNING {_ENTRY_COLUMNS.replace('n.', 'notes.')}",
            [value for row in values for value in row],
        )
        for row in rows:
            entry = _entry(row)
            entry = replace(entry, fields=fields_of[(entry.workspace_id, entry.note_id)])
            found[(entry.workspace_id, entry.note_id)] = Indexed(entry, entry.status)
    return found


async def create_note(
    conn: aiosqlite.Connection,
    workspace_id: str,
    note_id: str,
    fields: NoteFields,
    *,
    actor: str,
    at: str,
) -> CatalogEntry | None:
    room_id = f"{workspace_id}/{note_id}"
    taken = await conn.execute_fetchall(
        "SELECT 1 FROM notes WHERE workspace_id = ? AND note_id = ? "
        "UNION ALL SELECT 1 FROM note_tombstones WHERE room_id = ? "
        "UNION ALL SELECT 1 FROM document_snapshots WHERE room_id = ? "
        "UNION ALL SELECT 1 FROM (SELECT 1 FROM room_updates WHERE room_id = ? LIMIT 1)",
        (workspace_id, note_id, room_id, room_id, room_id),
    )
    if taken:
        return None
    seq = await _insert(conn, workspace_id, note_id, fields, clock=0, actor=actor, at=at)
    await _write_search(conn, seq, fields, replace=False)
    await _write_sets(conn, workspace_id, note_id, fields, replace=False)
    return CatalogEntry(workspace_id, note_id, fields, at, actor, at, actor)


async def get_note(
    conn: aiosqlite.Connection, workspace_id: str, note_id: str
) -> CatalogEntry | None:
    rows = await conn.execute_fetchall(
        f"SELECT {_ENTRY_COLUMNS} FROM notes n WHERE n.workspace_id = ? AND n.note_id = ?",
        (workspace_id, note_id),
    )
    return next((_entry(row) for row in rows), None)


async def note_status(conn: aiosqlite.Connection, room_id: str) -> NoteStatus:
    if await _is_purged(conn, room_id):
        return NoteStatus.PURGED
    workspace_id, note_id = room_parts(room_id)
    rows = await conn.execute_fetchall(
        "SELECT trashed_at FROM notes WHERE workspace_id = ? AND note_id = ?",
        (workspace_id, note_id),
    )
    for row in rows:
        return NoteStatus.TRASHED if row[0] is not None else NoteStatus.ACTIVE
    return NoteStatus.ACTIVE if await _has_content(conn, room_id) else NoteStatus.ABSENT


async def list_notes(
    conn: aiosqlite.Connection, workspace_id: str, query: CatalogQuery
) -> CatalogPage:
    where = ["n.workspace_id = ?", "(n.trashed_at IS NOT NULL) = ?"]
    params: list[Any] = [workspace_id, int(query.trashed)]
    for tag in query.tags:
        where.append(
            "EXISTS (SELECT 1 FROM note_tags t WHERE t.workspace_id = n.workspace_id "
            "AND t.tag = ? AND t.note_id = n.note_id)"
        )
        params.append(tag)
    if query.assignee is not None:
        where.append(
            "EXISTS (SELECT 1 FROM note_assignees a WHERE a.workspace_id = n.workspace_id "
            "AND a.user_id = ? AND a.note_id = n.note_id)"
        )
        params.append(query.assignee)
    if query.reader is not None:
        # Most notes are workspace notes: the first test passes them without a lookup; the
        # share list's primary key answers the rest.
        where.append(
            "(n.private = 0 OR n.created_by = ? OR EXISTS (SELECT 1 FROM note_shares s "
            "WHERE s.workspace_id = n.workspace_id AND s.note_id = n.note_id AND s.user_id = ?))"
        )
        params += [query.reader, query.reader]
    if query.pinned is not None:
        where.append("n.pinned = ?")
        params.append(int(query.pinned))
    if query.priority is not None:
        where.append("n.priority = ?")
        params.append(int(query.priority))
    # Written as the due sort's index expressions (migration 0004), which a note without a
    # due date never passes. In the default order the index of that order (which carries
    # due_at) is walked instead ("+": not the due index): a page then costs the rows read
    # until it is full, at worst one pass over that index, not a sort of every match.
    unary = "+" if query.sort is SortKey.DEFAULT else ""
    if query.due_before is not None:
        where.append(f"{unary}coalesce(n.due_at, '~') < ?")
        params.append(query.due_before)
    if query.due_after is not None:
        where.append(f"{unary}coalesce(n.due_at, '') >= ?")
        params.append(query.due_after)
    limit = max(1, min(query.limit, MAX_CATALOG_PAGE))
    if query.text is not None:
        terms = search_terms(query.text)
        if not terms:
            return CatalogPage()
        if query.sort is SortKey.RELEVANCE:
            return await _ranked_page(conn, terms, where, params, query.after, limit)
        # In another order, the sort's index is walked until the page is full, each row
        # tested against the matches, gathered once ("+": not a lookup of each match, which
        # would sort them all). Joined to the full-text table instead, SQLite tested the
        # match once per row of the index: 1.3 s for a rare word at 100,000 notes.
        where.append("+n.seq IN (SELECT rowid FROM notes_search WHERE notes_search MATCH ?)")
        params.append(_every_term(terms))
    key = _key_expressions(query)
    descending = query.descending or query.sort in (SortKey.DEFAULT, SortKey.RELEVANCE)
    if query.after is not None:
        if len(query.after) != len(key):
            return CatalogPage()
        where.append(f"({', '.join(key)}) {'<' if descending else '>'} ({_marks(key)})")
        params.extend(query.after)
    direction = " DESC" if descending else ""
    sql = (
        f"SELECT {_ENTRY_COLUMNS}, {', '.join(key)} FROM notes n WHERE {' AND '.join(where)} "
        f"ORDER BY {', '.join(expr + direction for expr in key)} LIMIT ?"
    )
    rows = list(await conn.execute_fetchall(sql, (*params, limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    entries = [_entry(row) for row in rows]
    next_key = tuple(rows[-1][-len(key) :]) if more else None
    return CatalogPage(entries, next_key)


async def trash_note(
    conn: aiosqlite.Connection, workspace_id: str, note_id: str, *, at: str
) -> CatalogEntry | None:
    await conn.execute(
        "UPDATE notes SET trashed_at = ? "
        "WHERE workspace_id = ? AND note_id = ? AND trashed_at IS NULL",
        (at, workspace_id, note_id),
    )
    return await get_note(conn, workspace_id, note_id)


async def restore_note(
    conn: aiosqlite.Connection, workspace_id: str, note_id: str
) -> CatalogEntry | None:
    await conn.execute(
        "UPDATE notes SET trashed_at = NULL WHERE workspace_id = ? AND note_id = ?",
        (workspace_id, note_id),
    )
    return await get_note(conn, workspace_id, note_id)


async def purge_note(
    conn: aiosqlite.Connection, workspace_id: str, note_id: str, *, at: str
) -> bool:
    room_id = f"{workspace_id}/{note_id}"
    if await _is_purged(conn, room_id):
        return False
    rows = await conn.execute_fetchall(
        "DELETE FROM notes WHERE workspace_id = ? AND note_id = ? RETURNING seq",
        (workspace_id, note_id),
    )
    existed = False
    for row in rows:
        existed = True
        await conn.execute("DELETE FROM notes_search WHERE rowid = ?", (int(row[0]),))
    await _delete_sets(conn, workspace_id, note_id)
    await conn.execute(
        "DELETE FROM note_shares WHERE workspace_id = ? AND note_id = ?", (workspace_id, note_id)
    )
    existed = await _has_content(conn, room_id) or existed
    await conn.execute("DELETE FROM document_snapshots WHERE room_id = ?", (room_id,))
    await conn.execute(
        "DELETE FROM document_updates WHERE id IN (SELECT id FROM room_updates WHERE room_id = ?)",
        (room_id,),
    )
    # Its history too (migration 0008): no version of a purged note can be read or restored;
    # and its reminders (0009).
    for table in (
        "versions",
        "version_states",
        "version_authors",
        "reminders",
        "reminder_dues",
    ):
        await conn.execute(f"DELETE FROM {table} WHERE room_id = ?", (room_id,))
    if existed:
        await conn.execute(
            "INSERT INTO note_tombstones (room_id, purged_at) VALUES (?, ?)", (room_id, at)
        )
    return existed


async def trashed_before(conn: aiosqlite.Connection, cutoff: str, *, limit: int) -> list[str]:
    rows = await conn.execute_fetchall(
        "SELECT workspace_id || '/' || note_id FROM notes "
        "WHERE trashed_at IS NOT NULL AND trashed_at < ? ORDER BY trashed_at LIMIT ?",
        (cutoff, limit),
    )
    return [str(row[0]) for row in rows]


async def rooms_to_index(
    conn: aiosqlite.Connection,
    *,
    workspace_id: str | None,
    everything: bool,
    limit: int,
    after: str,
) -> list[str]:
    where = [
        "r.room_id > ?",
        "NOT EXISTS (SELECT 1 FROM note_tombstones t WHERE t.room_id = r.room_id)",
    ]
    params: list[Any] = [after]
    if workspace_id is not None:
        # Room ids of a workspace are "{workspace_id}/…": a range of the text order.
        where.append("r.room_id > ? AND r.room_id < ?")
        params += [workspace_id + "/", workspace_id + "0"]
    if not everything:
        where.append(
            "NOT EXISTS (SELECT 1 FROM notes n "
            "WHERE n.workspace_id = substr(r.room_id, 1, instr(r.room_id, '/') - 1) "
            "AND n.note_id = substr(r.room_id, instr(r.room_id, '/') + 1))"
        )
    rows = await conn.execute_fetchall(
        "SELECT r.room_id FROM (SELECT room_id FROM document_snapshots "
        "UNION SELECT room_id FROM room_updates) r "
        f"WHERE {' AND '.join(where)} ORDER BY r.room_id LIMIT ?",
        (*params, limit),
    )
    return [str(row[0]) for row in rows]


async def first_stored_at(conn: aiosqlite.Connection, room_id: str) -> str | None:
    rows = await conn.execute_fetchall(
        "SELECT min(at) FROM (SELECT updated_at AS at FROM document_snapshots WHERE room_id = ? "
        "UNION ALL SELECT min(created_at) FROM room_updates WHERE room_id = ?)",
        (room_id, room_id),
    )
    found = next(iter(rows))[0]
    return None if found is None else str(found)


async def is_purged(conn: aiosqlite.Connection, room_id: str) -> bool:
    return await _is_purged(conn, room_id)


async def purged_rooms(conn: aiosqlite.Connection, room_ids: Collection[str]) -> set[str]:
    """Those of `room_ids` whose note was purged (a tombstone), one query per
    `PURGED_CHECK_BATCH` rooms."""
    ids = list(room_ids)
    purged: set[str] = set()
    for start in range(0, len(ids), PURGED_CHECK_BATCH):
        chunk = ids[start : start + PURGED_CHECK_BATCH]
        rows = await conn.execute_fetchall(
            f"SELECT room_id FROM note_tombstones WHERE room_id IN ({', '.join('?' * len(chunk))})",
            chunk,
        )
        purged.update(row[0] for row in rows)
    return purged


async def _ranked_page(
    conn: aiosqlite.Connection,
    terms: list[str],
    where: list[str],
    params: list[Any],
    after: tuple[Any, ...] | None,
    limit: int,
) -> CatalogPage:
    """A page of the notes holding every term, best `SearchRank` first, then the last
    indexed first: a statement per rank, from the cursor's rank down, each reading its
    rank's matches in rowid order, until `limit` + 1 are found (the ranks below are not
    read: a page of a word in every note is a page of its title matches)."""
    if after is not None and len(after) != 2:
        return CatalogPage()
    rows: list[Any] = []
    for rank, match in _rank_matches(terms):
        bound: list[Any] = []
        if after is not None:
            if rank > after[0]:
                continue
            if rank == after[0]:
                bound = [after[1]]
        found = await conn.execute_fetchall(
            f"SELECT {_ENTRY_COLUMNS}, s.rowid FROM notes_search s "
            f"JOIN notes n ON n.seq = s.rowid WHERE notes_search MATCH ? AND "
            f"{' AND '.join([*where, *(['s.rowid < ?'] if bound else [])])} "
            "ORDER BY s.rowid DESC LIMIT ?",
            (match, *params, *bound, limit + 1 - len(rows)),
        )
        rows += [(rank, row) for row in found]
        if len(rows) > limit:
            break
    more = len(rows) > limit
    rows = rows[:limit]
    next_key = (int(rows[-1][0]), int(rows[-1][1][-1])) if more else None
    return CatalogPage([_entry(row) for _, row in rows], next_key)


def _rank_matches(terms: list[str]) -> list[tuple[SearchRank, str]]:
    """The FTS5 match expression of each `SearchRank` for `terms`, best first. Terms are
    letters and digits only: safe inside the quotes; "*" makes each a prefix."""
    every = _every_term(terms)
    title = " AND ".join(f'{{title}} : "{term}"*' for term in terms)
    heading = " AND ".join(f'{{title tags}} : "{term}"*' for term in terms)
    some_heading = " OR ".join(f'{{title tags}} : "{term}"*' for term in terms)
    ranks = [
        (SearchRank.TITLE, title),
        (SearchRank.TITLE_OR_TAGS, f"({heading}) NOT ({title})"),
    ]
    if len(terms) > 1:  # one term is in the title or tags, or it is not
        ranks.append((SearchRank.PARTLY, f"(({every}) AND ({some_heading})) NOT ({heading})"))
    ranks.append((SearchRank.BODY, f"({every}) NOT ({some_heading})"))
    return ranks


def _every_term(terms: list[str]) -> str:
    return " AND ".join(f'"{term}"*' for term in terms)


def _key_expressions(query: CatalogQuery) -> tuple[str, ...]:
    if query.sort is SortKey.DUE:
        missing = "''" if query.descending else "'~'"
        return (f"coalesce(n.due_at, {missing})", "n.note_id")
    return _SORT_COLUMNS[query.sort]


def _marks(key: tuple[str, ...]) -> str:
    return ", ".join("?" * len(key))


def _field_values(fields: NoteFields) -> tuple[Any, ...]:
    return (
        fields.title,
        fields.title.casefold(),
        orjson.dumps(list(fields.tags)).decode(),
        int(fields.pinned),
        int(fields.priority),
        fields.due,
        fields.due_at,
        orjson.dumps(list(fields.assignees)).decode(),
        fields.excerpt,
        fields.content_digest,
        search_words(fields.title),
        search_words(" ".join(fields.tags)),
    )


async def _insert(
    conn: aiosqlite.Connection,
    workspace_id: str,
    note_id: str,
    fields: NoteFields,
    *,
    clock: int,
    actor: str | None,
    at: str,
) -> int:
    rows = await conn.execute_fetchall(
        "INSERT INTO notes (workspace_id, note_id, title, title_key, tags, pinned, priority, "
        "due, due_at, assignees, excerpt, content_hash, search_title, search_tags, clock, "
        "created_at, created_by, updated_at, updated_by) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
        (workspace_id, note_id, *_field_values(fields), clock, at, actor, at, actor),
    )
    return int(next(iter(rows))[0])


async def _write_search(
    conn: aiosqlite.Connection, seq: int, fields: NoteFields, *, replace: bool
) -> None:
    if replace:
        await conn.execute("DELETE FROM notes_search WHERE rowid = ?", (seq,))
    await conn.execute(
        "INSERT INTO notes_search (rowid, title, tags, body) VALUES (?, ?, ?, ?)",
        (
            seq,
            search_words(fields.title),
            search_words(" ".join(fields.tags)),
            search_words(fields.text),
        ),
    )


async def _write_sets(
    conn: aiosqlite.Connection,
    workspace_id: str,
    note_id: str,
    fields: NoteFields,
    *,
    replace: bool,
) -> None:
    if replace:
        await _delete_sets(conn, workspace_id, note_id)
    await conn.executemany(
        "INSERT INTO note_tags (workspace_id, tag, note_id) VALUES (?, ?, ?)",
        [(workspace_id, tag, note_id) for tag in fields.tags],
    )
    await conn.executemany(
        "INSERT INTO note_assignees (workspace_id, user_id, note_id) VALUES (?, ?, ?)",
        [(workspace_id, user_id, note_id) for user_id in fields.assignees],
    )


async def _delete_sets(conn: aiosqlite.Connection, workspace_id: str, note_id: str) -> None:
    for table in ("note_tags", "note_assignees"):
        await conn.execute(
            f"DELETE FROM {table} WHERE workspace_id = ? AND note_id = ?",
            (workspace_id, note_id),
        )


async def _is_purged(conn: aiosqlite.Connection, room_id: str) -> bool:
    rows = await conn.execute_fetchall(
        "SELECT 1 FROM note_tombstones WHERE room_id = ?", (room_id,)
    )
    return bool(rows)


async def _has_content(conn: aiosqlite.Connection, room_id: str) -> bool:
    rows = await conn.execute_fetchall(
        "SELECT 1 FROM document_snapshots WHERE room_id = ? "
        "UNION ALL SELECT 1 FROM (SELECT 1 FROM room_updates WHERE room_id = ? LIMIT 1)",
        (room_id, room_id),
    )
    return bool(rows)


def _entry(row: Any) -> CatalogEntry:
    (
        workspace_id,
        note_id,
        title,
        tags,
        pinned,
        priority,
        due,
        due_at,
        assignees,
        excerpt,
        created_at,
        created_by,
        updated_at,
        updated_by,
        trashed_at,
        private,
    ) = row[:16]
    fields = NoteFields(
        title=str(title),
        tags=tuple(orjson.loads(tags)),
        pinned=bool(pinned),
        priority=Priority(int(priority)),
        due=due,
        due_at=due_at,
        assignees=tuple(orjson.loads(assignees)),
        excerpt=str(excerpt),
    )
    return CatalogEntry(
        str(workspace_id),
        str(note_id),
        fields,
        str(created_at),
        created_by,
        str(updated_at),
        updated_by,
        trashed_at,
        Visibility.PRIVATE if private else Visibility.WORKSPACE,
    )
