"""Who may read a note (`NoteAccess`), on every `CatalogStore` backend (memory, SQLite,
Postgres): its visibility and share list, kept through edits and the trash, gone with a
purge, and listings for a reader that leave out the private notes they cannot read."""

from __future__ import annotations

from typing import Any

import aiosqlite
import asyncpg
import pytest

from collab.store import Database, PostgresStore, SqliteStore
from collab.store.catalog import (
    CatalogEntry,
    CatalogQuery,
    NoteAccess,
    NoteFields,
    NoteReading,
    Priority,
    SortKey,
    Visibility,
)
from tests.support.store_backends import Backend

WS = "w1"
PRIVATE = Visibility.PRIVATE
WORKSPACE = Visibility.WORKSPACE


def at(second: int) -> str:
    """A timestamp `second` seconds into a fixed day, as the store formats them."""
    return f"2026-12-06T10:{second // 60:02d}:{second % 60:02d}.000000+00:00"


async def index(
    store: Database, note_id: str, second: int = 0, *, actor: str = "u1", **fields: Any
) -> CatalogEntry:
    indexed = await store.index_note(
        WS, note_id, NoteFields(**fields), clock=1, actor=actor, at=at(second)
    )
    assert indexed.entry is not None
    return indexed.entry


async def share(
    store: Database, note_id: str, users: dict[str, str] | None = None
) -> NoteAccess | None:
    """Make the note private, listed to `users`."""
    return await store.set_access(WS, note_id, visibility=PRIVATE, users=users or {}, at=at(59))


async def ids(store: Database, **query: Any) -> list[str]:
    page = await store.list_notes(WS, CatalogQuery(**query))
    return [entry.note_id for entry in page.entries]


async def share_rows(backend: Backend, store: Database, note_id: str) -> int | None:
    """How many rows of `note_shares` the note has (None on memory, which has no table)."""
    location = backend.locations[id(store)]
    if isinstance(store, SqliteStore):
        async with aiosqlite.connect(location) as conn:
            rows = await conn.execute_fetchall(
                "SELECT count(*) FROM note_shares WHERE workspace_id = ? AND note_id = ?",
                (WS, note_id),
            )
            return int(next(iter(rows))[0])
    if isinstance(store, PostgresStore):
        conn = await asyncpg.connect(location)
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM note_shares WHERE workspace_id = $1 AND note_id = $2",
                    WS,
                    note_id,
                )
            )
        finally:
            await conn.close()
    return None


# --- access -------------------------------------------------------------------------------


async def test_a_new_note_is_read_by_the_workspace(store: Database) -> None:
    """A note starts as a workspace note with an empty list, its creator recorded."""
    entry = await index(store, "n1", actor="u7")

    assert entry.visibility is WORKSPACE
    assert entry.to_json()["visibility"] == "workspace"
    assert await store.get_access(WS, "n1") == NoteAccess(WORKSPACE, {}, "u7")


async def test_access_set_is_read_back_and_replaced_whole(store: Database) -> None:
    """`set_access` replaces the visibility and the whole list and moves nothing else."""
    await index(store, "n1", 1, actor="u1", title="Plan")
    before = await store.get_note(WS, "n1")

    users = {"u2": "editor", "u3": "viewer"}
    written = await share(store, "n1", users)

    assert written == NoteAccess(PRIVATE, users, "u1")
    assert await store.get_access(WS, "n1") == written
    entry = await store.get_note(WS, "n1")
    assert entry is not None
    assert before is not None
    assert entry.visibility is PRIVATE
    assert entry.to_json()["visibility"] == "private"
    assert entry.updated_at == before.updated_at
    assert entry.fields == before.fields

    replaced = await store.set_access(
        WS, "n1", visibility=WORKSPACE, users={"u4": "viewer"}, at=at(60)
    )
    assert replaced == NoteAccess(WORKSPACE, {"u4": "viewer"}, "u1")
    assert await store.get_access(WS, "n1") == replaced
    assert await ids(store, reader="u9") == ["n1"]


async def test_access_of_a_note_without_a_row_is_none(store: Database) -> None:
    """No row (never created): nothing to read, nothing written."""
    assert await store.get_access(WS, "never") is None
    assert await share(store, "never", {"u2": "viewer"}) is None
    assert await store.get_note(WS, "never") is None
    assert await store.get_access(WS, "never") is None


