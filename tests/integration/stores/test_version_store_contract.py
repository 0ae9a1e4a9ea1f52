"""One contract suite for every `VersionStore` backend (memory, SQLite, Postgres), with the
attribution `append_updates` records for it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
import pytest
from pycrdt import Doc, Text

from collab.errors import StoreError
from collab.store import Database, MemoryStore, SqliteStore, sqlite_versions
from collab.store.versions import MAX_VERSION_PAGE, Version
from tests.support.store_backends import Backend

WS = "w1"
ROOM = f"{WS}/n1"
OTHER_ROOM = f"{WS}/n2"
MALFORMED_IDS = [
    "0",
    "-1",
    "+1",
    "01",
    "1.0",
    " 1",
    "1 ",
    "abc",
    "",
    "\u0661",
    str(2**63),
    "9" * 30,
]


def at(second: int) -> str:
    """A timestamp `second` seconds into a fixed day, as `format_timestamp` writes them."""
    return f"2026-12-06T10:{second // 60:02d}:{second % 60:02d}.000000+00:00"


def a_state(text: str) -> bytes:
    """The whole state of a new document holding `text` (its own bytes at each call)."""
    doc: Doc[Text] = Doc()
    doc.get("text", type=Text).insert(0, text)
    return doc.get_update()


async def add(
    store: Database,
    state: bytes,
    kind: str = "auto",
    *,
    room_id: str = ROOM,
    second: int = 0,
    name: str | None = None,
    created_by: str | None = None,
    min_gap_s: float | None = None,
) -> Version | None:
    return await store.add_version(
        room_id,
        state,
        kind=kind,
        name=name,
        created_by=created_by,
        at=at(second),
        min_gap_s=min_gap_s,
    )


async def added(store: Database, state: bytes, kind: str = "auto", **fields: Any) -> Version:
    """`add`, which must store the version."""
    version = await add(store, state, kind, **fields)
    assert version is not None
    return version


async def listed(store: Database, room_id: str = ROOM) -> list[str]:
    """The ids of the room's versions, newest first."""
    return [v.id for v in await store.list_versions(room_id, limit=MAX_VERSION_PAGE)]


async def column(backend: Backend, store: Database, sql: str) -> list[Any]:
    """The first column of what `sql` (no parameters) returns, run past the store on its
    database and committed."""
    location = backend.locations[id(store)]
    if isinstance(store, SqliteStore):
        async with aiosqlite.connect(location) as conn:
            rows = await conn.execute_fetchall(sql)
            await conn.commit()
        return [row[0] for row in rows]
    conn = await asyncpg.connect(location)
    try:
        return [row[0] for row in await conn.fetch(sql)]
    finally:
        await conn.close()


# --- storing and reading ------------------------------------------------------------------


async def test_a_version_is_stored_and_read_back(store: Database) -> None:
    """A version stored is returned with every field, read back alike by id and in the
    listing, and its state reads back byte for byte."""
    state = a_state("hello")

    version = await added(store, state, "named", second=1, name="Draft", created_by="u1")

    assert version == Version(
        id=version.id,
        room_id=ROOM,
        created_at=at(1),
        kind="named",
        name="Draft",
        created_by="u1",
        authors=(),
        size=len(state),
    )
    assert int(version.id) > 0
    assert str(int(version.id)) == version.id
    assert await store.get_version(ROOM, version.id) == version
    assert await store.list_versions(ROOM, limit=10) == [version]
    assert await store.version_state(ROOM, version.id) == state


async def test_versions_belong_to_their_room(store: Database) -> None:
    """A version is read, listed and deleted only through its own room."""
    version = await added(store, a_state("mine"))

    assert await store.get_version(OTHER_ROOM, version.id) is None
    assert await store.version_state(OTHER_ROOM, version.id) is None
    assert await store.list_versions(OTHER_ROOM, limit=10) == []
    assert await store.delete_versions(OTHER_ROOM, [version.id]) == 0
    assert await store.get_version(ROOM, version.id) == version


async def test_a_large_state_is_stored_compressed_and_reads_back_whole(store: Database) -> None:
    """A state of a megabyte of text takes a fraction of it stored, and reads back whole."""
    state = a_state("a paragraph of text, written again and again. " * 25_000)

    version = await added(store, state)

    assert version.size == len(state) > 1_000_000
    assert 0 < await store.version_bytes() < len(state) // 10
    assert await store.version_state(ROOM, version.id) == state


async def test_an_unknown_kind_is_refused(store: Database) -> None:
    """A kind other than auto, named and restore raises `ValueError`, storing nothing."""
    with pytest.raises(ValueError, match="kind"):
        await add(store, a_state("x"), "manual")

    assert await listed(store) == []


