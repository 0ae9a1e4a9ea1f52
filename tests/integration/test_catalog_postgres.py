"""The catalog on Postgres, beyond the contract suite: instances sharing one database index,
create and purge the same notes at once; listings read their order from an index; search
splits words as the other backends do, whatever the database's locale."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import asyncpg
import pycrdt
import pytest

from collab.store import PostgresStore, postgres_catalog
from collab.store.catalog import (
    CatalogQuery,
    Indexed,
    NoteFields,
    NoteStatus,
    Priority,
    SortKey,
    Visibility,
)
from tests.support.postgres_fixtures import gate_held, sessions_waiting
from tests.support.postgres_server import PostgresServer, unique_database_name
from tests.support.waiting import eventually

WS = "w1"
HELD_NOTE = "held"
HELD_ROOM = f"{WS}/{HELD_NOTE}"
GATE_LOCK_KEY = 4344
# Holds, until the test releases the gate lock, every transaction that writes a catalog row
# titled "held" or the held room's log, snapshot or tombstone: after its write, uncommitted.
HOLD_WRITES = f"""
CREATE FUNCTION hold_writes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({GATE_LOCK_KEY});
    RETURN NULL;
END $$;
CREATE TRIGGER hold_notes AFTER INSERT OR UPDATE ON notes FOR EACH ROW
    WHEN (NEW.title = 'held') EXECUTE FUNCTION hold_writes();
CREATE TRIGGER hold_updates AFTER INSERT ON document_updates FOR EACH ROW
    WHEN (NEW.room_id = '{HELD_ROOM}') EXECUTE FUNCTION hold_writes();
CREATE TRIGGER hold_snapshots AFTER INSERT OR UPDATE ON document_snapshots FOR EACH ROW
    WHEN (NEW.room_id = '{HELD_ROOM}') EXECUTE FUNCTION hold_writes();
CREATE TRIGGER hold_tombstones AFTER INSERT ON note_tombstones FOR EACH ROW
    WHEN (NEW.room_id = '{HELD_ROOM}') EXECUTE FUNCTION hold_writes();
CREATE TRIGGER hold_shares AFTER INSERT ON note_shares FOR EACH ROW
    WHEN (NEW.note_id = '{HELD_NOTE}') EXECUTE FUNCTION hold_writes();
"""


def at(second: int) -> str:
    """A timestamp `second` seconds into a fixed day, as the store formats them."""
    return f"2026-12-06T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}.000000+00:00"


def an_update(text: str = "x") -> bytes:
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    doc["t"] = pycrdt.Text(text)
    return doc.get_update()


@pytest.fixture
async def gate(postgres_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection holding the lock that holds the writes of `HOLD_WRITES`."""
    async with gate_held(postgres_dsn, HOLD_WRITES, GATE_LOCK_KEY) as conn:
        yield conn


@pytest.fixture
async def stores(postgres_dsn: str) -> AsyncIterator[list[PostgresStore]]:
    """Two open instances (two pools) on one database."""
    opened = [PostgresStore(postgres_dsn) for _ in range(2)]
    for store in opened:
        await store.open()
    yield opened
    for store in opened:
        await store.close()


async def release(gate: asyncpg.Connection) -> None:
    await gate.execute("SELECT pg_advisory_unlock($1)", GATE_LOCK_KEY)


# --- instances writing the same note --------------------------------------------------------


