"""One contract suite for every `Store` backend, plus what is specific to each backend."""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Text

from collab.errors import ConfigError, StoreError
from collab.store import (
    DEFAULT_POOL_SIZE,
    Database,
    MemoryStore,
    PostgresStore,
    SqliteStore,
    Store,
    StoredDocument,
    create_store,
)
from collab.store.base import DIGEST_IN_THREAD_BYTES, Held, stored_digest
from collab.store.migrations import Migration, apply_postgres_migrations, list_migrations
from collab.store.revocations import RevocationStore
from tests.support.postgres_fixtures import gate_held
from tests.support.postgres_server import PostgresServer, unique_database_name
from tests.support.servers import clean_environ
from tests.support.waiting import eventually, scaled

ROOM = "w1/n1"
OTHER_ROOM = "w1/n2"

StoreFactory = Callable[[], Awaitable[Database]]


class Editor:
    """A pycrdt document with one `Text`, recording the update of each edit."""

    def __init__(self) -> None:
        self.doc: Doc[Text] = Doc()
        self.text = self.doc.get("text", type=Text)
        self.outbox: list[bytes] = []
        self.doc.observe(lambda event: self.outbox.append(event.update))

    def insert(self, index: int, chunk: str) -> bytes:
        self.text.insert(min(index, len(self.text)), chunk)
        return self.outbox[-1]

    def take_outbox(self) -> list[bytes]:
        updates, self.outbox = self.outbox, []
        return updates

    def state(self) -> bytes:
        return self.doc.get_update()


def text_of(*updates: bytes) -> str:
    doc: Doc[Text] = Doc()
    text = doc.get("text", type=Text)
    for update in updates:
        doc.apply_update(update)
    return str(text)


