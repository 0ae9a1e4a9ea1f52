"""The catalog of `PostgresStore`, as statements over an asyncpg connection.

Each write runs inside one transaction the store opened (`PostgresStore`'s CatalogStore
section) and begins with `lock_out_purges` (a purge: `lock_out_writes`); each read is one
statement. Search is a GIN index over the notes' words (`search_words`, so every backend
splits words alike) and relevance is `memory_catalog.relevance`, computed in SQL; every
filter and sort has an index (migration 0004).

Several instances share the database, so each write here is safe against the same write
from another instance: rows are locked before they are compared (`index_note`), inserted
with ON CONFLICT (`create_note`), and a purge excludes every other write of notes and
documents while it deletes (`lock_out_writes`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from collab.store.catalog import (
    MAX_CATALOG_PAGE,
    CatalogEntry,
    CatalogPage,
    CatalogQuery,
    Indexed,
    NoteFields,
    NoteStatus,
    Priority,
    SortKey,
    content_digest,
    room_parts,
    search_terms,
    search_words,
)
from collab.store.memory_catalog import TAG_WEIGHT, TITLE_WEIGHT
from collab.store.rows import format_timestamp

# Writes of a note's content or row (append, compact, index, create) hold this lock shared
# for their transaction; a purge holds it exclusively. Under READ COMMITTED a write whose
# statement began before a purge committed would not see the tombstone, and the purge would
# not see the write's uncommitted rows: the note would come back. With the lock, the purge
# waits for writes in flight (then deletes what they wrote), and a write waiting for the
# purge sees its tombstone in its next statement. One key for every room, not one per room:
# a group commit may name hundreds of rooms, and each advisory lock takes a slot of the
# server's shared lock table. Purges are rare and short; writes never wait for each other.
PURGE_LOCK_NAMESPACE = int.from_bytes(b"clpu", "big")
_PURGE_LOCK_KEY = 0

_ENTRY_COLUMNS = (
    "n.workspace_id, n.note_id, n.title, n.tags, n.pinned, n.priority, n.due, n.due_at, "
    "n.assignees, n.excerpt, n.created_at, n.created_by, n.updated_at, n.updated_by, "
    "n.trashed_at"
)
# The columns `index_note` and `create_note` write from `NoteFields` (`_field_values`), with
# the type each parameter is cast to.
_FIELDS = (
    ("title", "text"),
    ("title_key", "text"),
    ("tags", "text[]"),
    ("pinned", "boolean"),
    ("priority", "smallint"),
    ("due", "text"),
    ("due_at", "text"),
    ("assignees", "text[]"),
    ("excerpt", "text"),
    ("search_title", "text"),
    ("search_tags", "text"),
    ("search_body", "text"),
    ("content_hash", "text"),
)
_FIELD_COLUMNS = ", ".join(column for column, _ in _FIELDS)
_FIELD_TYPES = tuple(sql_type for _, sql_type in _FIELDS)
# What each sort orders by, after the workspace and trash flag its index leads with, and the
# type of each part (the cursor's values are cast to it). The expressions are those of the
# indexes (migration 0004), character for character, so the planner matches them.
_SORT_KEYS: dict[SortKey, tuple[tuple[str, str], ...]] = {
    SortKey.DEFAULT: (("(n.pinned)::int", "int"), ("n.updated_at", "text"), ("n.note_id", "text")),
    SortKey.UPDATED: (("n.updated_at", "text"), ("n.note_id", "text")),
    SortKey.CREATED: (("n.created_at", "text"), ("n.note_id", "text")),
    SortKey.PRIORITY: (("n.priority", "smallint"), ("n.note_id", "text")),
    SortKey.TITLE: (("n.title_key", "text"), ("n.note_id", "text")),
}


async def lock_out_purges(conn: Any) -> None:
    """Hold the purge lock shared until the transaction ends (see `PURGE_LOCK_NAMESPACE`).
    First in every write's transaction: a write never waits for it holding another lock."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock_shared($1, $2)", PURGE_LOCK_NAMESPACE, _PURGE_LOCK_KEY
    )