@pytest.mark.parametrize("existing", [False, True], ids=["new-row", "existing-row"])
@pytest.mark.parametrize(
    ("held_clock", "other_clock"), [(5, 7), (7, 5)], ids=["later-waits", "earlier-waits"]
)
async def test_indexing_one_note_from_two_instances_keeps_the_later_state(
    gate: asyncpg.Connection,
    stores: list[PostgresStore],
    existing: bool,
    held_clock: int,
    other_clock: int,
) -> None:
    """While one instance's index of a note is uncommitted, another instance's index of it
    waits, then compares clocks with what the first wrote: no unique violation, and the state
    with the larger clock stays, whichever committed first."""
    first, second = stores
    if existing:
        await first.index_note(WS, "n1", NoteFields(title="before"), clock=1, actor="u1", at=at(1))
    held = asyncio.create_task(
        first.index_note(WS, "n1", NoteFields(title="held"), clock=held_clock, actor="u1", at=at(2))
    )
    await eventually(lambda: sessions_waiting(gate, 1), what="first index held")
    other = asyncio.create_task(
        second.index_note(
            WS, "n1", NoteFields(title="other"), clock=other_clock, actor="u2", at=at(3)
        )
    )
    await eventually(lambda: sessions_waiting(gate, 2), what="second index waiting")
    await release(gate)
    held_indexed, other_indexed = await asyncio.gather(held, other)

    later_title = "held" if held_clock > other_clock else "other"
    entry = await second.get_note(WS, "n1")
    assert entry is not None
    assert entry.fields.title == later_title
    assert held_indexed.created is not existing
    assert not other_indexed.created
    assert (other_indexed.entry is None) is (held_clock > other_clock)


async def test_many_concurrent_indexings_end_with_each_notes_latest_state(
    stores: list[PostgresStore],
) -> None:
    """Two instances index every state of 30 notes at once, in shuffled order: no call fails,
    and each note ends with the fields of its largest clock."""
    rng = random.Random(7)
    calls = [(f"n{number}", clock) for number in range(30) for clock in range(1, 5)]
    rng.shuffle(calls)

    results = await asyncio.gather(
        *(
            stores[index % 2].index_note(
                WS, note_id, NoteFields(title=f"v{clock}"), clock=clock, actor="u1", at=at(clock)
            )
            for index, (note_id, clock) in enumerate(calls)
        )
    )

    assert sum(indexed.created for indexed in results) == 30
    for number in range(30):
        entry = await stores[0].get_note(WS, f"n{number}")
        assert entry is not None
        assert entry.fields.title == "v4"
        assert entry.updated_at == at(4)


async def test_one_of_two_instances_creating_one_note_wins(
    gate: asyncpg.Connection, stores: list[PostgresStore]
) -> None:
    """While one instance's creation of a note is uncommitted, another's creation of the same
    id waits for it and then gets None; the first one's row stays."""
    first, second = stores
    held = asyncio.create_task(
        first.create_note(WS, "n1", NoteFields(title="held"), actor="u1", at=at(1))
    )
    await eventually(lambda: sessions_waiting(gate, 1), what="first creation held")
    other = asyncio.create_task(
        second.create_note(WS, "n1", NoteFields(title="other"), actor="u2", at=at(2))
    )
    await eventually(lambda: sessions_waiting(gate, 2), what="second creation waiting")
    await release(gate)
    created, refused = await asyncio.gather(held, other)

    assert created is not None
    assert refused is None
    entry = await second.get_note(WS, "n1")
    assert entry is not None
    assert (entry.fields.title, entry.created_by) == ("held", "u1")


async def test_concurrent_creations_of_many_ids_have_one_winner_each(
    stores: list[PostgresStore],
) -> None:
    results = await asyncio.gather(
        *(
            store.create_note(WS, f"n{number}", NoteFields(), actor=f"u{index}", at=at(1))
            for number in range(20)
            for index, store in enumerate(stores)
        )
    )

    for number in range(20):
        pair = results[2 * number : 2 * number + 2]
        assert sum(entry is not None for entry in pair) == 1, number


# --- purges racing writes -----------------------------------------------------------------


async def write_held_room(store: PostgresStore, write: str) -> Any:
    """The write `write` of the held room (and the held note's row), as a client or the
    indexer would make it; what it returns."""
    match write:
        case "append":
            return await store.append_updates([(HELD_ROOM, an_update("late"), None)])
        case "compact":
            return await store.compact(HELD_ROOM, an_update("late"))
        case "index":
            return await store.index_note(
                WS, HELD_NOTE, NoteFields(title="held"), clock=9, actor="u1", at=at(5)
            )
        case "create":
            return await store.create_note(
                WS, HELD_NOTE, NoteFields(title="held"), actor="u1", at=at(5)
            )
        case "access":
            return await store.set_access(
                WS, HELD_NOTE, visibility=Visibility.PRIVATE, users={"u2": "viewer"}, at=at(5)
            )
    raise AssertionError(write)


