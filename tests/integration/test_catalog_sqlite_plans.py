"""How SQLite reads a page of the catalog: along an index, until the page is full, never a
sort of every match (which at 100,000 notes costs hundreds of milliseconds)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from collab.store import SqliteStore, sqlite_catalog
from collab.store.catalog import CatalogQuery, NoteFields, NoteReading, SortKey, Visibility

WS = "w1"
NOTES = 400
# Listings for no one in particular and for a user (private notes they may not read left out).
READERS = pytest.mark.parametrize("reader", [None, "u1"], ids=["everyone", "a reader"])


class _Recording:
    """An aiosqlite connection that keeps the statements run through it."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.statements.append((sql, tuple(params)))
        return await self.conn.execute_fetchall(sql, params)


@pytest.fixture
async def path(tmp_path: Path) -> Path:
    path = tmp_path / "plans.db"
    store = SqliteStore(str(path))
    await store.open()
    try:
        await store.index_notes(
            [
                NoteReading(
                    WS,
                    f"n{number:04d}",
                    NoteFields(
                        title=f"Note {number}" + (" zebra" if number == 7 else ""),
                        tags=("common",),
                        text="body words " * 20,
                    ),
                    1,
                    "u1",
                    f"2026-12-06T10:00:{number % 60:02d}.{number:06d}+00:00",
                )
                for number in range(NOTES)
            ]
        )
        # One note in ten private, by another user, half of them shared with others.
        for number in range(0, NOTES, 10):
            await store.set_access(
                WS,
                f"n{number:04d}",
                visibility=Visibility.PRIVATE,
                users={"u2": "viewer"} if number % 20 else {},
                at="2026-12-06T11:00:00.000000+00:00",
            )
    finally:
        await store.close()
    async with aiosqlite.connect(path) as conn:
        await conn.execute("ANALYZE")
    return path


async def plans(path: Path, query: CatalogQuery) -> list[str]:
    """The query plan of each statement `list_notes` runs for `query`, one line per step."""
    async with aiosqlite.connect(path) as conn:
        recording = _Recording(conn)
        await sqlite_catalog.list_notes(recording, WS, query)  # type: ignore[arg-type]
        found = []
        for sql, params in recording.statements:
            rows = await conn.execute_fetchall("EXPLAIN QUERY PLAN " + sql, params)
            found.append("\n".join(str(row[3]) for row in rows))
    return found


@READERS
@pytest.mark.parametrize("text", ["body", "zebra"], ids=["in every note", "in one note"])
async def test_a_search_in_another_order_walks_that_orders_index(
    path: Path, text: str, reader: str | None
) -> None:
    found = await plans(path, CatalogQuery(text=text, sort=SortKey.UPDATED, reader=reader))

    assert len(found) == 1
    assert "USING INDEX notes_updated" in found[0], found[0]
    # The matches gathered once, not the full-text table asked again for each row.
    assert "LIST SUBQUERY" in found[0], found[0]
    assert "TEMP B-TREE" not in found[0], found[0]


@READERS
async def test_each_relevance_rank_is_read_in_the_full_text_index_order(
    path: Path, reader: str | None
) -> None:
    found = await plans(
        path, CatalogQuery(text="body words", sort=SortKey.RELEVANCE, reader=reader)
    )

    assert found
    for plan in found:
        assert "VIRTUAL TABLE" in plan, plan
        assert "TEMP B-TREE" not in plan, plan


@pytest.mark.parametrize(
    ("sort", "index"),
    [
        (SortKey.DEFAULT, "notes_default"),
        (SortKey.UPDATED, "notes_updated"),
        (SortKey.CREATED, "notes_created"),
        (SortKey.DUE, "notes_due_last"),
        (SortKey.PRIORITY, "notes_priority"),
        (SortKey.TITLE, "notes_title"),
    ],
)
@pytest.mark.parametrize("trashed", [False, True], ids=["notes", "trash"])
async def test_a_readers_listing_walks_its_orders_index_and_looks_up_the_share_list(
    path: Path, sort: SortKey, index: str, trashed: bool
) -> None:
    """The private notes a reader may not read are left out as the index is walked (each
    one's list found by its primary key), not by a sort of what is left."""
    found = await plans(path, CatalogQuery(sort=sort, trashed=trashed, reader="u1"))

    assert len(found) == 1
    assert f"USING INDEX {index}" in found[0], found[0]
    assert "note_shares" in found[0], found[0]
    assert "TEMP B-TREE" not in found[0], found[0]