def loaded_text(stored: StoredDocument) -> str:
    return text_of(*stored.parts)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Open fresh stores of one backend (each SQLite store in its own file, each Postgres
    store in its own database); close them all."""
    opened: list[Database] = []
    databases: list[str] = []
    numbers = itertools.count()
    # Only the Postgres runs need (and may skip for lack of) a cluster.
    server: PostgresServer | None = (
        request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    )

    async def make() -> Database:
        store: Database
        if request.param == "memory":
            store = MemoryStore()
        elif server is None:
            store = SqliteStore(str(tmp_path / f"store{next(numbers)}" / "collab.sqlite3"))
        else:
            databases.append(unique_database_name())
            store = PostgresStore(await server.create_database(databases[-1]))
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()
    if server is not None:
        for name in databases:
            await server.drop_database(name)


@pytest.fixture
async def store(make_store: StoreFactory) -> Database:
    """One open store of the backend under test."""
    return await make_store()


# --- the contract -------------------------------------------------------------------------


async def test_unknown_room_loads_empty(store: Store) -> None:
    """A room never written loads as no snapshot and no updates."""
    stored = await store.load(ROOM)
    assert stored == StoredDocument(snapshot=None, updates=[])
    assert stored.is_empty


async def test_appended_updates_load_back_in_order(store: Store) -> None:
    """Appended updates load back byte for byte, in append order, without a snapshot."""
    editor = Editor()
    first = editor.insert(0, "hello")
    second = editor.insert(5, " world")
    await store.append_updates([(ROOM, first, None)])
    await store.append_updates([(ROOM, second, None)])

    stored = await store.load(ROOM)

    assert stored == StoredDocument(snapshot=None, updates=[first, second])
    assert loaded_text(stored) == "hello world"


async def test_one_batch_lands_in_each_of_its_rooms(store: Store) -> None:
    """A batch spanning several rooms appends each update to its own room, in order."""
    one, two = Editor(), Editor()
    batch: list[tuple[str, bytes, str | None]] = [
        (ROOM, one.insert(0, "a"), None),
        (OTHER_ROOM, two.insert(0, "x"), "u1"),
        (ROOM, one.insert(1, "b"), "u2"),
        ("w2/n1", two.insert(1, "y"), None),
    ]
    await store.append_updates(batch)

    assert (await store.load(ROOM)).updates == [batch[0][1], batch[2][1]]
    assert (await store.load(OTHER_ROOM)).updates == [batch[1][1]]
    assert (await store.load("w2/n1")).updates == [batch[3][1]]


async def test_empty_batch_changes_nothing(store: Store) -> None:
    """Appending an empty batch succeeds and stores nothing."""
    await store.append_updates([])
    assert (await store.load(ROOM)).is_empty


async def test_compacted_document_loads_the_same_text(store: Store) -> None:
    """After compaction the document loads as one snapshot with the same text, no log."""
    editor = Editor()
    editor.insert(0, "hello")
    editor.insert(5, " world")
    editor.insert(0, ">> ")
    await store.append_updates([(ROOM, update, None) for update in editor.take_outbox()])

    await store.compact(ROOM, editor.state())
    stored = await store.load(ROOM)

    assert stored.snapshot is not None
    assert stored.updates == []
    assert loaded_text(stored) == ">> hello world"


async def test_compaction_keeps_an_update_appended_after_the_state_was_taken(
    store: Store,
) -> None:
    """An update logged by someone else after `state` was taken survives compaction."""
    server = Editor()
    await store.append_updates([(ROOM, server.insert(0, "hello"), None)])
    state = server.state()
    other = Editor()
    other.doc.apply_update(state)
    await store.append_updates([(ROOM, other.insert(5, " world"), None)])

    await store.compact(ROOM, state)

    assert loaded_text(await store.load(ROOM)) == "hello world"


async def test_compaction_keeps_snapshot_content_that_state_lacks(store: Store) -> None:
    """Content only in the stored snapshot survives a compaction with a state lacking it."""
    first, second = Editor(), Editor()
    first.insert(0, "kept")
    await store.compact(ROOM, first.state())
    second.insert(0, "new")

    await store.compact(ROOM, second.state())

    assert sorted(loaded_text(await store.load(ROOM))) == sorted("keptnew")


async def test_updates_after_compaction_load_with_the_snapshot(store: Store) -> None:
    """Updates appended after a compaction load alongside the snapshot."""
    editor = Editor()
    await store.append_updates([(ROOM, editor.insert(0, "one"), None)])
    await store.compact(ROOM, editor.state())
    later = editor.insert(3, " two")

    await store.append_updates([(ROOM, later, None)])
    stored = await store.load(ROOM)

    assert stored.updates == [later]
    assert loaded_text(stored) == "one two"


# --- compaction by the live document that wrote the rows (`writer`) ------------------------
# A writer vouches that its state holds its own rows and the snapshot it stored as its exact
# state. To see that the store takes its word (and reads nothing of them), some tests below
# compact with a state that lacks what the writer stored: a real caller never does.

WRITER, OTHER_WRITER, THIRD_WRITER = 7, 8, 9


async def test_a_writers_compaction_does_not_merge_what_it_stored(store: Store) -> None:
    """The writer's rows, and the snapshot that is its exact state, are not merged: its
    state is taken for the whole document."""
    editor, stranger = Editor(), Editor()
    await store.append_updates([(ROOM, editor.insert(0, "mine"), None)], writers={ROOM: WRITER})
    stranger.insert(0, "state")

    await store.compact(ROOM, stranger.state(), Held(WRITER))
    assert loaded_text(await store.load(ROOM)) == "state"

    # Nothing else was merged: the snapshot is the writer's own, and so held by its state.
    await store.compact(ROOM, Editor().state(), Held(WRITER))
    assert loaded_text(await store.load(ROOM)) == ""


async def test_a_writers_compaction_merges_every_other_row(store: Store) -> None:
    """Rows of another writer, and rows appended without one, are merged into the state."""
    mine, theirs, untagged = Editor(), Editor(), Editor()
    await store.append_updates([(ROOM, mine.insert(0, "a"), None)], writers={ROOM: WRITER})
    await store.append_updates([(ROOM, theirs.insert(0, "b"), None)], writers={ROOM: OTHER_WRITER})
    await store.append_updates([(ROOM, untagged.insert(0, "c"), None)])

    await store.compact(ROOM, mine.state(), Held(WRITER))

    assert sorted(loaded_text(await store.load(ROOM))) == ["a", "b", "c"]


async def test_a_snapshot_that_merged_others_rows_is_merged_again(store: Store) -> None:
    """A snapshot holding more than the writer's state is not the writer's: its next
    compaction, with a state that still lacks the other writer's edit, keeps that edit."""
    mine, theirs = Editor(), Editor()
    await store.append_updates([(ROOM, mine.insert(0, "a"), None)], writers={ROOM: WRITER})
    await store.append_updates([(ROOM, theirs.insert(0, "b"), None)], writers={ROOM: OTHER_WRITER})
    await store.compact(ROOM, mine.state(), Held(WRITER))

    await store.compact(ROOM, mine.state(), Held(WRITER))

    assert sorted(loaded_text(await store.load(ROOM))) == ["a", "b"]


async def test_a_writers_snapshot_is_merged_by_any_other_compaction(store: Store) -> None:
    """The writer's own snapshot is merged by another writer's compaction, and by one
    without a writer."""
    first, second, third = Editor(), Editor(), Editor()
    first.insert(0, "a")
    await store.compact(ROOM, first.state(), Held(WRITER))
    second.insert(0, "b")
    await store.compact(ROOM, second.state(), Held(OTHER_WRITER))
    third.insert(0, "c")
    await store.compact(ROOM, third.state())

    assert sorted(loaded_text(await store.load(ROOM))) == ["a", "b", "c"]


async def _loaded_digest(store: Store) -> bytes:
    """The `stored_digest` of the room as `load` returns it, as the rooms take it."""
    return stored_digest((await store.load(ROOM)).parts)


async def _snapshot_and_row_of_others(store: Store) -> None:
    first, second = Editor(), Editor()
    first.insert(0, "a")
    await store.compact(ROOM, first.state(), Held(OTHER_WRITER))
    await store.append_updates([(ROOM, second.insert(0, "b"), None)])