async def assert_purged(store: PostgresStore, gate: asyncpg.Connection) -> None:
    assert (await store.load(HELD_ROOM)).is_empty
    assert await store.get_note(WS, HELD_NOTE) is None
    assert await store.get_access(WS, HELD_NOTE) is None
    assert await gate.fetchval("SELECT count(*) FROM note_shares") == 0
    assert await store.note_status(HELD_ROOM) is NoteStatus.PURGED
    assert await store.rooms_to_index(everything=True) == []


@pytest.mark.parametrize("write", ["append", "compact", "index", "create", "access"])
async def test_a_purge_waits_for_a_write_in_flight_then_deletes_what_it_wrote(
    gate: asyncpg.Connection, stores: list[PostgresStore], write: str
) -> None:
    """A purge that starts while a write of the note is uncommitted (on another instance)
    waits for it, then deletes what it wrote too: nothing of the note is left."""
    writer, purger = stores
    if write in ("compact", "access"):
        await writer.index_note(WS, HELD_NOTE, NoteFields(), clock=1, actor="u1", at=at(1))
    written = asyncio.create_task(write_held_room(writer, write))
    await eventually(lambda: sessions_waiting(gate, 1), what=f"{write} held")
    purge = asyncio.create_task(purger.purge_note(WS, HELD_NOTE, at=at(6)))
    await eventually(lambda: sessions_waiting(gate, 2), what="purge waiting")
    await release(gate)
    _, purged = await asyncio.gather(written, purge)

    assert purged
    await assert_purged(purger, gate)


@pytest.mark.parametrize("write", ["append", "compact", "index", "create", "access"])
async def test_a_write_waiting_for_a_purge_finds_its_tombstone(
    gate: asyncpg.Connection, stores: list[PostgresStore], write: str
) -> None:
    """A write of a note that starts while its purge is uncommitted (on another instance)
    waits for it, then writes nothing: the note stays purged."""
    writer, purger = stores
    await purger.index_note(WS, HELD_NOTE, NoteFields(), clock=1, actor="u1", at=at(1))
    purge = asyncio.create_task(purger.purge_note(WS, HELD_NOTE, at=at(2)))
    await eventually(lambda: sessions_waiting(gate, 1), what="purge held")
    written = asyncio.create_task(write_held_room(writer, write))
    await eventually(lambda: sessions_waiting(gate, 2), what=f"{write} waiting")
    await release(gate)
    purged, result = await asyncio.gather(purge, written)

    assert purged
    if write == "index":
        assert result == Indexed(None, NoteStatus.PURGED)
    if write in ("create", "access"):
        assert result is None
    await assert_purged(writer, gate)


async def test_writes_and_purges_from_two_instances_at_once_leave_purged_notes_empty(
    stores: list[PostgresStore],
) -> None:
    """Appends, compactions, indexings and purges of the same notes from two instances, all at
    once: nothing fails or deadlocks, and every note that ends purged has nothing left."""
    rng = random.Random(11)
    rooms = [f"{WS}/n{number}" for number in range(12)]

    async def churn(store: PostgresStore, room_id: str, other_room_id: str, step: int) -> None:
        note_id = room_id.partition("/")[2]
        match step % 4:
            case 0:
                batch = [
                    (room_id, an_update(str(step)), None),
                    (other_room_id, an_update(str(step)), None),
                ]
                await store.append_updates(batch)
            case 1:
                await store.compact(room_id, an_update(str(step)))
            case 2:
                fields = NoteFields(title=str(step))
                await store.index_note(WS, note_id, fields, clock=step, actor=None, at=at(step))
            case _:
                await store.purge_note(WS, note_id, at=at(step))

    steps = [(rng.choice(stores), *rng.sample(rooms, 2), step) for step in range(200)]
    await asyncio.gather(*(churn(*step) for step in steps))

    for room_id in rooms:
        if await stores[0].note_status(room_id) is NoteStatus.PURGED:
            assert (await stores[1].load(room_id)).is_empty, room_id
            assert await stores[1].get_note(*room_id.split("/")) is None, room_id


