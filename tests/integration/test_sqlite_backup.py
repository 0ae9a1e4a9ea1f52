"""`backup_sqlite`: an online copy of a SQLite store taken while it is written, which opens
as a store holding exactly what was committed when the copy began; its refusals."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest
from pycrdt import Doc, Text

from collab.errors import StoreError
from collab.store import SqliteStore
from collab.store.catalog import NoteFields
from collab.store.rows import format_timestamp
from collab.store.sqlite_backup import backup_sqlite

ROOM = "w1/n1"


def edits(count: int) -> list[bytes]:
    """`count` updates, each appending its number to one text."""
    doc: Doc = Doc()
    text = doc.get("t", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for number in range(count):
        text += f"{number},"
    return updates


def text_of(updates: list[bytes]) -> str:
    doc: Doc = Doc()
    for update in updates:
        doc.apply_update(update)
    return str(doc.get("t", type=Text))


async def test_a_copy_taken_while_writing_holds_a_prefix_of_the_log_and_opens_as_a_store(
    tmp_path: Path,
) -> None:
    """Appends go on while the copy is taken in a thread: the copy holds every update
    committed before it began and then a prefix of the rest, never a gap; it opens as a
    store with the note's catalog entry; the source is unchanged and still written."""
    source = tmp_path / "notes.db"
    store = SqliteStore(str(source))
    await store.open()
    updates = edits(400)
    try:
        await store.create_note(
            "w1", "n1", NoteFields(title="Kept"), actor="u1", at=format_timestamp()
        )
        for update in updates[:100]:
            await store.append_updates([(ROOM, update, "u1")])
        copying = asyncio.create_task(
            asyncio.to_thread(backup_sqlite, source, tmp_path / "copy.db")
        )
        written = 100
        while not copying.done() and written < len(updates):
            await store.append_updates([(ROOM, updates[written], "u1")])
            written += 1
        result = await copying
        for update in updates[written:]:
            await store.append_updates([(ROOM, update, "u1")])
        assert text_of((await store.load(ROOM)).updates) == text_of(updates)
    finally:
        await store.close()

    assert result.path == tmp_path / "copy.db"
    assert result.schema_version >= 14
    assert not result.secret_copied
    copy = SqliteStore(str(tmp_path / "copy.db"))
    await copy.open()
    try:
        stored = (await copy.load(ROOM)).updates
        entry = await copy.get_note("w1", "n1")
    finally:
        await copy.close()
    assert 100 <= len(stored) <= len(updates)
    assert stored == updates[: len(stored)]
    assert entry is not None
    assert entry.fields.title == "Kept"
    assert partial_files(tmp_path) == []


def test_the_embedded_secret_goes_with_the_copy_readable_by_its_owner_only(
    tmp_path: Path,
) -> None:
    source = migrated(tmp_path / "notes.db")
    (tmp_path / "notes.db.secret").write_text("s3cret\n")

    result = backup_sqlite(source, tmp_path / "copy.db")

    assert result.secret_copied
    secret = tmp_path / "copy.db.secret"
    assert secret.read_text() == "s3cret\n"
    assert secret.stat().st_mode & 0o777 == 0o600


def test_an_existing_copy_is_replaced_only_when_asked(tmp_path: Path) -> None:
    source = migrated(tmp_path / "notes.db")
    old = tmp_path / "copy.db"
    old.write_bytes(b"an older copy")

    with pytest.raises(StoreError, match="exists; name a new file, or pass --force"):
        backup_sqlite(source, old)
    assert old.read_bytes() == b"an older copy"

    backup_sqlite(source, old, overwrite=True)
    assert quick_check(old) == "ok"


@pytest.mark.parametrize(
    "own", ["notes.db-wal", "notes.db-shm", "notes.db-journal", "notes.db.secret"]
)
def test_the_files_of_the_live_database_are_never_a_destination(tmp_path: Path, own: str) -> None:
    """Not even with --force: a copy over the database's write-ahead log or its key would
    corrupt or lock out the live store."""
    source = migrated(tmp_path / "notes.db")
    target = tmp_path / own
    target.write_bytes(b"the live store's own file")

    with pytest.raises(StoreError, match="the database itself or one of its files"):
        backup_sqlite(source, target, overwrite=True)
    assert target.read_bytes() == b"the live store's own file"


def test_a_directory_is_no_destination_even_with_force(tmp_path: Path) -> None:
    source = migrated(tmp_path / "notes.db")
    (tmp_path / "backups").mkdir()

    with pytest.raises(StoreError, match="is a directory; name a file in it"):
        backup_sqlite(source, tmp_path / "backups", overwrite=True)


@pytest.mark.parametrize(
    ("make_source", "destination", "message"),
    [
        (lambda d: d / "missing.db", "copy.db", "no database file at"),
        (lambda d: migrated(d / "notes.db"), "notes.db", "the database itself or one of its"),
        (lambda d: migrated(d / "notes.db"), "no/such/dir/copy.db", "no directory"),
        (lambda d: plain_file(d / "notes.db"), "copy.db", "is not a collab database"),
        (lambda d: empty_database(d / "notes.db"), "copy.db", "is not a collab database"),
    ],
)
def test_what_cannot_be_backed_up_is_refused_saying_why_and_leaves_nothing(
    tmp_path: Path, make_source: object, destination: str, message: str
) -> None:
    assert callable(make_source)
    source = make_source(tmp_path)
    before = sorted(os.listdir(tmp_path))

    with pytest.raises(StoreError, match=message):
        backup_sqlite(source, tmp_path / destination, overwrite=destination == "notes.db")

    assert sorted(os.listdir(tmp_path)) == before


def migrated(path: Path) -> Path:
    async def run() -> None:
        store = SqliteStore(str(path))
        await store.open()
        await store.close()

    asyncio.run(run())
    return path


def plain_file(path: Path) -> Path:
    path.write_bytes(b"not a database at all, just some bytes " * 100)
    return path


def empty_database(path: Path) -> Path:
    sqlite3.connect(path).close()
    return path


def quick_check(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA quick_check").fetchone()[0])
    finally:
        conn.close()


def partial_files(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if "partial" in name)