# --- listing ------------------------------------------------------------------------------


async def test_versions_are_listed_newest_first_in_pages_before_an_id(store: Database) -> None:
    """Ids grow with each version; pages come newest first, at most `limit`, each holding
    the versions whose ids are below `before`."""
    versions = [await added(store, a_state(f"v{n}"), second=n) for n in range(5)]
    ids = [v.id for v in versions]

    assert [int(i) for i in ids] == sorted({int(i) for i in ids})
    first = await store.list_versions(ROOM, limit=2)
    second = await store.list_versions(ROOM, limit=2, before=first[-1].id)
    third = await store.list_versions(ROOM, limit=2, before=second[-1].id)
    assert [v.id for v in first + second + third] == ids[::-1]
    assert first == [versions[4], versions[3]]
    assert await store.list_versions(ROOM, limit=2, before=ids[0]) == []
    assert await store.list_versions(ROOM, limit=10, before=str(2**63 - 1)) == versions[::-1]


async def test_a_page_holds_at_most_max_version_page_and_at_least_one(store: Database) -> None:
    """However large `limit` is, a page holds at most `MAX_VERSION_PAGE` versions; a limit
    below 1 reads one."""
    state = a_state("same")
    for second in range(MAX_VERSION_PAGE + 1):
        await added(store, state, "named", second=second)

    assert len(await store.list_versions(ROOM, limit=MAX_VERSION_PAGE + 50)) == MAX_VERSION_PAGE
    assert len(await store.list_versions(ROOM, limit=0)) == 1


@pytest.mark.parametrize("version_id", MALFORMED_IDS)
async def test_a_malformed_id_names_no_version(store: Database, version_id: str) -> None:
    """A string that is not the decimal form of a positive 64-bit integer names no version:
    None, nothing deleted, an empty page before it; never an exception."""
    version = await added(store, a_state("kept"))

    assert await store.get_version(ROOM, version_id) is None
    assert await store.version_state(ROOM, version_id) is None
    assert await store.delete_versions(ROOM, [version_id]) == 0
    assert await store.list_versions(ROOM, limit=10, before=version_id) == []
    assert await listed(store) == [version.id]


async def test_an_unknown_id_names_no_version(store: Database) -> None:
    """A well-formed id of no version reads as None and deletes nothing."""
    version = await added(store, a_state("kept"))
    unknown = str(int(version.id) + 1000)

    assert await store.get_version(ROOM, unknown) is None
    assert await store.version_state(ROOM, unknown) is None
    assert await store.delete_versions(ROOM, [unknown, str(2**63 - 1)]) == 0


# --- automatic versions -------------------------------------------------------------------


async def test_an_automatic_version_of_the_newest_state_is_not_stored(store: Database) -> None:
    """An automatic version whose state equals the newest version's stores nothing; the same
    state as an older version's is stored again (only the newest is compared), its stored
    bytes shared with that older one."""
    one, two = a_state("one"), a_state("two")
    first = await added(store, one, second=1)
    stored_bytes = await store.version_bytes()

    assert await add(store, one, second=2) is None
    second = await added(store, two, second=3)
    with_two = await store.version_bytes()
    third = await added(store, one, second=4)

    assert await listed(store) == [third.id, second.id, first.id]
    assert with_two > stored_bytes
    assert await store.version_bytes() == with_two
    assert await store.version_state(ROOM, third.id) == one


async def test_named_and_restore_versions_of_an_unchanged_state_share_its_bytes(
    store: Database,
) -> None:
    """A named or restore version of the newest state is stored as a version of its own,
    while its state is stored once: the versions' bytes do not grow."""
    state = a_state("unchanged")
    auto = await added(store, state, second=1)
    stored_bytes = await store.version_bytes()

    named = await added(store, state, "named", second=2, name="Final", created_by="u1")
    restore = await added(store, state, "restore", second=3, created_by="u2")

    assert await listed(store) == [restore.id, named.id, auto.id]
    assert await store.version_bytes() == stored_bytes
    for version in (auto, named, restore):
        assert await store.version_state(ROOM, version.id) == state
    assert (restore.kind, restore.name, restore.created_by) == ("restore", None, "u2")