async def test_edits_and_the_trash_keep_the_access(store: Database) -> None:
    """Re-indexing (changed or not), trashing and restoring leave the access as set; a
    trashed note's access can be set too."""
    await index(store, "n1", 1, title="Plan")
    await share(store, "n1", {"u2": "viewer"})
    await store.index_note(WS, "n1", NoteFields(title="Plan 2"), clock=2, actor="u2", at=at(2))
    await store.index_notes([NoteReading(WS, "n1", NoteFields(title="Plan 2"), 3, "u2", at(3))])
    await store.trash_note(WS, "n1", at=at(4))

    trashed = await store.get_note(WS, "n1")
    assert trashed is not None
    assert trashed.visibility is PRIVATE
    assert await store.get_access(WS, "n1") == NoteAccess(PRIVATE, {"u2": "viewer"}, "u1")

    await share(store, "n1", {"u3": "editor"})
    restored = await store.restore_note(WS, "n1")
    assert restored is not None
    assert restored.visibility is PRIVATE
    assert await store.get_access(WS, "n1") == NoteAccess(PRIVATE, {"u3": "editor"}, "u1")


async def test_a_purge_deletes_the_share_list(backend: Backend, store: Database) -> None:
    """A purged note has no access left, and no row of its list stays behind."""
    await index(store, "n1")
    await index(store, "n2")
    await share(store, "n1", {"u2": "viewer", "u3": "editor"})
    await share(store, "n2", {"u2": "viewer"})
    assert await share_rows(backend, store, "n1") in (2, None)

    await store.trash_note(WS, "n1", at=at(2))
    assert await store.purge_note(WS, "n1", at=at(3))

    assert await store.get_access(WS, "n1") is None
    assert await share(store, "n1", {"u2": "viewer"}) is None
    assert await share_rows(backend, store, "n1") in (0, None)
    assert await store.get_access(WS, "n2") == NoteAccess(PRIVATE, {"u2": "viewer"}, "u1")


# --- listing for a reader -----------------------------------------------------------------


async def _mixed(store: Database) -> None:
    """pub: a workspace note; mine: private by u2; shared: private by u1, listed to u2;
    other: private by u1, listed to u3; listed-pub: a workspace note with a list."""
    day = "2026-12-{:02d}T00:00:00.000000+00:00"
    notes = [
        ("pub", "u1", "Roadmap", (), "x"),
        ("mine", "u2", "x", ("roadmap",), "y"),
        ("shared", "u1", "Roadmap plan", (), "roadmap"),
        ("other", "u1", "y", (), "roadmap"),
        ("listed-pub", "u3", "Roadmap", ("roadmap",), "z"),
    ]
    for second, (note_id, actor, title, tags, text) in enumerate(notes, start=1):
        await index(
            store,
            note_id,
            second,
            actor=actor,
            title=title,
            tags=("t", *tags),
            text=text,
            pinned=second % 2 == 0,
            priority=Priority(second % 5),
            due=day.format(second),
            due_at=day.format(second),
            assignees=("a",),
        )
    await share(store, "mine")
    await share(store, "shared", {"u2": "viewer"})
    await share(store, "other", {"u3": "editor"})
    await store.set_access(WS, "listed-pub", visibility=WORKSPACE, users={"u9": "viewer"}, at=at(9))


READABLE = {
    "u1": {"pub", "shared", "other", "listed-pub"},
    "u2": {"pub", "mine", "shared", "listed-pub"},
    "u3": {"pub", "other", "listed-pub"},
    "u9": {"pub", "listed-pub"},
    None: {"pub", "mine", "shared", "other", "listed-pub"},
}


@pytest.mark.parametrize("reader", list(READABLE))
async def test_a_reader_lists_the_private_notes_they_may_read_in_the_default_order(
    store: Database, reader: str | None
) -> None:
    """Private notes are listed for their creator and the users of their list only; a
    workspace note's list has no effect; no reader lists everything."""
    await _mixed(store)

    page = await store.list_notes(WS, CatalogQuery(reader=reader))

    assert {entry.note_id for entry in page.entries} == READABLE[reader]
    assert {e.note_id for e in page.entries if e.visibility is PRIVATE} == READABLE[reader] & {
        "mine",
        "shared",
        "other",
    }