async def test_what_a_document_was_loaded_from_is_not_merged(store: Store) -> None:
    """Stored parts that are exactly those `loaded` digests are held by the state: with
    the writer's own rows appended since, they are not merged, and the snapshot is its own."""
    await _snapshot_and_row_of_others(store)
    loaded = await _loaded_digest(store)
    mine = Editor()
    await store.append_updates([(ROOM, mine.insert(0, "c"), None)], writers={ROOM: WRITER})

    await store.compact(ROOM, mine.state(), Held(WRITER, loaded))
    assert loaded_text(await store.load(ROOM)) == "c"

    await store.compact(ROOM, Editor().state(), Held(WRITER))
    assert loaded_text(await store.load(ROOM)) == ""


async def test_what_a_large_document_was_loaded_from_is_not_merged_either(store: Store) -> None:
    """Past `DIGEST_IN_THREAD_BYTES` the stores may take the digest in a thread: the same
    answer, and a row appended since still merged."""
    big = Editor()
    big.insert(0, "x" * DIGEST_IN_THREAD_BYTES)
    await store.compact(ROOM, big.state(), Held(OTHER_WRITER))
    loaded = await _loaded_digest(store)
    mine = Editor()
    await store.append_updates([(ROOM, mine.insert(0, "c"), None)], writers={ROOM: WRITER})

    await store.compact(ROOM, mine.state(), Held(WRITER, loaded))
    assert loaded_text(await store.load(ROOM)) == "c"

    await store.compact(ROOM, big.state(), Held(OTHER_WRITER))
    await store.append_updates([(ROOM, Editor().insert(0, "d"), None)])
    await store.compact(ROOM, Editor().state(), Held(WRITER, loaded))
    text = loaded_text(await store.load(ROOM))
    assert len(text) == DIGEST_IN_THREAD_BYTES + 2
    assert set(text) == {"x", "c", "d"}


async def test_more_than_a_document_was_loaded_from_is_all_merged(store: Store) -> None:
    """A row another writer appended after the load: everything stored is merged."""
    await _snapshot_and_row_of_others(store)
    loaded = await _loaded_digest(store)
    await store.append_updates(
        [(ROOM, Editor().insert(0, "d"), None)], writers={ROOM: OTHER_WRITER}
    )

    await store.compact(ROOM, Editor().state(), Held(WRITER, loaded))

    assert sorted(loaded_text(await store.load(ROOM))) == ["a", "b", "d"]


async def test_less_than_a_document_was_loaded_from_is_all_merged(store: Store) -> None:
    """Another writer compacted after the load: what is stored is not what was loaded, and
    is merged."""
    await _snapshot_and_row_of_others(store)
    loaded = await _loaded_digest(store)
    third = Editor()
    third.insert(0, "e")
    await store.compact(ROOM, third.state(), Held(THIRD_WRITER))

    await store.compact(ROOM, Editor().state(), Held(WRITER, loaded))

    assert sorted(loaded_text(await store.load(ROOM))) == ["a", "b", "e"]


async def test_rows_appended_with_a_writer_load_like_any_other(store: Store) -> None:
    """A batch's rooms each take their own writer (or none); loading is unchanged."""
    editor, other = Editor(), Editor()
    first, second = editor.insert(0, "one"), other.insert(0, "two")
    await store.append_updates(
        [(ROOM, first, "u1"), (OTHER_ROOM, second, None)], writers={ROOM: WRITER}
    )

    assert (await store.load(ROOM)).updates == [first]
    assert (await store.load(OTHER_ROOM)).updates == [second]


async def test_rooms_are_isolated(store: Store) -> None:
    """Appending to or compacting one room leaves every other room untouched."""
    one, two = Editor(), Editor()
    kept = one.insert(0, "room one")
    await store.append_updates([(ROOM, kept, None)])
    await store.append_updates([("w1/n10", two.insert(0, "prefix twin"), None)])
    await store.compact("w1/n10", two.state())
    await store.compact(OTHER_ROOM, Editor().state())

    assert await store.load(ROOM) == StoredDocument(snapshot=None, updates=[kept])
    assert loaded_text(await store.load(OTHER_ROOM)) == ""
    assert loaded_text(await store.load("w1/n10")) == "prefix twin"


async def test_reopening_the_same_store_keeps_everything(store: Store) -> None:
    """Closing and opening a store again keeps its snapshots and its log."""
    editor = Editor()
    await store.append_updates([(ROOM, editor.insert(0, "snap"), None)])
    await store.compact(ROOM, editor.state())
    await store.append_updates([(ROOM, editor.insert(4, "shot"), None)])
    before = await store.load(ROOM)

    await store.close()
    await store.open()

    assert await store.load(ROOM) == before


async def test_ping_answers_while_open(store: Store) -> None:
    """`ping` returns quietly while the store is open."""
    await store.ping()