async def test_an_automatic_version_waits_min_gap_after_the_newest_of_any_kind(
    store: Database,
) -> None:
    """With `min_gap_s`, an automatic version less than that after the room's newest version
    (of any kind, or one dated after it) is not stored; one at the gap is; named versions
    take no notice of it."""
    await added(store, a_state("a"), second=0)

    assert await add(store, a_state("b"), second=29, min_gap_s=30) is None
    assert await add(store, a_state("b"), second=30, min_gap_s=30) is not None
    assert await add(store, a_state("c"), "named", second=31, min_gap_s=30) is not None
    assert await add(store, a_state("d"), second=60, min_gap_s=30) is None
    assert await add(store, a_state("d"), second=61, min_gap_s=30) is not None
    assert await add(store, a_state("e"), second=50, min_gap_s=5) is None
    assert await add(store, a_state("e"), second=50) is not None
    assert len(await listed(store)) == 5


async def test_instances_racing_for_one_automatic_version_store_one(backend: Backend) -> None:
    """Many automatic versions of one room tried at once over two instances, within the gap
    of each other: exactly one is stored."""
    first = await backend.new_store()
    second = await backend.another_store(first)

    results = await asyncio.gather(
        *(
            add(instance, a_state(f"state {n}"), second=n % 3, min_gap_s=60)
            for n, instance in enumerate([first, second] * 6)
        )
    )

    stored = [version for version in results if version is not None]
    assert len(stored) == 1
    assert await second.list_versions(ROOM, limit=10) == stored


async def test_instances_racing_with_one_unchanged_state_store_it_once(backend: Backend) -> None:
    """The same state tried as an automatic version by two instances at once, with no gap:
    stored once."""
    first = await backend.new_store()
    second = await backend.another_store(first)
    state = a_state("everyone has this")

    results = await asyncio.gather(
        *(add(instance, state, second=n) for n, instance in enumerate([first, second] * 4))
    )

    assert sum(version is not None for version in results) == 1
    assert len(await listed(first)) == 1


# --- authors ------------------------------------------------------------------------------


async def test_a_version_takes_the_authors_recorded_since_the_last(store: Database) -> None:
    """A version names, sorted, the authors recorded for its room since the last version
    (recorded twice: once), and takes them: the next names only those recorded after."""
    await store.append_updates(
        [(ROOM, a_state("x"), "u2"), (OTHER_ROOM, a_state("y"), "u9")],
        [(ROOM, "u2"), (ROOM, "u1"), (OTHER_ROOM, "u9")],
    )
    await store.append_updates([(ROOM, a_state("z"), "u1")], [(ROOM, "u1")])

    first = await added(store, a_state("1"), second=1)
    second = await added(store, a_state("2"), "named", second=2, name="n")
    await store.append_updates([], [(ROOM, "u3")])
    third = await added(store, a_state("3"), second=3)

    assert first.authors == ("u1", "u2")
    assert second.authors == ()
    assert third.authors == ("u3",)
    assert [(await store.get_version(ROOM, v.id)) for v in (first, third)] == [first, third]
    other = await added(store, a_state("other"), room_id=OTHER_ROOM)
    assert other.authors == ("u9",)


async def test_an_automatic_version_not_stored_leaves_the_authors(store: Database) -> None:
    """Authors stay recorded when an automatic version is not stored: the next stored
    version takes them."""
    state = a_state("same")
    await added(store, state, second=1)
    await store.append_updates([], [(ROOM, "u1")])

    assert await add(store, state, second=100) is None
    assert await add(store, a_state("new"), second=101, min_gap_s=1000) is None
    named = await added(store, state, "named", second=102)

    assert named.authors == ("u1",)


async def test_authors_survive_compaction(store: Database) -> None:
    """Compaction folds the logged updates into the snapshot; the authors since the last
    version stay recorded."""
    update = a_state("edit")
    await store.append_updates([(ROOM, update, "u1")], [(ROOM, "u1")])

    await store.compact(ROOM, update)

    assert (await store.load(ROOM)).updates == []
    assert (await added(store, a_state("after"))).authors == ("u1",)


async def test_the_author_of_each_logged_update_is_stored(durable_backend: Backend) -> None:
    """`append_updates` writes each update's author (None for the server's) with it; the
    updates load as before."""
    store = await durable_backend.new_store()
    updates = [a_state("a"), a_state("b"), a_state("c")]

    await store.append_updates(
        [(ROOM, updates[0], "u1"), (ROOM, updates[1], None), (OTHER_ROOM, updates[2], "u2")]
    )

    assert await column(
        durable_backend, store, "SELECT author FROM document_updates ORDER BY id"
    ) == ["u1", None, "u2"]
    assert (await store.load(ROOM)).updates == updates[:2]
    assert await column(durable_backend, store, "SELECT user_id FROM version_authors") == []


# --- deleting -----------------------------------------------------------------------------


