"""The SQLite update log's tail (migration 0012): a group commit's rows stay out of the room
index until a settle, and every read, compaction and purge of a room still sees each of its
rows once, in order, whichever side of the mark it is on."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest
from pycrdt import Doc, Text

from collab.store import SqliteStore, sqlite
from collab.store.catalog import NoteFields
from tests.support.migrated import sqlite_store_from
from tests.support.typed import typed_words

ROOM = "w1/n1"
OTHER = "w1/n2"
AT = "2026-12-07T10:00:00.000000+00:00"
# A full scan of the log (the mark's own one-row table excepted): what the index is for.
FULL_SCAN = re.compile(r"SCAN document_updates(?!_settled)")


def _edits(count: int, prefix: str = "") -> tuple[list[bytes], str]:
    """`count` updates, each appending a word, and the text they make together."""
    return typed_words(f"{prefix}{number} " for number in range(count))


def _text_of(snapshot: bytes | None, updates: list[bytes]) -> str:
    doc: Doc[Text] = Doc()
    for update in ([snapshot] if snapshot else []) + updates:
        doc.apply_update(update)
    return str(doc.get("text", type=Text))


async def _log_rows(path: Path) -> list[tuple[int, str, int]]:
    """`(id, room_id, settled)` of every logged row, in id order, read beside the store."""
    async with aiosqlite.connect(path) as conn:
        rows = await conn.execute_fetchall(
            "SELECT id, room_id, settled FROM document_updates ORDER BY id"
        )
    return [(int(row[0]), str(row[1]), int(row[2])) for row in rows]


async def _mark(path: Path) -> int:
    async with aiosqlite.connect(path) as conn:
        rows = await conn.execute_fetchall("SELECT through FROM document_updates_settled")
    return int(next(iter(rows))[0])


@pytest.fixture
def settle_every_3_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settles by row count only, every third row, so a test knows where the mark lies."""
    monkeypatch.setattr(sqlite, "SETTLE_ROWS", 3)
    monkeypatch.setattr(sqlite, "SETTLE_INTERVAL_S", 3600.0)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "log.db"