async def test_closed_store_raises_store_error(store: Store) -> None:
    """Every call on a closed store raises `StoreError`, and closing twice is harmless."""
    await store.close()
    await store.close()

    with pytest.raises(StoreError):
        await store.load(ROOM)
    with pytest.raises(StoreError):
        await store.append_updates([(ROOM, Editor().insert(0, "x"), None)])
    with pytest.raises(StoreError):
        await store.compact(ROOM, Editor().state())
    with pytest.raises(StoreError):
        await store.ping()


async def test_compaction_with_a_corrupt_state_raises_store_error(store: Store) -> None:
    """A state that is not a Yjs update fails compaction with `StoreError`, changing nothing."""
    update = Editor().insert(0, "safe")
    await store.append_updates([(ROOM, update, None)])

    with pytest.raises(StoreError, match="does not merge"):
        await store.compact(ROOM, b"\xff\xff\xff not an update")

    assert await store.load(ROOM) == StoredDocument(snapshot=None, updates=[update])


async def test_concurrent_appends_and_compactions_lose_nothing(store: Store) -> None:
    """Appends, compactions and loads issued at once all succeed and keep every edit."""
    editors = [Editor() for _ in range(4)]
    updates = [editor.insert(0, f"<{number}>") for number, editor in enumerate(editors)]

    await asyncio.gather(
        *(store.append_updates([(ROOM, update, None)]) for update in updates),
        *(store.compact(ROOM, editor.state()) for editor in editors[:2]),
        *(store.load(ROOM) for _ in range(4)),
    )

    assert sorted(loaded_text(await store.load(ROOM))) == sorted("<0><1><2><3>")


@pytest.mark.parametrize("loop_turns", range(8))
async def test_cancelled_append_is_all_or_nothing_and_store_stays_usable(
    store: Store, loop_turns: int
) -> None:
    """An append cancelled at any point stores its whole batch or none of it."""
    editor = Editor()
    batch = [(ROOM, editor.insert(0, "a"), None), (OTHER_ROOM, editor.insert(0, "b"), None)]
    append = asyncio.create_task(store.append_updates(batch))
    for _ in range(loop_turns):
        await asyncio.sleep(0)
    append.cancel()
    await asyncio.gather(append, return_exceptions=True)

    stored = [await store.load(ROOM), await store.load(OTHER_ROOM)]
    assert [document.updates for document in stored] in ([[], []], [[batch[0][1]], [batch[1][1]]])
    later = editor.insert(0, "c")
    await store.append_updates([(ROOM, later, None)])
    assert (await store.load(ROOM)).updates[-1] == later


@dataclass
class Edit:
    editor: int
    index: int
    chunk: str


@dataclass
class Flush:
    editor: int


@dataclass
class Compact:
    editor: int


@dataclass
class Sync:
    source: int
    target: int


@dataclass
class Model:
    editors: list[Editor] = field(default_factory=lambda: [Editor(), Editor()])
    written: list[bytes] = field(default_factory=list)


