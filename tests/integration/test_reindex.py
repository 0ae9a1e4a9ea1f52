"""`collab reindex`: the catalog rebuilt from the stored documents, by the real command."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from pycrdt import Doc, Map

from collab.store import SqliteStore
from collab.store.catalog import NoteFields


def titled(title: str) -> bytes:
    doc: Doc[Any] = Doc()
    doc.get("meta", type=Map)["title"] = title
    return doc.get_update()


async def reindex(path: Path, *extra: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "collab",
        "reindex",
        "--database-url",
        f"sqlite:///{path}",
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def test_reindex_rebuilds_rows_from_stored_documents(tmp_path: Path) -> None:
    path = tmp_path / "collab.db"
    store = SqliteStore(str(path))
    await store.open()
    await store.append_updates([("w1/a", titled("Alpha"), None), ("w2/b", titled("Beta"), None)])
    # A row gone stale (written by an older version, say), with the document's clock.
    await store.index_note(
        "w1", "a", NoteFields(title="stale"), clock=0, actor="u1", at="2026-01-01T00:00:00+00:00"
    )
    await store.close()

    code, output = await reindex(path, "--workspace", "w1")
    assert (code, output.strip()) == (0, "collab: reindexed 1 notes of workspace 'w1'")
    code, output = await reindex(path)
    assert (code, output.strip()) == (0, "collab: reindexed 2 notes of every workspace")

    await store.open()
    try:
        first = await store.get_note("w1", "a")
        second = await store.get_note("w2", "b")
    finally:
        await store.close()
    assert first is not None
    assert first.fields.title == "Alpha"
    assert first.created_by == "u1"
    assert first.updated_by == "u1"
    assert second is not None
    assert second.fields.title == "Beta"
    assert second.created_by is None


async def test_reindex_reports_a_store_it_cannot_open(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    code, output = await reindex(blocker / "collab.db")

    assert code == 1
    assert output.startswith("collab: reindexing failed: SQLite store")