@pytest.mark.parametrize("sort", list(SortKey))
@pytest.mark.parametrize("descending", [True, False])
async def test_every_sort_leaves_out_what_the_reader_may_not_read(
    store: Database, sort: SortKey, descending: bool
) -> None:
    """Each order, with or without a search, lists the same readable notes."""
    await _mixed(store)

    for reader in ("u2", "u3"):
        found = await ids(store, reader=reader, sort=sort, descending=descending)
        assert sorted(found) == sorted(READABLE[reader])
        searched = await ids(store, reader=reader, sort=sort, descending=descending, text="road")
        assert sorted(searched) == sorted(READABLE[reader])


@pytest.mark.parametrize(
    "query",
    [
        {"tags": ("t",)},
        {"assignee": "a"},
        {"priority": Priority(3)},
        {"pinned": False},
        {"due_before": "2026-12-31T00:00:00.000000+00:00"},
        {"due_after": "2026-12-01T00:00:00.000000+00:00"},
    ],
    ids=["tags", "assignee", "priority", "pinned", "due_before", "due_after"],
)
async def test_every_filter_leaves_out_what_the_reader_may_not_read(
    store: Database, query: dict[str, Any]
) -> None:
    await _mixed(store)

    for reader in ("u2", "u3"):
        every = set(await ids(store, **query))
        assert every
        assert set(await ids(store, reader=reader, **query)) == every & READABLE[reader]


async def test_a_search_ranks_only_what_the_reader_may_read(store: Database) -> None:
    """Across the ranks (title, tags, body), the notes the reader may not read are left out
    and the others keep their order."""
    await _mixed(store)

    every = await ids(store, text="roadmap", sort=SortKey.RELEVANCE)
    assert every == ["listed-pub", "shared", "pub", "mine", "other"]
    for reader, readable in READABLE.items():
        found = await ids(store, text="roadmap", sort=SortKey.RELEVANCE, reader=reader)
        assert found == [note for note in every if note in readable]


async def test_the_trash_leaves_out_what_the_reader_may_not_read(store: Database) -> None:
    await _mixed(store)
    for note_id in ("pub", "mine", "other"):
        await store.trash_note(WS, note_id, at=at(30))

    assert sorted(await ids(store, trashed=True, reader="u2")) == ["mine", "pub"]
    assert sorted(await ids(store, trashed=True, reader="u3")) == ["other", "pub"]
    assert sorted(await ids(store, trashed=True, reader="u9")) == ["pub"]
    assert sorted(await ids(store, trashed=True, text="roadmap", reader="u9")) == ["pub"]
    assert sorted(await ids(store, reader="u2")) == ["listed-pub", "shared"]


@pytest.mark.parametrize("sort", list(SortKey))
async def test_pages_for_a_reader_never_skip_or_repeat(store: Database, sort: SortKey) -> None:
    """Paging over a mix of private and workspace notes lists each readable note once, in
    the order of the unfiltered listing."""
    for number in range(30):
        await index(
            store,
            f"n{number:02d}",
            number,
            actor="u1" if number % 4 else "u2",
            title=f"Note {number % 7}" + (" common" if number % 2 else ""),
            tags=("common",) if number % 3 == 0 else (),
            text="common",
            pinned=number % 5 == 0,
            priority=Priority(number % 5),
        )
        if number % 3 == 1:
            await share(store, f"n{number:02d}", {"u3": "viewer"} if number % 2 else {})
    text = "common" if sort is SortKey.RELEVANCE else None
    whole = await ids(store, sort=sort, text=text, limit=100)
    access = {note_id: await store.get_access(WS, note_id) for note_id in whole}

    for reader in ("u1", "u2", "u3"):
        seen: list[str] = []
        after = None
        for _ in range(30):
            page = await store.list_notes(
                WS, CatalogQuery(text=text, sort=sort, limit=4, after=after, reader=reader)
            )
            seen += [entry.note_id for entry in page.entries]
            after = page.next_key
            if after is None:
                break
        else:
            pytest.fail("the pages never ended")
        readable = [
            note_id
            for note_id in whole
            if (found := access[note_id]) is not None and found.can_read(reader)
        ]
        assert seen == readable
        assert len(readable) < len(whole)