EDITORS = st.integers(min_value=0, max_value=1)
STRATEGY_BY_KIND: dict[str, st.SearchStrategy[Edit | Flush | Compact | Sync]] = {
    "edit": st.builds(
        Edit,
        EDITORS,
        st.integers(min_value=0, max_value=20),
        st.text(alphabet="abc xyz", min_size=1, max_size=4),
    ),
    "flush": st.builds(Flush, EDITORS),
    "compact": st.builds(Compact, EDITORS),
    "sync": st.builds(Sync, EDITORS, EDITORS),
}
# Syncing rarely: an editor whose state lacks another's flushed edits is the case to test.
OPERATIONS = st.lists(
    st.sampled_from(["edit", "edit", "edit", "flush", "flush", "compact", "sync"]).flatmap(
        STRATEGY_BY_KIND.__getitem__
    ),
    min_size=4,
    max_size=40,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(operations=OPERATIONS, with_writers=st.booleans())
async def test_any_interleaving_of_appends_and_compactions_loses_nothing(
    make_store: StoreFactory, operations: list[Edit | Flush | Compact | Sync], with_writers: bool
) -> None:
    """Whatever the order of appends and compactions, loading yields every written edit;
    also when each editor appends and compacts as a writer (its number: its index + 1)."""
    store = await make_store()
    model = Model()
    for operation in operations:
        match operation:
            case Edit(editor, index, chunk):
                model.editors[editor].insert(index, chunk)
            case Flush(editor):
                updates = model.editors[editor].take_outbox()
                await store.append_updates(
                    [(ROOM, update, None) for update in updates],
                    writers={ROOM: editor + 1} if with_writers else None,
                )
                model.written += updates
            case Compact(editor):
                # The state may hold edits not yet flushed: those are written by compaction.
                state = model.editors[editor].state()
                await store.compact(ROOM, state, Held(editor + 1) if with_writers else None)
                model.written.append(state)
            case Sync(source, target):
                model.editors[target].doc.apply_update(model.editors[source].state())
        # Checked after every step: a later compaction could otherwise restore a lost edit.
        assert loaded_text(await store.load(ROOM)) == text_of(*model.written)
    await store.close()


# --- revocations (RevocationStore, same backends) -----------------------------------------


def revocations_of(store: Database) -> RevocationStore:
    return store


async def test_revocations_are_stored_and_read_back(store: Database) -> None:
    """A revocation in the future is returned by `active_revocations` with its time (UTC)."""
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    await revocations_of(store).put_revocation("u1", until)
    assert await revocations_of(store).active_revocations(datetime.now(UTC)) == {"u1": until}


async def test_a_newer_revocation_replaces_the_older(store: Database) -> None:
    """Revoking a user again replaces the time, even with an earlier one (shortening)."""
    now = datetime.now(UTC).replace(microsecond=0)
    await revocations_of(store).put_revocation("u1", now + timedelta(days=2))
    await revocations_of(store).put_revocation("u1", now + timedelta(hours=1))
    await revocations_of(store).put_revocation("u2", now + timedelta(hours=3))
    assert await revocations_of(store).active_revocations(now) == {
        "u1": now + timedelta(hours=1),
        "u2": now + timedelta(hours=3),
    }


async def test_a_revocation_until_the_past_lifts_it(store: Database) -> None:
    """Revoking until a time not in the future removes the user's revocation."""
    now = datetime.now(UTC)
    await revocations_of(store).put_revocation("u1", now + timedelta(hours=1))
    await revocations_of(store).put_revocation("u1", now - timedelta(seconds=1))
    assert await revocations_of(store).active_revocations(now) == {}


async def test_revocations_that_ended_are_not_active(store: Database) -> None:
    """`active_revocations(now)` leaves out revocations that end at or before `now`."""
    now = datetime.now(UTC).replace(microsecond=0)
    await revocations_of(store).put_revocation("u1", now + timedelta(minutes=1))
    await revocations_of(store).put_revocation("u2", now + timedelta(minutes=10))
    later = now + timedelta(minutes=5)
    assert await revocations_of(store).active_revocations(later) == {
        "u2": now + timedelta(minutes=10)
    }


async def test_revocations_are_shared_by_stores_of_one_database(make_store: StoreFactory) -> None:
    """A revocation survives closing and reopening a durable store (how a restarted
    instance learns it)."""
    store = await make_store()
    if isinstance(store, MemoryStore):
        pytest.skip("the memory store keeps nothing beyond its object")
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    await revocations_of(store).put_revocation("u1", until)
    await store.close()
    await store.open()
    assert await revocations_of(store).active_revocations(datetime.now(UTC)) == {"u1": until}


# --- SQLite only --------------------------------------------------------------------------


async def test_reopened_sqlite_file_keeps_everything(tmp_path: Path) -> None:
    """A new `SqliteStore` on the same file loads what the previous one wrote."""
    path = str(tmp_path / "collab.sqlite3")
    editor = Editor()
    first = SqliteStore(path)
    await first.open()
    await first.append_updates([(ROOM, editor.insert(0, "durable"), None)])
    await first.compact(ROOM, editor.state())
    await first.append_updates(
        [(ROOM, editor.insert(7, "!"), None), (OTHER_ROOM, Editor().state(), None)]
    )
    before = {room_id: await first.load(room_id) for room_id in (ROOM, OTHER_ROOM)}
    await first.close()

    second = SqliteStore(path)
    await second.open()
    try:
        after = {room_id: await second.load(room_id) for room_id in (ROOM, OTHER_ROOM)}
    finally:
        await second.close()

    assert after == before
    assert loaded_text(after[ROOM]) == "durable!"


def applied_migrations(path: str) -> list[tuple[int, str]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version")
        applied = [(int(version), str(name)) for version, name in rows]
    conn.close()
    return applied


async def test_sqlite_migrations_apply_once_however_often_the_file_is_opened(
    tmp_path: Path,
) -> None:
    """Opening a file again, or from two stores at once, records each migration once."""
    path = str(tmp_path / "collab.sqlite3")
    first, second = SqliteStore(path), SqliteStore(path)
    await first.open()
    await first.close()
    await first.open()
    await second.open()
    await first.close()
    await second.close()

    expected = [(migration.version, migration.name) for migration in list_migrations("sqlite")]
    assert applied_migrations(path) == expected


async def test_sqlite_open_creates_missing_parent_directories(tmp_path: Path) -> None:
    """`open` creates the directories leading to the database file."""
    path = tmp_path / "a" / "b" / "collab.sqlite3"
    store = SqliteStore(str(path))
    await store.open()
    await store.close()
    assert path.is_file()


async def test_sqlite_open_under_a_regular_file_raises_store_error(tmp_path: Path) -> None:
    """A path whose parent is a regular file fails with `StoreError` naming the file."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    path = str(blocker / "collab.sqlite3")

    with pytest.raises(StoreError, match="creating directory") as raised:
        await SqliteStore(path).open()
    assert path in str(raised.value)


async def test_sqlite_open_in_a_read_only_directory_raises_store_error(tmp_path: Path) -> None:
    """A database that cannot be created in a read-only directory fails with `StoreError`."""
    directory = tmp_path / "read-only"
    directory.mkdir()
    directory.chmod(0o555)
    path = str(directory / "collab.sqlite3")
    try:
        if os.access(directory, os.W_OK):
            pytest.skip("this user writes through directory permissions (root)")
        with pytest.raises(StoreError, match="failed") as raised:
            await SqliteStore(path).open()
    finally:
        directory.chmod(0o755)
    assert path in str(raised.value)


async def test_sqlite_open_of_a_file_that_is_not_a_database_raises_store_error(
    tmp_path: Path,
) -> None:
    """Opening a file that is not SQLite fails with `StoreError` naming the file."""
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are plain notes, not a database\n" * 200)

    with pytest.raises(StoreError, match="not a database") as raised:
        await SqliteStore(str(path)).open()
    assert str(path) in str(raised.value)


# --- Postgres only ------------------------------------------------------------------------

PASSWORD = "pg-s3cret-in-the-dsn"
TEST_JWT_SECRET = "test-secret-for-collab-migrate-0123456789abcdef"


async def applied_postgres_migrations(dsn: str) -> list[tuple[int, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
    return [(int(row["version"]), str(row["name"])) for row in rows]


GATE_LOCK_KEY = 4242
# Holds every snapshot write, i.e. a compaction between its reads and its delete, until the
# test releases the gate lock.
HOLD_SNAPSHOT_WRITES = f"""
CREATE FUNCTION hold_snapshot_writes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({GATE_LOCK_KEY});
    RETURN NEW;
END $$;
CREATE TRIGGER hold_snapshot_writes BEFORE INSERT OR UPDATE ON document_snapshots
    FOR EACH ROW EXECUTE FUNCTION hold_snapshot_writes();
"""


@pytest.fixture
async def gate(postgres_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection holding the lock that blocks snapshot writes (migrated database)."""
    async with gate_held(postgres_dsn, HOLD_SNAPSHOT_WRITES, GATE_LOCK_KEY) as conn:
        yield conn


async def sessions_wait_for_locks(conn: asyncpg.Connection, count: int) -> bool:
    waiting = await conn.fetchval(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'advisory' "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    return int(waiting) >= count


async def test_compaction_keeps_a_lower_id_committed_after_it_read_the_log(
    postgres_dsn: str, gate: asyncpg.Connection
) -> None:
    """An update with a smaller id that commits while a compaction runs is not deleted by it."""
    store = PostgresStore(postgres_dsn)
    await store.open()
    pending = await asyncpg.connect(postgres_dsn)
    try:
        transaction = pending.transaction()
        await transaction.start()
        await pending.execute(
            "INSERT INTO document_updates (room_id, data) VALUES ($1, $2)",
            ROOM,
            Editor().insert(0, "early"),
        )
        await store.append_updates([(ROOM, Editor().insert(0, "late"), None)])
        compaction = asyncio.create_task(store.compact(ROOM, Editor().state()))
        await eventually(lambda: sessions_wait_for_locks(gate, 1), what="compaction held")
        await transaction.commit()
        await gate.execute("SELECT pg_advisory_unlock($1)", GATE_LOCK_KEY)
        await compaction
        text = loaded_text(await store.load(ROOM))
    finally:
        await pending.close()
        await store.close()
    assert sorted(text) == sorted("earlylate")


async def test_compactions_by_two_instances_serialize(
    postgres_dsn: str, gate: asyncpg.Connection
) -> None:
    """A compaction that starts while another instance's is running merges that one's result."""
    first, second = PostgresStore(postgres_dsn), PostgresStore(postgres_dsn)
    await first.open()
    await second.open()
    one, two = Editor(), Editor()
    one.insert(0, "one")
    two.insert(0, "two")
    try:
        running = asyncio.create_task(first.compact(ROOM, one.state()))
        await eventually(lambda: sessions_wait_for_locks(gate, 1), what="first one held")
        waiting = asyncio.create_task(second.compact(ROOM, two.state()))
        await eventually(lambda: sessions_wait_for_locks(gate, 2), what="second one waiting")
        await gate.execute("SELECT pg_advisory_unlock($1)", GATE_LOCK_KEY)
        await asyncio.gather(running, waiting)
        text = loaded_text(await first.load(ROOM))
    finally:
        await first.close()
        await second.close()
    assert sorted(text) == sorted("onetwo")


@pytest.mark.parametrize("round_number", range(3))
async def test_two_instances_compacting_while_a_third_appends_lose_nothing(
    postgres_dsn: str, round_number: int
) -> None:
    """Two pools compacting one room at once, while a third appends, keep every update."""
    compactors = [PostgresStore(postgres_dsn), PostgresStore(postgres_dsn)]
    writer = PostgresStore(postgres_dsn)
    for store in (*compactors, writer):
        await store.open()
    room_id = f"w1/race{round_number}"
    tokens = [f"<{number}>" for number in range(60)]
    appended = asyncio.Event()
    compactor_tokens: list[str] = []

    async def append_all() -> None:
        try:
            # Many small transactions at once over the writer's pool, so identity values are
            # committed out of order while the compactions read the log.
            await asyncio.gather(
                *(writer.append_updates([(room_id, Editor().insert(0, t), None)]) for t in tokens)
            )
        finally:
            appended.set()

    async def compact_until_appended(store: PostgresStore, name: str) -> None:
        editor = Editor()
        turn = 0
        while True:
            done = appended.is_set()
            # The state carries content of its own, and whatever was stored so far.
            compactor_tokens.append(f"[{name}{turn}]")
            editor.insert(0, compactor_tokens[-1])
            await store.compact(room_id, editor.state())
            stored = await store.load(room_id)
            for part in [stored.snapshot or b"", *stored.updates]:
                if part:
                    editor.doc.apply_update(part)
            turn += 1
            if done:
                return

    try:
        await asyncio.gather(
            append_all(),
            compact_until_appended(compactors[0], "a"),
            compact_until_appended(compactors[1], "b"),
        )
        text = loaded_text(await writer.load(room_id))
    finally:
        for store in (*compactors, writer):
            await store.close()

    missing = [token for token in tokens + compactor_tokens if token not in text]
    assert missing == []


async def test_instances_migrating_a_fresh_database_at_once_apply_each_migration_once(
    postgres_dsn: str,
) -> None:
    """Four stores migrating one empty database at once all open; each version is recorded once."""
    stores = [PostgresStore(postgres_dsn) for _ in range(4)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        await stores[0].close()
        await stores[0].open()
    finally:
        for store in stores:
            await store.close()

    expected = [(migration.version, migration.name) for migration in list_migrations("postgres")]
    assert await applied_postgres_migrations(postgres_dsn) == expected


async def test_postgres_migration_runner_applies_nothing_the_second_time(
    postgres_dsn: str,
) -> None:
    """A second run finds every migration recorded and applies none."""
    conn = await asyncpg.connect(postgres_dsn)
    try:
        first = await apply_postgres_migrations(conn)
        second = await apply_postgres_migrations(conn)
    finally:
        await conn.close()
    assert [m.version for m in first] == [m.version for m in list_migrations("postgres")]
    assert second == []


async def test_failing_postgres_migration_leaves_no_trace_and_names_itself(
    postgres_dsn: str,
) -> None:
    """A failing migration raises `StoreError` naming it, is undone, and releases the lock."""
    migrations = [
        Migration(version=1, name="good", sql="CREATE TABLE kept (a INTEGER);"),
        Migration(
            version=2,
            name="broken",
            sql="CREATE TABLE undone (a INTEGER);\nINSERT INTO missing VALUES (1);",
        ),
    ]
    conn = await asyncpg.connect(postgres_dsn)
    try:
        with pytest.raises(StoreError, match=r"migration 0002_broken\.sql failed"):
            await apply_postgres_migrations(conn, migrations)
        applied = await conn.fetch("SELECT version FROM schema_migrations")
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
        locks = await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
        in_transaction = conn.is_in_transaction()
    finally:
        await conn.close()
    assert [row["version"] for row in applied] == [1]
    assert {row["tablename"] for row in tables} == {"schema_migrations", "kept"}
    assert locks == 0
    assert not in_transaction


async def test_collab_migrate_against_postgres_succeeds_twice(postgres_dsn: str) -> None:
    """`collab migrate` on a Postgres URL exits 0 twice saying "up to date", hiding the password."""
    database = postgres_dsn.rpartition("/")[2]
    port = postgres_dsn.rpartition(":")[2].partition("/")[0]
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/{database}"
    env = {**clean_environ(), "COLLAB_DATABASE_URL": url, "COLLAB_JWT_SECRET": TEST_JWT_SECRET}
    for _ in range(2):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "collab",
            "migrate",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), scaled(60))
        output = (stdout + stderr).decode()
        assert process.returncode == 0, output
        assert "up to date" in output
        assert PASSWORD not in output
    expected = [(migration.version, migration.name) for migration in list_migrations("postgres")]
    assert await applied_postgres_migrations(postgres_dsn) == expected


@pytest.mark.parametrize("outage", ["stop", "kill"])
async def test_store_fails_promptly_while_postgres_is_down_and_recovers_after(
    fresh_postgres: PostgresServer, outage: str
) -> None:
    """Calls fail with `StoreError` at once while Postgres is down; the same store works after."""
    server = fresh_postgres
    database = unique_database_name()
    await server.create_database(database)
    store = PostgresStore(server.dsn_for(database, password=PASSWORD))
    editor = Editor()
    await store.open()
    try:
        await store.append_updates([(ROOM, editor.insert(0, "before"), None)])

        await (server.stop() if outage == "stop" else server.kill())
        calls: list[Callable[[], Awaitable[object]]] = [
            store.ping,
            lambda: store.load(ROOM),
            lambda: store.append_updates([(ROOM, editor.insert(0, "offline "), None)]),
            lambda: store.compact(ROOM, editor.state()),
        ]
        for call in calls:
            async with asyncio.timeout(scaled(10)):
                with pytest.raises(StoreError) as raised:
                    await call()
            assert PASSWORD not in str(raised.value)
            assert "failed" in str(raised.value)

        await server.start()
        await store.ping()
        await store.append_updates([(ROOM, editor.insert(0, "after "), None)])
        await store.compact(ROOM, editor.state())
        assert loaded_text(await store.load(ROOM)) == "after offline before"
    finally:
        await store.close()


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://collab:{PASSWORD}@127.0.0.1:1/collab",
        f"postgresql://collab:{PASSWORD}@127.0.0.1:notaport/collab",
        f"postgresql://collab@127.0.0.1:1/collab?password={PASSWORD}",
    ],
)
async def test_unreachable_or_malformed_dsn_raises_store_error_without_the_password(
    dsn: str,
) -> None:
    """Opening a store that cannot connect raises `StoreError` that never shows the password."""
    store = PostgresStore(dsn, connect_timeout_s=scaled(5))
    with pytest.raises(StoreError, match="connecting failed") as raised:
        await store.open()
    assert PASSWORD not in str(raised.value)
    assert PASSWORD not in repr(store)
    assert raised.value.__cause__ is None
    await store.close()


