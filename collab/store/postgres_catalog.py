"""The catalog of `PostgresStore`, as statements over an asyncpg connection.

Each write runs inside one transaction the store opened (`PostgresStore`'s CatalogStore
section) and begins with `lock_out_purges` (a purge: `lock_out_writes`); each read is one
statement. Search is a GIN index over the notes' words (`search_words`, so every backend
splits words alike); relevance is `SearchRank`, one condition on the words of the title and
of the title and tags per rank (GIN-indexed too), each rank read in `seq` order (migration
0005). Every filter and sort has an index (migrations 0004, 0005). A listing for a reader
tests each row it reads: a workspace note passes at once, a private one by its creator or
its share list (migration 0007, `postgres_note_access`).

Several instances share the database, so each write here is safe against the same write
from another instance: rows are locked before they are compared (`index_note`), inserted
with ON CONFLICT (`create_note`), and a purge excludes every other write of notes and
documents while it deletes (`lock_out_writes`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

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
    "n.trashed_at, n.private"
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
    # Without a text query every note ranks `SearchRank.BODY` (cast: a bare 0 in ORDER BY
    # would name the first column).
    SortKey.RELEVANCE: (("0::int", "int"), ("n.seq", "bigint")),
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


async def index_note(conn: Any, reading: NoteReading) -> Indexed:
    workspace_id, note_id, fields = reading.workspace_id, reading.note_id, reading.fields
    clock, actor, at = reading.clock, reading.actor, reading.at
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
    conn: Any, readings: Sequence[NoteReading]
) -> dict[tuple[str, str], Indexed]:
    """`index_note` of the readings whose row already holds their fields, in one statement
    of its own (no transaction, no purge lock: a purge deletes the row, so this finds
    nothing; one that commits while this waits for a row makes it match nothing), by
    (workspace id, note id). Those left out (no row, other fields, or a later row) need
    `index_note`."""
    rows = await conn.fetch(
        "UPDATE notes n SET clock = v.clock, updated_at = greatest(n.updated_at, v.at), "
        "updated_by = coalesce(v.actor, n.updated_by) "
        "FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[]) "
        "AS v(workspace_id, note_id, content_hash, clock, at, actor) "
        "WHERE n.workspace_id = v.workspace_id AND n.note_id = v.note_id "
        "AND n.content_hash = v.content_hash AND n.clock <= v.clock "
        f"RETURNING {_ENTRY_COLUMNS}",
        [r.workspace_id for r in readings],
        [r.note_id for r in readings],
        [r.fields.content_digest for r in readings],
        [r.clock for r in readings],
        [r.at for r in readings],
        [r.actor for r in readings],
    )
    fields_of = {r.note_key: r.fields for r in readings}
    found: dict[tuple[str, str], Indexed] = {}
    for row in rows:
        entry = _entry(row)
        entry = replace(entry, fields=fields_of[(entry.workspace_id, entry.note_id)])
        found[(entry.workspace_id, entry.note_id)] = Indexed(entry, entry.status)
    return found


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
    statements = list_statements(workspace_id, query)
    if not statements:
        return CatalogPage()
    page = statements[0]
    rows: list[Any] = []
    for statement in statements:
        rows += await conn.fetch(statement.sql, *statement.params)
        if len(rows) > page.limit:
            break  # the ranks below are not read
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    next_key = None
    if more:
        next_key = tuple(rows[-1][f"key{i}"] for i in range(page.key_length))
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


def list_statements(workspace_id: str, query: CatalogQuery) -> list[ListStatement]:
    """The statements reading the page `query` asks for, to run in order until the page is
    full: one, or one per `SearchRank` for relevance; none when no note can match (a text
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
    if query.reader is not None:
        # Most notes are workspace notes: the first test passes them without a lookup. The
        # planner turns the EXISTS into a hash of the reader's shares in the workspace, read
        # once along `note_shares_user` (hence `$1`, not `n.workspace_id`), or a primary key
        # lookup per private note.
        reader = param(query.reader, "text")
        where.append(
            f"(NOT n.private OR n.created_by = {reader} OR EXISTS (SELECT 1 FROM note_shares s "
            f"WHERE s.workspace_id = $1 AND s.user_id = {reader} AND s.note_id = n.note_id))"
        )
    if query.pinned is not None:
        where.append(f"n.pinned = {param(query.pinned, 'boolean')}")
    if query.priority is not None:
        where.append(f"n.priority = {param(int(query.priority), 'smallint')}")
    if query.due_before is not None:
        where.append(f"n.due_at < {param(query.due_before, 'text')}")
    if query.due_after is not None:
        where.append(f"n.due_at >= {param(query.due_after, 'text')}")
    if query.text is not None:
        terms = search_terms(query.text)
        if not terms:
            return []
        every = param(_tsquery(terms, " & "), "tsquery")
        if query.sort is SortKey.RELEVANCE:
            return _ranked_statements(where, params, every, _tsquery(terms, " | "), query)
        where.append(f"n.search @@ {every}")
    key = _key_expressions(query)
    descending = query.descending or query.sort in (SortKey.DEFAULT, SortKey.RELEVANCE)
    if query.after is not None:
        if len(query.after) != len(key):
            return []
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
    return [ListStatement(sql, params, limit, len(key))]


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
    # One statement: the row, its share list, the snapshot, the log, the history (no
    # version of a purged note can be read or restored) and the reminders go, and the
    # tombstone is left if the row, the snapshot or the log was there (a note purged before
    # has none of them: nothing to report).
    purged = await conn.fetchval(
        "WITH gone_row AS (DELETE FROM notes WHERE workspace_id = $1 AND note_id = $2 "
        "RETURNING 1), "
        "gone_shares AS (DELETE FROM note_shares WHERE workspace_id = $1 AND note_id = $2), "
        "gone_snapshot AS (DELETE FROM document_snapshots WHERE room_id = $3 RETURNING 1), "
        "gone_log AS (DELETE FROM document_updates WHERE room_id = $3 RETURNING 1), "
        "gone_versions AS (DELETE FROM versions WHERE room_id = $3), "
        "gone_states AS (DELETE FROM version_states WHERE room_id = $3), "
        "gone_authors AS (DELETE FROM version_authors WHERE room_id = $3), "
        "gone_reminders AS (DELETE FROM reminders WHERE room_id = $3), "
        "gone_dues AS (DELETE FROM reminder_dues WHERE room_id = $3) "
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


async def purged_rooms(conn: Any, room_ids: Collection[str]) -> set[str]:
    """Those of `room_ids` whose note was purged (a tombstone), in one query."""
    rows = await conn.fetch(
        "SELECT room_id FROM note_tombstones WHERE room_id = ANY($1::text[])", list(room_ids)
    )
    return {row[0] for row in rows}


async def is_purged(conn: Any, room_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM note_tombstones WHERE room_id = $1)", room_id
        )
    )


