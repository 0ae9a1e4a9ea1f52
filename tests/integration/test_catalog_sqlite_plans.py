"""How SQLite reads a page of the catalog: along an index, until the page is full, never a
sort of every match (which at 100,000 notes costs hundreds of milliseconds)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from collab.store import SqliteStore, sqlite_catalog
from collab.store.catalog import CatalogQuery, NoteFields, NoteReading, SortKey

WS = "w1"
NOTES = 400


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


@pytest.mark.parametrize("text", ["body", "zebra"], ids=["in every note", "in one note"])
async def test_a_search_in_another_order_walks_that_orders_index(path: Path, text: str) -> None:
    found = await plans(path, CatalogQuery(text=text, sort=SortKey.UPDATED))

    assert len(found) == 1
    assert "USING INDEX notes_updated" in found[0], found[0]
    # The matches gathered once, not the full-text table asked again for each row.
    assert "LIST SUBQUERY" in found[0], found[0]
    assert "TEMP B-TREE" not in found[0], found[0]


async def test_each_relevance_rank_is_read_in_the_full_text_index_order(path: Path) -> None:
    found = await plans(path, CatalogQuery(text="body words", sort=SortKey.RELEVANCE))

    assert found
    for plan in found:
        assert "VIRTUAL TABLE" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