# --- MemoryStore fault injection ----------------------------------------------------------


async def test_memory_store_fail_next_fails_one_call_only() -> None:
    """`fail_next` makes exactly the next call raise it, without changing anything."""
    store = MemoryStore()
    await store.open()
    fault = StoreError("injected")
    store.fail_next = fault

    with pytest.raises(StoreError) as raised:
        await store.append_updates([(ROOM, Editor().insert(0, "lost"), None)])

    assert raised.value is fault
    assert (await store.load(ROOM)).is_empty


async def test_memory_store_fail_with_fails_every_call_until_cleared() -> None:
    """`fail_with` makes every call raise it until it is set back to None."""
    store = MemoryStore()
    await store.open()
    store.fail_with = StoreError("down")

    for call in (store.ping(), store.load(ROOM), store.compact(ROOM, Editor().state())):
        with pytest.raises(StoreError, match="down"):
            await call
    store.fail_with = None
    await store.ping()


# --- choosing a backend -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("database_url", "expected_path"),
    [
        ("sqlite:///data/collab.sqlite3", "data/collab.sqlite3"),
        ("sqlite:////var/lib/collab.sqlite3", "/var/lib/collab.sqlite3"),
    ],
)
def test_sqlite_urls_choose_sqlite_store(database_url: str, expected_path: str) -> None:
    """sqlite:/// URLs give a `SqliteStore` on the relative or absolute path they name."""
    store = create_store(database_url)
    assert isinstance(store, SqliteStore)
    assert store.path == expected_path