def _tsquery(terms: list[str], operator: str) -> str:
    # Terms are letters and digits only: quoted, each is one lexeme, taken as it is (no
    # parser, as the words stored are); ":*" makes it a prefix.
    return operator.join(f"'{term}':*" for term in terms)


def _ranked_statements(
    where: list[str], params: list[Any], every: str, any_term: str, query: CatalogQuery
) -> list[ListStatement]:
    """A statement per `SearchRank` from the cursor's rank down, each reading the notes of
    its rank holding every term (`every`, a parameter already) newest first (along
    `notes_ranked`, or through the word indexes and a sort when few match)."""
    after = query.after
    if after is not None and len(after) != 2:
        return []
    limit = max(1, min(query.limit, MAX_CATALOG_PAGE))
    in_title = f"n.title_words @@ {every}"
    in_heading = f"n.heading_words @@ {every}"
    # {some}: the tsquery of any term, a parameter of each statement.
    conditions = {
        SearchRank.TITLE: in_title,
        SearchRank.TITLE_OR_TAGS: f"{in_heading} AND NOT {in_title}",
        SearchRank.PARTLY: f"n.search @@ {every} AND n.heading_words @@ {{some}} "
        f"AND NOT {in_heading}",
        SearchRank.BODY: f"n.search @@ {every} AND NOT n.heading_words @@ {{some}}",
    }
    if "|" not in any_term:  # one term is in the title or tags, or it is not
        del conditions[SearchRank.PARTLY]
    statements = []
    for rank, condition in conditions.items():
        if after is not None and rank > after[0]:
            continue
        values = list(params)

        def param(value: Any, sql_type: str, values: list[Any] = values) -> str:
            values.append(value)
            return f"${len(values)}::{sql_type}"

        bound = ""
        if after is not None and rank == after[0]:
            bound = f" AND n.seq < {param(after[1], 'bigint')}"
        if "{some}" in condition:
            condition = condition.format(some=param(any_term, "tsquery"))
        sql = (
            f"SELECT {_ENTRY_COLUMNS}, {int(rank)} AS key0, n.seq AS key1 FROM notes n "
            f"WHERE {' AND '.join(where)} AND {condition}{bound} "
            f"ORDER BY n.seq DESC LIMIT {param(limit + 1, 'int')}"
        )
        statements.append(ListStatement(sql, values, limit, 2))
    return statements


def _key_expressions(query: CatalogQuery) -> tuple[tuple[str, str], ...]:
    if query.sort is SortKey.DUE:
        # As the indexes have it (migration 0004): '' and '~' are `due_sort_key`'s.
        missing = "''" if query.descending else "'~'"
        return ((f"coalesce(n.due_at, {missing})", "text"), ("n.note_id", "text"))
    return _SORT_KEYS[query.sort]


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
        fields.content_digest,
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
        Visibility.PRIVATE if row["private"] else Visibility.WORKSPACE,
    )