@pytest.fixture
async def store(path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(str(path))
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def _append_one_by_one(store: SqliteStore, room_id: str, updates: list[bytes]) -> None:
    for update in updates:
        await store.append_updates([(room_id, update, "u1")])


@pytest.mark.usefixtures("settle_every_3_rows")
async def test_a_room_reads_its_settled_rows_and_its_tail_in_order_once(
    store: SqliteStore, path: Path
) -> None:
    """Rows of two rooms, interleaved, some settled and some in the tail: each room loads
    its own, in the order they were logged, none twice."""
    # Two rows an append, settled every second append: the seventh's pair is the tail.
    mine, my_text = _edits(7, "a")
    theirs, their_text = _edits(7, "b")
    for my_update, their_update in zip(mine, theirs, strict=True):
        await store.append_updates([(ROOM, my_update, "u1"), (OTHER, their_update, "u2")])
    rows = await _log_rows(path)
    assert {settled for _, _, settled in rows} == {0, 1}, "both sides of the mark"
    mark = await _mark(path)
    assert all(settled == (row_id <= mark) for row_id, _, settled in rows)
    assert (await store.load(ROOM)).updates == mine
    assert (await store.load(OTHER)).updates == theirs
    assert _text_of(None, (await store.load(ROOM)).updates) == my_text
    assert _text_of(None, (await store.load(OTHER)).updates) == their_text


@pytest.mark.usefixtures("settle_every_3_rows")
async def test_compaction_folds_settled_and_tail_rows_and_keeps_the_other_rooms(
    store: SqliteStore, path: Path
) -> None:
    """A compaction with rows on both sides of the mark deletes all of the room's rows it
    read, and only those: the other room's rows, settled or not, stay."""
    mine, my_text = _edits(4, "a")
    theirs, _ = _edits(4, "b")
    # Three rows each, settled; then one of each, in the tail.
    await _append_one_by_one(store, OTHER, theirs[:3])
    await _append_one_by_one(store, ROOM, mine[:3])
    await store.append_updates([(ROOM, mine[3], "u1"), (OTHER, theirs[3], "u2")])
    assert [(room, settled) for _, room, settled in await _log_rows(path)][-2:] == [
        (ROOM, 0),
        (OTHER, 0),
    ]
    await store.compact(ROOM, b"\x00\x00")
    assert [(room, settled) for _, room, settled in await _log_rows(path)] == [
        (OTHER, 1),
        (OTHER, 1),
        (OTHER, 1),
        (OTHER, 0),
    ]
    stored = await store.load(ROOM)
    assert stored.updates == []
    assert _text_of(stored.snapshot, stored.updates) == my_text
    assert (await store.load(OTHER)).updates == theirs


@pytest.mark.usefixtures("settle_every_3_rows")
async def test_a_purge_deletes_the_notes_rows_in_the_tail_too(
    store: SqliteStore, path: Path
) -> None:
    """A purged note's rows go, settled or not; its tombstone refuses new ones."""
    mine, _ = _edits(5)
    await store.create_note("w1", "n1", NoteFields(title="gone"), actor="u1", at=AT)
    await _append_one_by_one(store, ROOM, mine)
    assert {settled for _, _, settled in await _log_rows(path)} == {0, 1}
    assert await store.purge_note("w1", "n1", at=AT)
    assert await _log_rows(path) == []
    assert (await store.load(ROOM)).updates == []
    await store.append_updates([(ROOM, mine[0], "u1")])
    assert await _log_rows(path) == []


async def test_the_tail_settles_after_the_interval_and_on_the_next_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without enough rows, the tail waits for the interval; a tail left behind by a stopped
    store is settled when the store next opens, before any append."""
    path = tmp_path / "log.db"
    updates, text = _edits(4)
    monkeypatch.setattr(sqlite, "SETTLE_ROWS", 1_000)
    monkeypatch.setattr(sqlite, "SETTLE_INTERVAL_S", 3600.0)
    store = SqliteStore(str(path))
    await store.open()
    try:
        await _append_one_by_one(store, ROOM, updates[:2])
        assert [settled for _, _, settled in await _log_rows(path)] == [0, 0]
        monkeypatch.setattr(sqlite, "SETTLE_INTERVAL_S", 0.0)
        await _append_one_by_one(store, ROOM, updates[2:3])
        assert [settled for _, _, settled in await _log_rows(path)] == [1, 1, 1]
        monkeypatch.setattr(sqlite, "SETTLE_INTERVAL_S", 3600.0)
        await _append_one_by_one(store, ROOM, updates[3:])
    finally:
        await store.close()
    assert [settled for _, _, settled in await _log_rows(path)] == [1, 1, 1, 0]
    reopened = SqliteStore(str(path))
    await reopened.open()
    try:
        rows = await _log_rows(path)
        assert [settled for _, _, settled in rows] == [1, 1, 1, 1]
        assert await _mark(path) == rows[-1][0]
        assert _text_of(None, (await reopened.load(ROOM)).updates) == text
    finally:
        await reopened.close()


async def test_the_mark_never_moves_down_when_compaction_deleted_the_newest_rows(
    tmp_path: Path,
) -> None:
    """Compaction deletes a room's newest rows; the next settle keeps the mark where it was,
    and the next row (a higher id) lands in the tail and loads."""
    path = tmp_path / "log.db"
    updates, text = _edits(3)
    store = SqliteStore(str(path))
    await store.open()
    try:
        await _append_one_by_one(store, ROOM, updates[:2])
        await store.close()
        await store.open()
        mark = await _mark(path)
        assert mark == (await _log_rows(path))[-1][0]
        await store.compact(ROOM, b"\x00\x00")
        await store.close()
        await store.open()
        assert await _mark(path) == mark
        await store.append_updates([(ROOM, updates[2], "u1")])
        stored = await store.load(ROOM)
        assert _text_of(stored.snapshot, stored.updates) == text
        assert [row_id > mark for row_id, _, _ in await _log_rows(path)] == [True]
    finally:
        await store.close()


async def test_a_log_written_before_0012_is_settled_and_loads(tmp_path: Path) -> None:
    """Rows logged at 0011 are settled by the migration, the mark is above them, and new
    rows join the same room's log after them."""
    path = tmp_path / "log.db"
    updates, text = _edits(4)

    async def seed(conn: aiosqlite.Connection) -> None:
        await conn.executemany(
            "INSERT INTO document_updates (room_id, data, created_at) VALUES (?, ?, ?)",
            [(ROOM, update, AT) for update in updates[:3]],
        )

    async with sqlite_store_from(path, 12, seed) as store:
        rows = await _log_rows(path)
        assert [settled for _, _, settled in rows] == [1, 1, 1]
        assert await _mark(path) == rows[-1][0]
        await store.append_updates([(ROOM, updates[3], "u1")])
        assert (await store.load(ROOM)).updates == updates
        assert _text_of(None, updates) == text


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT id, data FROM room_updates WHERE room_id = ? ORDER BY id",
        "SELECT id, CASE WHEN writer = 7 THEN NULL ELSE data END FROM room_updates "
        "WHERE room_id = ? ORDER BY id",
        "SELECT 1 FROM (SELECT 1 FROM room_updates WHERE room_id = ? LIMIT 1)",
        "SELECT min(created_at) FROM room_updates WHERE room_id = ?",
        "DELETE FROM document_updates WHERE id IN "
        "(SELECT id FROM room_updates WHERE room_id = ? AND id <= 1000000)",
        "DELETE FROM document_updates WHERE id IN (SELECT id FROM room_updates WHERE room_id = ?)",
    ],
    ids=[
        "load",
        "compaction's read",
        "exists",
        "first stored",
        "compaction's delete",
        "purge's delete",
    ],
)
async def test_a_rooms_statements_read_the_index_and_the_tail_never_the_whole_log(
    tmp_path: Path, statement: str
) -> None:
    """What SQLite plans for the store's per-room statements: the partial index for the
    settled rows, a rowid range for the tail, and no scan of the log."""
    store = SqliteStore(str(tmp_path / "log.db"))
    await store.open()
    await store.close()
    async with aiosqlite.connect(tmp_path / "log.db") as conn:
        plan = [
            str(row[3])
            for row in await conn.execute_fetchall(f"EXPLAIN QUERY PLAN {statement}", (ROOM,))
        ]
    assert any("USING INDEX document_updates_room_id_id_settled (room_id=?" in p for p in plan)
    assert any("USING INTEGER PRIMARY KEY (rowid>?" in p for p in plan)
    assert not [p for p in plan if FULL_SCAN.search(p)], plan