def test_memory_url_chooses_memory_store() -> None:
    """memory:// gives a `MemoryStore`."""
    assert isinstance(create_store("memory://"), MemoryStore)


@pytest.mark.parametrize(
    ("database_url", "expected_where"),
    [("postgresql://u:secret@db:5433/collab", "db:5433/collab"), ("postgres://db/c", "db/c")],
)
def test_postgres_urls_choose_postgres_store(database_url: str, expected_where: str) -> None:
    """postgresql:// and postgres:// URLs give a `PostgresStore` whose repr hides the password."""
    store = create_store(database_url)
    assert isinstance(store, PostgresStore)
    assert store.where == expected_where
    assert "secret" not in repr(store)
    assert store.max_pool == DEFAULT_POOL_SIZE


async def test_the_pool_size_bounds_the_connections_the_store_opens(
    postgres_dsn: str,
) -> None:
    """COLLAB_DATABASE_POOL_SIZE reaches asyncpg: the store's pool opens at most that many."""
    store = create_store(postgres_dsn, pool_size=3)
    assert isinstance(store, PostgresStore)
    await store.open()
    try:
        assert store._pool is not None
        assert store._pool.get_max_size() == 3
    finally:
        await store.close()


@pytest.mark.parametrize(
    "database_url",
    [
        "",
        "collab.sqlite3",
        "mysql://u:secret@db/collab",
        "sqlite://host/collab.sqlite3",
        "sqlite:///",
        "sqlite:///data/",
        "memory://secret",
        "u:secret@db://x",
    ],
)
def test_other_urls_raise_config_error_listing_accepted_forms(database_url: str) -> None:
    """Any other URL raises `ConfigError` listing the accepted forms, never echoing secrets."""
    with pytest.raises(ConfigError, match="COLLAB_DATABASE_URL") as raised:
        create_store(database_url)
    assert "sqlite:///" in str(raised.value)
    assert "memory://" in str(raised.value)
    assert "secret" not in str(raised.value)