async def test_deleting_versions_deletes_the_states_no_version_refers_to(store: Database) -> None:
    """Deleted versions are gone; a state another version still refers to stays, the others
    go with their last version; the count is of versions deleted, each once."""
    shared, alone = a_state("shared"), a_state("alone")
    auto = await added(store, shared, second=1)
    named = await added(store, shared, "named", second=2)
    single = await added(store, alone, second=3)
    with_both = await store.version_bytes()

    assert await store.delete_versions(ROOM, [auto.id, auto.id]) == 1
    assert await store.version_bytes() == with_both
    assert await store.version_state(ROOM, named.id) == shared
    assert await store.delete_versions(ROOM, [single.id]) == 1
    only_shared = await store.version_bytes()
    assert 0 < only_shared < with_both
    assert await store.delete_versions(ROOM, [named.id, auto.id, "bad", single.id]) == 1
    assert await store.version_bytes() == 0
    assert await listed(store) == []
    assert await store.delete_versions(ROOM, []) == 0


async def test_a_state_deleted_with_its_last_version_can_be_stored_again(store: Database) -> None:
    """Once its last version is deleted, the same state stored again reads back whole."""
    state = a_state("again")
    first = await added(store, state)
    await store.delete_versions(ROOM, [first.id])

    second = await added(store, state, second=1)

    assert int(second.id) > int(first.id)
    assert await store.version_state(ROOM, second.id) == state


# --- the retention sweep ------------------------------------------------------------------


async def test_rooms_with_old_automatic_versions_are_listed_by_room_id_in_pages(
    store: Database,
) -> None:
    """The rooms with an automatic version created before the cutoff, in code point order,
    paged by `after`; rooms with only newer or only named versions are not listed."""
    for room_id, kind, second in [
        ("w1/a", "auto", 10),
        ("w1/a", "auto", 40),
        ("w1/Z", "auto", 1),
        ("w1/é", "auto", 5),
        ("w2/a", "auto", 19),
        ("w1/named", "named", 1),
        ("w1/new", "auto", 20),
    ]:
        await added(store, a_state(room_id), kind, room_id=room_id, second=second)

    def rooms(after: str | None = None, limit: int = 10) -> Any:
        return store.rooms_with_versions(created_before=at(20), after=after, limit=limit)

    assert await rooms() == ["w1/Z", "w1/a", "w1/é", "w2/a"]
    assert await rooms(limit=2) == ["w1/Z", "w1/a"]
    assert await rooms(after="w1/a", limit=2) == ["w1/é", "w2/a"]
    assert await rooms(after="w2/a") == []
    assert await rooms(limit=0) == ["w1/Z"]
    assert await store.rooms_with_versions(created_before=at(10), after=None, limit=10) == [
        "w1/Z",
        "w1/é",
    ]


# --- purge --------------------------------------------------------------------------------


async def test_a_purge_deletes_the_history_and_no_version_is_added_after(
    store: Database,
) -> None:
    """Purging a note deletes its versions, their states and its authors; no version of it
    is stored after, nor any author recorded; other notes keep theirs."""
    state = a_state("secret")
    await store.append_updates([(ROOM, state, "u1")], [(ROOM, "u1")])
    version = await added(store, state, second=1)
    await store.append_updates([], [(ROOM, "u2")])
    kept = await added(store, a_state("other"), room_id=OTHER_ROOM)
    before_purge = await store.version_bytes()

    assert await store.purge_note(WS, "n1", at=at(2))

    assert await store.get_version(ROOM, version.id) is None
    assert await store.version_state(ROOM, version.id) is None
    assert await store.list_versions(ROOM, limit=10) == []
    assert 0 < await store.version_bytes() < before_purge
    assert await store.rooms_with_versions(created_before=at(60), after=None, limit=10) == [
        OTHER_ROOM
    ]
    await store.append_updates([(ROOM, a_state("offline"), "u3")], [(ROOM, "u3")])
    assert await add(store, state, "named", second=3) is None
    assert await add(store, a_state("late"), second=4) is None
    assert await listed(store) == []
    assert await listed(store, OTHER_ROOM) == [kept.id]


async def test_a_purge_leaves_no_history_row_behind(durable_backend: Backend) -> None:
    """After a purge no row of the note's history is left in any table, and an author sent
    for it afterwards is dropped."""
    store = await durable_backend.new_store()
    await store.append_updates([(ROOM, a_state("x"), "u1")], [(ROOM, "u1")])
    await added(store, a_state("y"))
    await store.append_updates([], [(ROOM, "u2")])

    await store.purge_note(WS, "n1", at=at(1))
    await store.append_updates([], [(ROOM, "u3")])

    for table in ("versions", "version_states", "version_authors"):
        assert await column(durable_backend, store, f"SELECT room_id FROM {table}") == []


