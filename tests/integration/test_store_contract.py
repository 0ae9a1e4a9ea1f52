"""One contract suite for every `Store` backend, plus what is specific to each backend."""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Text

from collab.errors import ConfigError, StoreError
from collab.store import MemoryStore, SqliteStore, Store, StoredDocument, create_store
from collab.store.migrations import list_migrations

ROOM = "w1/n1"
OTHER_ROOM = "w1/n2"

StoreFactory = Callable[[], Awaitable[Store]]


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
    parts = [] if stored.snapshot is None else [stored.snapshot]
    return text_of(*parts, *stored.updates)


@pytest.fixture(params=["memory", "sqlite"])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Open fresh stores of one backend (each SQLite store in its own file); close them all."""
    opened: list[Store] = []
    numbers = itertools.count()

    async def make() -> Store:
        store: Store
        if request.param == "memory":
            store = MemoryStore()
        else:
            store = SqliteStore(str(tmp_path / f"store{next(numbers)}" / "collab.sqlite3"))
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def store(make_store: StoreFactory) -> Store:
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
    await store.append_updates([(ROOM, first)])
    await store.append_updates([(ROOM, second)])

    stored = await store.load(ROOM)

    assert stored == StoredDocument(snapshot=None, updates=[first, second])
    assert loaded_text(stored) == "hello world"


async def test_one_batch_lands_in_each_of_its_rooms(store: Store) -> None:
    """A batch spanning several rooms appends each update to its own room, in order."""
    one, two = Editor(), Editor()
    batch = [
        (ROOM, one.insert(0, "a")),
        (OTHER_ROOM, two.insert(0, "x")),
        (ROOM, one.insert(1, "b")),
        ("w2/n1", two.insert(1, "y")),
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
    await store.append_updates([(ROOM, update) for update in editor.take_outbox()])

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
    await store.append_updates([(ROOM, server.insert(0, "hello"))])
    state = server.state()
    other = Editor()
    other.doc.apply_update(state)
    await store.append_updates([(ROOM, other.insert(5, " world"))])

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
    await store.append_updates([(ROOM, editor.insert(0, "one"))])
    await store.compact(ROOM, editor.state())
    later = editor.insert(3, " two")

    await store.append_updates([(ROOM, later)])
    stored = await store.load(ROOM)

    assert stored.updates == [later]
    assert loaded_text(stored) == "one two"


async def test_rooms_are_isolated(store: Store) -> None:
    """Appending to or compacting one room leaves every other room untouched."""
    one, two = Editor(), Editor()
    kept = one.insert(0, "room one")
    await store.append_updates([(ROOM, kept)])
    await store.append_updates([("w1/n10", two.insert(0, "prefix twin"))])
    await store.compact("w1/n10", two.state())
    await store.compact(OTHER_ROOM, Editor().state())

    assert await store.load(ROOM) == StoredDocument(snapshot=None, updates=[kept])
    assert loaded_text(await store.load(OTHER_ROOM)) == ""
    assert loaded_text(await store.load("w1/n10")) == "prefix twin"


async def test_reopening_the_same_store_keeps_everything(store: Store) -> None:
    """Closing and opening a store again keeps its snapshots and its log."""
    editor = Editor()
    await store.append_updates([(ROOM, editor.insert(0, "snap"))])
    await store.compact(ROOM, editor.state())
    await store.append_updates([(ROOM, editor.insert(4, "shot"))])
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
        await store.append_updates([(ROOM, Editor().insert(0, "x"))])
    with pytest.raises(StoreError):
        await store.compact(ROOM, Editor().state())
    with pytest.raises(StoreError):
        await store.ping()


async def test_compaction_with_a_corrupt_state_raises_store_error(store: Store) -> None:
    """A state that is not a Yjs update fails compaction with `StoreError`, changing nothing."""
    update = Editor().insert(0, "safe")
    await store.append_updates([(ROOM, update)])

    with pytest.raises(StoreError, match="does not merge"):
        await store.compact(ROOM, b"\xff\xff\xff not an update")

    assert await store.load(ROOM) == StoredDocument(snapshot=None, updates=[update])


async def test_concurrent_appends_and_compactions_lose_nothing(store: Store) -> None:
    """Appends, compactions and loads issued at once all succeed and keep every edit."""
    editors = [Editor() for _ in range(4)]
    updates = [editor.insert(0, f"<{number}>") for number, editor in enumerate(editors)]

    await asyncio.gather(
        *(store.append_updates([(ROOM, update)]) for update in updates),
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
    batch = [(ROOM, editor.insert(0, "a")), (OTHER_ROOM, editor.insert(0, "b"))]
    append = asyncio.create_task(store.append_updates(batch))
    for _ in range(loop_turns):
        await asyncio.sleep(0)
    append.cancel()
    await asyncio.gather(append, return_exceptions=True)

    stored = [await store.load(ROOM), await store.load(OTHER_ROOM)]
    assert [document.updates for document in stored] in ([[], []], [[batch[0][1]], [batch[1][1]]])
    later = editor.insert(0, "c")
    await store.append_updates([(ROOM, later)])
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
@given(operations=OPERATIONS)
async def test_any_interleaving_of_appends_and_compactions_loses_nothing(
    make_store: StoreFactory, operations: list[Edit | Flush | Compact | Sync]
) -> None:
    """Whatever the order of appends and compactions, loading yields every written edit."""
    store = await make_store()
    model = Model()
    for operation in operations:
        match operation:
            case Edit(editor, index, chunk):
                model.editors[editor].insert(index, chunk)
            case Flush(editor):
                updates = model.editors[editor].take_outbox()
                await store.append_updates([(ROOM, update) for update in updates])
                model.written += updates
            case Compact(editor):
                # The state may hold edits not yet flushed: those are written by compaction.
                state = model.editors[editor].state()
                await store.compact(ROOM, state)
                model.written.append(state)
            case Sync(source, target):
                model.editors[target].doc.apply_update(model.editors[source].state())
        # Checked after every step: a later compaction could otherwise restore a lost edit.
        assert loaded_text(await store.load(ROOM)) == text_of(*model.written)
    await store.close()


# --- SQLite only --------------------------------------------------------------------------


async def test_reopened_sqlite_file_keeps_everything(tmp_path: Path) -> None:
    """A new `SqliteStore` on the same file loads what the previous one wrote."""
    path = str(tmp_path / "collab.sqlite3")
    editor = Editor()
    first = SqliteStore(path)
    await first.open()
    await first.append_updates([(ROOM, editor.insert(0, "durable"))])
    await first.compact(ROOM, editor.state())
    await first.append_updates([(ROOM, editor.insert(7, "!")), (OTHER_ROOM, Editor().state())])
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


# --- MemoryStore fault injection ----------------------------------------------------------


async def test_memory_store_fail_next_fails_one_call_only() -> None:
    """`fail_next` makes exactly the next call raise it, without changing anything."""
    store = MemoryStore()
    await store.open()
    fault = StoreError("injected")
    store.fail_next = fault

    with pytest.raises(StoreError) as raised:
        await store.append_updates([(ROOM, Editor().insert(0, "lost"))])

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


@pytest.mark.parametrize("database_url", ["postgresql://u:secret@db/collab", "postgres://db/c"])
def test_postgres_urls_are_refused_for_now(database_url: str) -> None:
    """Postgres URLs raise `ConfigError` saying Postgres is not available yet."""
    with pytest.raises(ConfigError, match="Postgres support is not available yet") as raised:
        create_store(database_url)
    assert "secret" not in str(raised.value)


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