async def lock_out_writes(conn: Any) -> None:
    """Hold the purge lock exclusively until the transaction ends: writes in flight commit
    first, later ones wait for this transaction."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, $2)", PURGE_LOCK_NAMESPACE, _PURGE_LOCK_KEY
    )


async def index_note(
    conn: Any,
    workspace_id: str,
    note_id: str,
    fields: NoteFields,
    *,
    clock: int,
    actor: str | None,
    at: str,
) -> Indexed:
    await lock_out_purges(conn)
    row = await _lock_row(conn, workspace_id, note_id)
    if row is None:
        inserted = await _insert(
            conn, workspace_id, note_id, fields, clock=clock, actor=actor, at=at, fresh=False
        )
        if inserted:
            entry = CatalogEntry(workspace_id, note_id, fields, at, actor, at, actor)
            return Indexed(entry, NoteStatus.ACTIVE, created=True, changed=True)
        # Not inserted: another instance inserted the row first (the insert waited for its
        # commit), or the note is purged. No purge can have deleted that row since: the lock.
        row = await _lock_row(conn, workspace_id, note_id)
        if row is None:
            return Indexed(None, NoteStatus.PURGED)
    # The row is locked: an instance indexing this note concurrently compares its clock with
    # the one this transaction writes, once it commits.
    stored = _entry(row)
    if clock < int(row["clock"]):
        return Indexed(None, stored.status)
    entry = stored.reindexed(fields, actor=actor, at=at)
    await conn.execute(
        f"UPDATE notes SET ({_FIELD_COLUMNS}, clock, updated_at, updated_by) = "
        f"({_placeholders(3, (*_FIELD_TYPES, 'bigint', 'text', 'text'))}) "
        "WHERE workspace_id = $1 AND note_id = $2",
        workspace_id,
        note_id,
        *_field_values(fields),
        clock,
        entry.updated_at,
        entry.updated_by,
    )
    return Indexed.rewritten(stored, entry)


async def index_unchanged(
    conn: Any,
    workspace_id: str,
    note_id: str,
    fields: NoteFields,
    *,
    clock: int,
    actor: str | None,
    at: str,
) -> Indexed | None:
    """`index_note` of a note whose row already holds `fields`, in one statement of its own
    (no transaction, no purge lock: a purge deletes the row, so this finds nothing; one that
    commits while this waits for the row makes it match nothing). None when the row is
    missing, differs or is later: then `index_note` does the rest."""
    row = await conn.fetchrow(
        "UPDATE notes n SET clock = $3, updated_at = greatest(n.updated_at, $4::text), "
        "updated_by = coalesce($5, n.updated_by) "
        "WHERE n.workspace_id = $1 AND n.note_id = $2 AND n.content_hash = $6 "
        f"AND n.clock <= $3 RETURNING {_ENTRY_COLUMNS}",
        workspace_id,
        note_id,
        clock,
        at,
        actor,
        content_digest(fields),
    )
    if row is None:
        return None
    entry = replace(_entry(row), fields=fields)
    return Indexed(entry, entry.status)


async def create_note(
    conn: Any,
    workspace_id: str,
    note_id: str,
    fields: NoteFields,
    *,
    actor: str,
    at: str,
) -> CatalogEntry | None:
    await lock_out_purges(conn)
    if not await _insert(
        conn, workspace_id, note_id, fields, clock=0, actor=actor, at=at, fresh=True
    ):
        return None
    return CatalogEntry(workspace_id, note_id, fields, at, actor, at, actor)


async def get_note(conn: Any, workspace_id: str, note_id: str) -> CatalogEntry | None:
    row = await conn.fetchrow(
        f"SELECT {_ENTRY_COLUMNS} FROM notes n WHERE n.workspace_id = $1 AND n.note_id = $2",
        workspace_id,
        note_id,
    )
    return None if row is None else _entry(row)


async def note_status(conn: Any, room_id: str) -> NoteStatus:
    workspace_id, note_id = room_parts(room_id)
    row = await conn.fetchrow(
        "SELECT EXISTS (SELECT 1 FROM note_tombstones WHERE room_id = $1) AS purged, "
        "(SELECT trashed FROM notes WHERE workspace_id = $2 AND note_id = $3) AS trashed, "
        "EXISTS (SELECT 1 FROM document_snapshots WHERE room_id = $1) "
        "OR EXISTS (SELECT 1 FROM document_updates WHERE room_id = $1) AS stored",
        room_id,
        workspace_id,
        note_id,
    )
    if row["purged"]:
        return NoteStatus.PURGED
    if row["trashed"] is not None:
        return NoteStatus.TRASHED if row["trashed"] else NoteStatus.ACTIVE
    return NoteStatus.ACTIVE if row["stored"] else NoteStatus.ABSENT


async def list_notes(conn: Any, workspace_id: str, query: CatalogQuery) -> CatalogPage:
    statement = list_statement(workspace_id, query)
    if statement is None:
        return CatalogPage()
    rows = await conn.fetch(statement.sql, *statement.params)
    more = len(rows) > statement.limit
    rows = rows[: statement.limit]
    next_key = None
    if more:
        next_key = tuple(rows[-1][f"key{i}"] for i in range(statement.key_length))
    return CatalogPage([_entry(row) for row in rows], next_key)


@dataclass(frozen=True, slots=True)
class ListStatement:
    sql: str
    params: list[Any]
    limit: int
    """Rows of the page: the statement reads one more, if there is, to tell whether more
    follow."""
    key_length: int
    """Each row ends with the parts of its sort key, `key0` to `key{key_length - 1}`."""


def list_statement(workspace_id: str, query: CatalogQuery) -> ListStatement | None:
    """The statement reading the page `query` asks for; None when no note can match (a text
    without terms, a cursor of another sort)."""
    params: list[Any] = [workspace_id, query.trashed]
    where = ["n.workspace_id = $1", "n.trashed = $2"]

    def param(value: Any, sql_type: str) -> str:
        params.append(value)
        return f"${len(params)}::{sql_type}"

    if query.tags:
        where.append(f"n.tags @> {param(list(query.tags), 'text[]')}")
    if query.assignee is not None:
        where.append(f"n.assignees @> ARRAY[{param(query.assignee, 'text')}]")
    if query.pinned is not None:
        where.append(f"n.pinned = {param(query.pinned, 'boolean')}")
    if query.priority is not None:
        where.append(f"n.priority = {param(int(query.priority), 'smallint')}")
    if query.due_before is not None:
        where.append(f"n.due_at < {param(query.due_before, 'text')}")
    if query.due_after is not None:
        where.append(f"n.due_at >= {param(query.due_after, 'text')}")
    terms: list[str] = []
    if query.text is not None:
        terms = search_terms(query.text)
        if not terms:
            return None
        # Terms are letters and digits only: quoted, each is one lexeme, taken as it is (no
        # parser, as the words stored in `search`); ":*" makes it a prefix.
        tsquery = " & ".join(f"'{term}':*" for term in terms)
        where.append(f"n.search @@ {param(tsquery, 'tsquery')}")
    key = _key_expressions(query, terms, param)
    descending = query.descending or query.sort in (SortKey.DEFAULT, SortKey.RELEVANCE)
    if query.after is not None:
        if len(query.after) != len(key):
            return None
        bounds = [
            param(value, sql_type) for value, (_, sql_type) in zip(query.after, key, strict=True)
        ]
        expressions = ", ".join(expression for expression, _ in key)
        where.append(f"({expressions}) {'<' if descending else '>'} ({', '.join(bounds)})")
    direction = " DESC" if descending else ""
    limit = max(1, min(query.limit, MAX_CATALOG_PAGE))
    sql = (
        f"SELECT {_ENTRY_COLUMNS}, "
        + ", ".join(f"{expression} AS key{i}" for i, (expression, _) in enumerate(key))
        + f" FROM notes n WHERE {' AND '.join(where)} ORDER BY "
        + ", ".join(expression + direction for expression, _ in key)
        + f" LIMIT {param(limit + 1, 'int')}"
    )
    return ListStatement(sql, params, limit, len(key))


async def trash_note(conn: Any, workspace_id: str, note_id: str, *, at: str) -> CatalogEntry | None:
    row = await conn.fetchrow(
        "UPDATE notes n SET trashed_at = coalesce(n.trashed_at, $3) "
        f"WHERE n.workspace_id = $1 AND n.note_id = $2 RETURNING {_ENTRY_COLUMNS}",
        workspace_id,
        note_id,
        at,
    )
    return None if row is None else _entry(row)


async def restore_note(conn: Any, workspace_id: str, note_id: str) -> CatalogEntry | None:
    row = await conn.fetchrow(
        "UPDATE notes n SET trashed_at = NULL "
        f"WHERE n.workspace_id = $1 AND n.note_id = $2 RETURNING {_ENTRY_COLUMNS}",
        workspace_id,
        note_id,
    )
    return None if row is None else _entry(row)


async def purge_note(conn: Any, workspace_id: str, note_id: str, *, at: str) -> bool:
    await lock_out_writes(conn)
    # One statement: the row, the snapshot and the log go, and the tombstone is left if any
    # of them was there (a note purged before has none of them: nothing to report).
    purged = await conn.fetchval(
        "WITH gone_row AS (DELETE FROM notes WHERE workspace_id = $1 AND note_id = $2 "
        "RETURNING 1), "
        "gone_snapshot AS (DELETE FROM document_snapshots WHERE room_id = $3 RETURNING 1), "
        "gone_log AS (DELETE FROM document_updates WHERE room_id = $3 RETURNING 1) "
        "INSERT INTO note_tombstones (room_id, purged_at) SELECT $3, $4 "
        "WHERE EXISTS (SELECT 1 FROM gone_row) OR EXISTS (SELECT 1 FROM gone_snapshot) "
        "OR EXISTS (SELECT 1 FROM gone_log) "
        "ON CONFLICT (room_id) DO NOTHING RETURNING true",
        workspace_id,
        note_id,
        f"{workspace_id}/{note_id}",
        at,
    )
    return purged is not None


async def trashed_before(conn: Any, cutoff: str, *, limit: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT workspace_id || '/' || note_id AS room_id FROM notes "
        "WHERE trashed_at IS NOT NULL AND trashed_at < $1 "
        "ORDER BY trashed_at, workspace_id || '/' || note_id LIMIT $2",
        cutoff,
        limit,
    )
    return [str(row["room_id"]) for row in rows]


async def rooms_to_index(
    conn: Any,
    *,
    workspace_id: str | None,
    everything: bool,
    limit: int,
    after: str,
) -> list[str]:
    # Room ids compare in code point order (COLLATE "C"), as the other backends' do, whatever
    # the database's locale: `after` is a room id of an earlier page.
    where = [
        'r.room_id COLLATE "C" > $1',
        "NOT EXISTS (SELECT 1 FROM note_tombstones t WHERE t.room_id = r.room_id)",
    ]
    params: list[Any] = [after, limit]
    if workspace_id is not None:
        params.append(workspace_id)
        where.append(f"split_part(r.room_id, '/', 1) = ${len(params)}")
    if not everything:
        # The parts of the room id as `catalog.room_parts` reads them: the primary key finds
        # the row.
        where.append(
            "NOT EXISTS (SELECT 1 FROM notes n "
            "WHERE n.workspace_id = split_part(r.room_id, '/', 1) "
            "AND n.note_id = substr(r.room_id, length(split_part(r.room_id, '/', 1)) + 2))"
        )
    rows = await conn.fetch(
        "SELECT r.room_id FROM (SELECT room_id FROM document_snapshots "
        "UNION SELECT room_id FROM document_updates) AS r "
        f'WHERE {" AND ".join(where)} ORDER BY r.room_id COLLATE "C" LIMIT $2',
        *params,
    )
    return [str(row["room_id"]) for row in rows]


async def first_stored_at(conn: Any, room_id: str) -> str | None:
    found = await conn.fetchval(
        "SELECT least((SELECT updated_at FROM document_snapshots WHERE room_id = $1), "
        "(SELECT min(created_at) FROM document_updates WHERE room_id = $1))",
        room_id,
    )
    return None if found is None else format_timestamp(found)


async def is_purged(conn: Any, room_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM note_tombstones WHERE room_id = $1)", room_id
        )
    )


def _key_expressions(
    query: CatalogQuery, terms: list[str], param: Callable[[Any, str], str]
) -> tuple[tuple[str, str], ...]:
    if query.sort is SortKey.RELEVANCE:
        return ((_relevance(terms, param), "float8"), ("n.note_id", "text"))
    if query.sort is SortKey.DUE:
        # As the indexes have it (migration 0004): '' and '~' are `due_sort_key`'s.
        missing = "''" if query.descending else "'~'"
        return ((f"coalesce(n.due_at, {missing})", "text"), ("n.note_id", "text"))
    return _SORT_KEYS[query.sort]


def _relevance(terms: list[str], param: Callable[[Any, str], str]) -> str:
    """The score of a note for `terms`, as `memory_catalog.relevance` computes it: for each
    term, the weight of the title and of the tags if it begins a word there (the body, the
    long column, is not read for it). Not ts_rank: a note's score
    must depend on the note alone and compare exactly, since page cursors hold it. Without
    terms (no text query), 0 for every note, as in memory."""
    if not terms:
        return "0::float8"
    parts = []
    for term in terms:
        # A word begins with the term: the term follows a space, or starts the column.
        pattern = param(f"% {term}%", "text")
        for column, weight in (("search_title", TITLE_WEIGHT), ("search_tags", TAG_WEIGHT)):
            parts.append(f"{weight}::float8 * ((' ' || n.{column}) LIKE {pattern})::int")
    return "(" + " + ".join(parts) + ")"


def _field_values(fields: NoteFields) -> tuple[Any, ...]:
    return (
        fields.title,
        fields.title.casefold(),
        list(fields.tags),
        fields.pinned,
        int(fields.priority),
        fields.due,
        fields.due_at,
        list(fields.assignees),
        fields.excerpt,
        search_words(fields.title),
        search_words(" ".join(fields.tags)),
        search_words(fields.text),
        content_digest(fields),
    )


def _placeholders(first: int, types: tuple[str, ...]) -> str:
    """`$first::type, ...`: the placeholders of consecutive parameters, cast to `types`."""
    return ", ".join(f"${first + i}::{sql_type}" for i, sql_type in enumerate(types))


async def _lock_row(conn: Any, workspace_id: str, note_id: str) -> Any:
    return await conn.fetchrow(
        f"SELECT n.clock, {_ENTRY_COLUMNS} FROM notes n "
        "WHERE n.workspace_id = $1 AND n.note_id = $2 FOR UPDATE",
        workspace_id,
        note_id,
    )


async def _insert(
    conn: Any,
    workspace_id: str,
    note_id: str,
    fields: NoteFields,
    *,
    clock: int,
    actor: str | None,
    at: str,
    fresh: bool,
) -> bool:
    """Insert the row of a note unless it has one (an insert of it in flight is waited for)
    or is purged; if `fresh` (a note being created), also unless it has stored content.
    Returns whether the row was inserted."""
    unused = "NOT EXISTS (SELECT 1 FROM note_tombstones WHERE room_id = $1)"
    if fresh:
        unused += (
            " AND NOT EXISTS (SELECT 1 FROM document_snapshots WHERE room_id = $1)"
            " AND NOT EXISTS (SELECT 1 FROM document_updates WHERE room_id = $1)"
        )
    types = ("text", "text", *_FIELD_TYPES, "bigint", "text", "text", "text", "text")
    inserted = await conn.fetchval(
        f"INSERT INTO notes (workspace_id, note_id, {_FIELD_COLUMNS}, clock, created_at, "
        "created_by, updated_at, updated_by) "
        f"SELECT {_placeholders(2, types)} WHERE {unused} "
        "ON CONFLICT (workspace_id, note_id) DO NOTHING RETURNING true",
        f"{workspace_id}/{note_id}",
        workspace_id,
        note_id,
        *_field_values(fields),
        clock,
        at,
        actor,
        at,
        actor,
    )
    return inserted is not None


def _entry(row: Any) -> CatalogEntry:
    fields = NoteFields(
        title=str(row["title"]),
        tags=tuple(row["tags"]),
        pinned=bool(row["pinned"]),
        priority=Priority(int(row["priority"])),
        due=row["due"],
        due_at=row["due_at"],
        assignees=tuple(row["assignees"]),
        excerpt=str(row["excerpt"]),
    )
    return CatalogEntry(
        str(row["workspace_id"]),
        str(row["note_id"]),
        fields,
        str(row["created_at"]),
        row["created_by"],
        str(row["updated_at"]),
        row["updated_by"],
        row["trashed_at"],
    )