# --- plans --------------------------------------------------------------------------------

NOTES = 3000
# Listings for no one in particular, for the creator of every note, and for another user
# (who may not read the private ones).
READERS = pytest.mark.parametrize("reader", [None, "u1", "u2"], ids=["everyone", "u1", "u2"])
_SORT_INDEXES = [
    (SortKey.DEFAULT, True, "notes_default"),
    (SortKey.UPDATED, True, "notes_updated"),
    (SortKey.UPDATED, False, "notes_updated"),
    (SortKey.CREATED, True, "notes_created"),
    (SortKey.CREATED, False, "notes_created"),
    (SortKey.PRIORITY, True, "notes_priority"),
    (SortKey.PRIORITY, False, "notes_priority"),
    (SortKey.TITLE, True, "notes_title"),
    (SortKey.TITLE, False, "notes_title"),
    (SortKey.DUE, True, "notes_due_descending"),
    (SortKey.DUE, False, "notes_due_ascending"),
]


@pytest.fixture(scope="module")
def filled_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """A database of `NOTES` notes in two workspaces, vacuumed and analyzed (so the planner
    knows the table and the full-text index holds every note), shared by the plan tests."""
    name = unique_database_name()
    dsn = postgres_server.create_database_blocking(name)
    asyncio.run(_fill(dsn))
    yield dsn
    postgres_server.drop_database_blocking(name)


async def _fill(dsn: str) -> None:
    store = PostgresStore(dsn)
    await store.open()
    try:
        for start in range(0, NOTES, 500):
            await asyncio.gather(
                *(_index_one(store, number) for number in range(start, start + 500))
            )
    finally:
        await store.close()
    conn = await asyncpg.connect(dsn)
    try:
        # One note in ten private (to its creator, u1), half of them shared with u3.
        await conn.execute("UPDATE notes SET private = true WHERE note_id LIKE '%0'")
        await conn.execute(
            "INSERT INTO note_shares (workspace_id, note_id, user_id, role) "
            "SELECT workspace_id, note_id, 'u3', 'viewer' FROM notes "
            "WHERE private AND note_id LIKE '%00'"
        )
        await conn.execute("VACUUM ANALYZE notes")
        await conn.execute("VACUUM ANALYZE note_shares")
    finally:
        await conn.close()


async def _index_one(store: PostgresStore, number: int) -> None:
    rare = number % 1000 == 7  # three notes in all
    fields = NoteFields(
        title=f"Note {number}",
        tags=("common", "rare") if rare else ("common",),
        pinned=number % 9 == 0,
        priority=Priority(number % 5),
        due_at=f"2026-12-{1 + number % 28:02d}T00:00:00.000000+00:00" if number % 3 else None,
        assignees=("someone-rare",) if rare else (f"u{number % 10}",),
        text="body words" + (" zebra" if rare else ""),
    )
    workspace_id = WS if number % 4 else "w2"
    await store.index_note(
        workspace_id, f"n{number:05d}", fields, clock=1, actor="u1", at=at(number)
    )


async def plan(dsn: str, query: CatalogQuery) -> str:
    """The plans of the statements listing `query` in workspace WS (one per rank for
    relevance), sequential scans off (so the table's size does not decide), with the
    parameters bound as the store binds them."""
    statements = postgres_catalog.list_statements(WS, query)
    assert statements
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET enable_seqscan = off")
        rows = [
            row
            for statement in statements
            for row in await conn.fetch("EXPLAIN " + statement.sql, *statement.params)
        ]
    finally:
        await conn.close()
    return "\n".join(str(row[0]) for row in rows)


def _reads_shares_by_index(found: str, reader: str | None) -> bool:
    """Whether a reader's share list, if any, is read along an index of `note_shares`."""
    if reader is None:
        return "note_shares" not in found
    return "Seq Scan on note_shares" not in found and (
        "using note_shares_user " in found or "using note_shares_pkey " in found
    )