# --- durability and failure ---------------------------------------------------------------


async def test_a_new_instance_on_the_same_database_sees_every_version(
    durable_backend: Backend,
) -> None:
    """Versions, their states and the authors recorded read back alike from a new store on
    the database."""
    first = await durable_backend.new_store()
    state = a_state("durable")
    version = await added(first, state, "named", name="Kept", created_by="u1")
    await first.append_updates([], [(ROOM, "u2")])
    await first.close()

    second = await durable_backend.another_store(first)

    assert await second.list_versions(ROOM, limit=10) == [version]
    assert await second.version_state(ROOM, version.id) == state
    assert (await added(second, a_state("next"), second=1)).authors == ("u2",)


async def test_a_corrupt_stored_state_raises_store_error(durable_backend: Backend) -> None:
    """A stored state that no longer decompresses fails `version_state` with `StoreError`;
    the version's other fields still read."""
    store = await durable_backend.new_store()
    version = await added(store, a_state("to be damaged"))
    await column(
        durable_backend,
        store,
        "UPDATE version_states SET data = substr(data, 1, 3) RETURNING size",
    )

    with pytest.raises(StoreError, match="decompress"):
        await store.version_state(ROOM, version.id)
    assert await store.get_version(ROOM, version.id) == version


async def test_closed_store_raises_store_error_for_every_version_call(store: Database) -> None:
    """Every `VersionStore` call on a closed store raises `StoreError`."""
    version = await added(store, a_state("x"))
    await store.close()

    calls = [
        add(store, a_state("y"), "named"),
        store.list_versions(ROOM, limit=10),
        store.get_version(ROOM, version.id),
        store.version_state(ROOM, version.id),
        store.delete_versions(ROOM, [version.id]),
        store.rooms_with_versions(created_before=at(1), after=None, limit=10),
        store.version_bytes(),
        store.append_updates([], [(ROOM, "u1")]),
    ]
    for call in calls:
        with pytest.raises(StoreError):
            await call


async def test_memory_store_fault_injection_covers_version_calls() -> None:
    """`fail_next` fails the next version call, storing nothing."""
    store = MemoryStore()
    await store.open()
    store.fail_next = StoreError("injected")

    with pytest.raises(StoreError, match="injected"):
        await add(store, a_state("x"), "named")

    assert await store.list_versions(ROOM, limit=10) == []
    assert await store.version_bytes() == 0


# --- SQLite only: how the history is read -------------------------------------------------


class _Recording:
    """An aiosqlite connection that keeps the statements run through it."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.statements.append((sql, tuple(params)))
        return await self.conn.execute_fetchall(sql, params)


async def _plan(path: Path, read: Callable[[Any], Awaitable[object]]) -> list[str]:
    """The query plan of the one statement `read` runs, one line per step."""
    async with aiosqlite.connect(path) as conn:
        recording = _Recording(conn)
        await read(recording)
        [(sql, params)] = recording.statements
        rows = await conn.execute_fetchall("EXPLAIN QUERY PLAN " + sql, params)
    return [str(row[3]) for row in rows]


async def test_sqlite_reads_pages_of_history_along_an_index_without_sorting(
    tmp_path: Path,
) -> None:
    """A page of a room's versions and a page of the retention sweep are ranges of an index,
    read in order: no sort of every match."""
    path = tmp_path / "versions.db"
    store = SqliteStore(str(path))
    await store.open()
    try:
        for number in range(40):
            room_id = f"{WS}/r{number:02d}"
            for second in range(3):
                await added(store, a_state(f"{number} {second}"), room_id=room_id, second=second)
            await added(store, a_state("named"), "named", room_id=room_id, second=9)
    finally:
        await store.close()
    async with aiosqlite.connect(path) as conn:
        await conn.execute("ANALYZE")
        await conn.commit()

    listing = await _plan(
        path, lambda conn: sqlite_versions.list_versions(conn, ROOM, limit=20, before="50")
    )
    sweep = await _plan(
        path,
        lambda conn: sqlite_versions.rooms_with_versions(
            conn, created_before=at(1), after=f"{WS}/r10", limit=10
        ),
    )

    assert any("versions_room_id_id" in step for step in listing), listing
    assert any("COVERING INDEX versions_auto" in step for step in sweep), sweep
    assert not [step for step in listing + sweep if "TEMP B-TREE" in step]