@READERS
@pytest.mark.parametrize(("sort", "descending", "index"), _SORT_INDEXES)
async def test_each_listing_reads_its_order_from_its_index(
    filled_dsn: str, sort: SortKey, descending: bool, index: str, reader: str | None
) -> None:
    """The first page and a page after a cursor are a range of the sort's index, read in its
    order: no sort of the workspace's notes, however many there are."""
    store = PostgresStore(filled_dsn)
    await store.open()
    try:
        first = await store.list_notes(
            WS, CatalogQuery(sort=sort, descending=descending, reader=reader)
        )
    finally:
        await store.close()
    assert first.next_key is not None

    for query in (
        CatalogQuery(sort=sort, descending=descending, reader=reader),
        CatalogQuery(sort=sort, descending=descending, after=first.next_key, reader=reader),
    ):
        found = await plan(filled_dsn, query)
        assert f"Index Scan using {index} " in found or f"Backward using {index} " in found, found
        assert "Sort" not in found, found
        assert _reads_shares_by_index(found, reader), found


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (CatalogQuery(tags=("rare",)), "notes_tags"),
        (CatalogQuery(tags=("common", "rare")), "notes_tags"),
        (CatalogQuery(assignee="someone-rare"), "notes_assignees"),
        (CatalogQuery(text="zebr"), "notes_search"),
        (CatalogQuery(text="zebra body", sort=SortKey.RELEVANCE), "notes_search"),
    ],
    ids=["tag", "tags", "assignee", "text", "relevance"],
)
@READERS
async def test_a_selective_filter_finds_its_notes_by_its_index(
    filled_dsn: str, query: CatalogQuery, index: str, reader: str | None
) -> None:
    found = await plan(filled_dsn, replace(query, reader=reader))

    assert f"Bitmap Index Scan on {index}" in found, found
    assert _reads_shares_by_index(found, reader), found


@READERS
async def test_a_word_in_every_note_reads_its_rank_in_index_order(
    filled_dsn: str, reader: str | None
) -> None:
    """ "body" is in every note's body and no title or tags: the page is the newest notes
    along `notes_ranked`, not a sort of every match."""
    found = await plan(filled_dsn, CatalogQuery(text="body", sort=SortKey.RELEVANCE, reader=reader))

    assert "Backward using notes_ranked " in found, found
    assert "Sort" not in found.split("Backward using notes_ranked ")[-1], found
    assert _reads_shares_by_index(found, reader), found


# --- words ----------------------------------------------------------------------------------


async def test_search_splits_words_as_every_backend_whatever_the_locale(
    postgres_server: PostgresServer,
) -> None:
    """In a database whose locale is not C, Postgres' text search parser would read "x²" as
    the word x and drop "½"; long words (a run of CJK text is one) it would drop. The catalog
    finds them as the memory and SQLite backends do."""
    name = unique_database_name()
    admin = await asyncpg.connect(postgres_server.dsn)
    try:
        await admin.execute(
            f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8'"
        )
    except asyncpg.PostgresError as exc:
        pytest.skip(f"no C.UTF-8 locale for a database here: {exc}")
    finally:
        await admin.close()
    store = PostgresStore(postgres_server.dsn_for(name))
    try:
        await store.open()
        await store.index_note(
            WS, "n1", NoteFields(title="Scale x² by ½"), clock=1, actor="u1", at=at(1)
        )
        await store.index_note(
            WS, "n2", NoteFields(title="Essay", text="長" * 1000), clock=1, actor="u1", at=at(2)
        )

        async def found(text: str) -> list[str]:
            page = await store.list_notes(WS, CatalogQuery(text=text, sort=SortKey.RELEVANCE))
            return [entry.note_id for entry in page.entries]

        assert await found("x²") == ["n1"]
        assert await found("½") == ["n1"]
        assert await found("x") == ["n1"]
        assert await found("長長長") == ["n2"]
        assert await found("長" * 64) == ["n2"]
    finally:
        await store.close()
        await postgres_server.drop_database(name)
