"""One contract suite for every `CatalogStore` backend (memory, SQLite, Postgres)."""

from __future__ import annotations

from typing import Any

import pycrdt
import pytest

from collab.store import Database
from collab.store.catalog import (
    CatalogEntry,
    CatalogQuery,
    NoteFields,
    NoteReading,
    NoteStatus,
    Priority,
    SortKey,
)

WS = "w1"


def at(second: int) -> str:
    """A timestamp `second` seconds into a fixed day, as the store formats them."""
    return f"2026-12-06T10:{second // 60:02d}:{second % 60:02d}.000000+00:00"


def an_update(text: str = "x") -> bytes:
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    doc["t"] = pycrdt.Text(text)
    return doc.get_update()


async def index(
    store: Database,
    note_id: str,
    second: int = 0,
    *,
    clock: int = 1,
    actor: str | None = "u1",
    workspace_id: str = WS,
    **fields: Any,
) -> CatalogEntry:
    indexed = await store.index_note(
        workspace_id, note_id, NoteFields(**fields), clock=clock, actor=actor, at=at(second)
    )
    assert indexed.entry is not None
    return indexed.entry


async def ids(store: Database, **query: Any) -> list[str]:
    page = await store.list_notes(WS, CatalogQuery(**query))
    return [entry.note_id for entry in page.entries]


# --- indexing -----------------------------------------------------------------------------


async def test_the_first_index_creates_the_row_with_its_creator(store: Database) -> None:
    indexed = await store.index_note(
        WS, "n1", NoteFields(title="Plan"), clock=3, actor="u1", at=at(1)
    )

    assert indexed.created
    assert indexed.changed
    assert indexed.status is NoteStatus.ACTIVE
    entry = await store.get_note(WS, "n1")
    assert entry is not None
    assert entry.to_json() == {
        "id": "n1",
        "workspace": WS,
        "title": "Plan",
        "tags": [],
        "pinned": False,
        "priority": None,
        "due": None,
        "assignees": [],
        "excerpt": "",
        "created_at": at(1),
        "created_by": "u1",
        "updated_at": at(1),
        "updated_by": "u1",
        "trashed_at": None,
        "visibility": "workspace",
    }


async def test_a_later_index_updates_the_fields_and_keeps_the_creator(store: Database) -> None:
    await index(store, "n1", 1, title="Plan")

    indexed = await store.index_note(
        WS,
        "n1",
        NoteFields(title="Plan B", tags=("a",), priority=Priority.HIGH),
        clock=2,
        actor="u2",
        at=at(2),
    )

    assert indexed.changed
    assert not indexed.created
    entry = await store.get_note(WS, "n1")
    assert entry is not None
    assert (entry.fields.title, entry.fields.tags, entry.fields.priority) == (
        "Plan B",
        ("a",),
        Priority.HIGH,
    )
    assert (entry.created_by, entry.updated_by, entry.updated_at) == ("u1", "u2", at(2))


async def test_an_index_without_an_actor_keeps_the_last_editor(store: Database) -> None:
    await index(store, "n1", 1, actor="u1", title="a")

    entry = await index(store, "n1", 2, clock=2, actor=None, title="b")

    assert entry.updated_by == "u1"
    assert entry.updated_at == at(2)


async def test_body_only_changes_are_not_listed_changes(store: Database) -> None:
    await index(store, "n1", 1, title="a", text="one")

    indexed = await store.index_note(
        WS, "n1", NoteFields(title="a", text="two"), clock=2, actor="u1", at=at(2)
    )

    assert not indexed.changed
    assert await ids(store, text="two") == ["n1"]


async def test_an_unchanged_note_moves_only_its_clock_and_update(store: Database) -> None:
    fields = NoteFields(title="same", tags=("a",), text="body")
    await store.index_note(WS, "n1", fields, clock=1, actor="u1", at=at(1))
    await store.trash_note(WS, "n1", at=at(2))

    again = await store.index_note(WS, "n1", fields, clock=2, actor="u2", at=at(3))
    earlier = await store.index_note(WS, "n1", fields, clock=1, actor="u3", at=at(4))
    without_actor = await store.index_note(WS, "n1", fields, clock=3, actor=None, at=at(5))

    assert again.entry is not None
    assert (again.created, again.changed, again.status) == (False, False, NoteStatus.TRASHED)
    assert (again.entry.updated_at, again.entry.updated_by) == (at(3), "u2")
    assert (again.entry.created_at, again.entry.trashed_at) == (at(1), at(2))
    assert earlier.entry is None
    assert without_actor.entry is not None
    assert without_actor.entry.updated_by == "u2"
    stored = await store.get_note(WS, "n1")
    assert stored is not None
    assert (stored.updated_at, stored.updated_by) == (at(5), "u2")
    assert await ids(store, text="body", trashed=True) == ["n1"]


async def test_a_pass_over_many_notes_writes_each_as_index_note_would(store: Database) -> None:
    same = NoteFields(title="same", text="body")
    await index(store, "unchanged", 1, clock=1, title="same", text="body")
    await index(store, "edited", 2, clock=1, title="before")
    await index(store, "later", 3, clock=9, title="later")
    await index(store, "trashed", 4, clock=1, title="same", text="body")
    await store.trash_note(WS, "trashed", at=at(5))
    await index(store, "purged", 6)
    assert await store.purge_note(WS, "purged", at=at(7))
    readings = [
        NoteReading(WS, "unchanged", same, 2, "u2", at(10)),
        NoteReading(WS, "edited", NoteFields(title="after"), 2, "u2", at(11)),
        NoteReading(WS, "later", NoteFields(title="earlier"), 8, "u2", at(12)),
        NoteReading(WS, "trashed", same, 2, None, at(13)),
        NoteReading(WS, "purged", same, 2, "u2", at(14)),
        NoteReading(WS, "new", NoteFields(title="new"), 1, "u3", at(15)),
        NoteReading("w2", "unchanged", same, 1, "u4", at(16)),
    ]

    written = await store.index_notes(readings)

    assert [(w.created, w.changed, w.status) for w in written] == [
        (False, False, NoteStatus.ACTIVE),
        (False, True, NoteStatus.ACTIVE),
        (False, False, NoteStatus.ACTIVE),
        (False, False, NoteStatus.TRASHED),
        (False, False, NoteStatus.PURGED),
        (True, True, NoteStatus.ACTIVE),
        (True, True, NoteStatus.ACTIVE),
    ]
    assert [w.entry is None for w in written] == [False, False, True, False, True, False, False]
    assert [w.entry.note_id for w in written if w.entry is not None] == [
        "unchanged",
        "edited",
        "trashed",
        "new",
        "unchanged",
    ]
    assert written[0].entry is not None
    assert written[0].entry.fields == same
    assert (written[0].entry.updated_at, written[0].entry.updated_by) == (at(10), "u2")
    assert written[3].entry is not None
    assert (written[3].entry.updated_at, written[3].entry.updated_by) == (at(13), "u1")
    titles = {
        note: entry.fields.title if entry is not None else None
        for note in ("unchanged", "edited", "later", "trashed", "purged", "new")
        for entry in [await store.get_note(WS, note)]
    }
    assert titles == {
        "unchanged": "same",
        "edited": "after",
        "later": "later",
        "trashed": "same",
        "purged": None,
        "new": "new",
    }
    assert await ids(store, text="after") == ["edited"]
    assert await store.index_notes([]) == []


async def test_an_earlier_state_never_overwrites_a_later_one(store: Database) -> None:
    await index(store, "n1", 1, clock=10, title="later")

    indexed = await store.index_note(
        WS, "n1", NoteFields(title="earlier"), clock=9, actor="u2", at=at(2)
    )

    assert indexed.entry is None
    entry = await store.get_note(WS, "n1")
    assert entry is not None
    assert entry.fields.title == "later"


async def test_indexing_keeps_a_trashed_note_in_the_trash(store: Database) -> None:
    await index(store, "n1", 1)
    await store.trash_note(WS, "n1", at=at(2))

    indexed = await store.index_note(WS, "n1", NoteFields(), clock=2, actor="u1", at=at(3))

    assert indexed.status is NoteStatus.TRASHED
    assert indexed.entry is not None
    assert indexed.entry.trashed_at == at(2)


# --- lifecycle ----------------------------------------------------------------------------


async def test_status_follows_the_lifecycle(store: Database) -> None:
    room = f"{WS}/n1"
    assert await store.note_status(room) is NoteStatus.ABSENT
    await store.append_updates([(room, an_update(), None)])
    assert await store.note_status(room) is NoteStatus.ACTIVE  # content, not indexed yet
    await index(store, "n1")
    assert await store.note_status(room) is NoteStatus.ACTIVE
    await store.trash_note(WS, "n1", at=at(1))
    assert await store.note_status(room) is NoteStatus.TRASHED
    await store.restore_note(WS, "n1")
    assert await store.note_status(room) is NoteStatus.ACTIVE
    assert await store.purge_note(WS, "n1", at=at(2))
    assert await store.note_status(room) is NoteStatus.PURGED


async def test_create_refuses_an_id_that_exists_or_existed(store: Database) -> None:
    created = await store.create_note(WS, "n1", NoteFields(title="t"), actor="u1", at=at(1))
    assert created is not None
    assert created.created_by == "u1"
    assert await store.create_note(WS, "n1", NoteFields(), actor="u2", at=at(2)) is None

    await store.append_updates([(f"{WS}/edited", an_update(), None)])
    assert await store.create_note(WS, "edited", NoteFields(), actor="u1", at=at(3)) is None

    await store.purge_note(WS, "n1", at=at(4))
    assert await store.create_note(WS, "n1", NoteFields(), actor="u1", at=at(5)) is None
    assert await store.create_note("w2", "n1", NoteFields(), actor="u1", at=at(5)) is not None


async def test_trash_and_restore_move_a_note_between_the_lists(store: Database) -> None:
    await index(store, "n1", 1)
    await index(store, "n2", 2)

    trashed = await store.trash_note(WS, "n1", at=at(3))
    again = await store.trash_note(WS, "n1", at=at(4))

    assert trashed is not None
    assert again is not None
    assert again.trashed_at == at(3)
    assert await ids(store) == ["n2"]
    assert await ids(store, trashed=True) == ["n1"]
    restored = await store.restore_note(WS, "n1")
    assert restored is not None
    assert restored.trashed_at is None
    assert sorted(await ids(store)) == ["n1", "n2"]
    assert await store.trash_note(WS, "never", at=at(5)) is None
    assert await store.restore_note(WS, "never") is None


async def test_purge_removes_content_and_row_and_keeps_them_out(store: Database) -> None:
    room = f"{WS}/n1"
    await store.append_updates([(room, an_update("a"), None)])
    await store.compact(room, an_update("b"))
    await store.append_updates([(room, an_update("c"), None)])
    await index(store, "n1", 1, title="secret", tags=("t",), text="body words")

    assert await store.purge_note(WS, "n1", at=at(2))

    assert (await store.load(room)).is_empty
    assert await store.get_note(WS, "n1") is None
    assert await ids(store) == []
    assert await ids(store, text="body") == []
    assert await ids(store, tags=("t",)) == []
    # A client still holding the note sends it again: nothing comes back.
    await store.append_updates(
        [(room, an_update("offline edit"), None), (f"{WS}/n2", an_update(), None)]
    )
    await store.compact(room, an_update("offline state"))
    assert (await store.load(room)).is_empty
    assert not (await store.load(f"{WS}/n2")).is_empty
    indexed = await store.index_note(WS, "n1", NoteFields(), clock=99, actor="u1", at=at(3))
    assert indexed.entry is None
    assert indexed.status is NoteStatus.PURGED
    assert await store.get_note(WS, "n1") is None
    assert not await store.purge_note(WS, "n1", at=at(4))


async def test_purging_what_never_existed_leaves_no_tombstone(store: Database) -> None:
    assert not await store.purge_note(WS, "never", at=at(1))
    assert await store.note_status(f"{WS}/never") is NoteStatus.ABSENT


async def test_trashed_before_lists_the_oldest_trash_first(store: Database) -> None:
    for number, second in ((1, 30), (2, 10), (3, 20)):
        await index(store, f"n{number}")
        await store.trash_note(WS, f"n{number}", at=at(second))
    await index(store, "kept")

    assert await store.trashed_before(at(25)) == [f"{WS}/n2", f"{WS}/n3"]
    assert await store.trashed_before(at(25), limit=1) == [f"{WS}/n2"]


async def test_rooms_to_index_lists_stored_notes_without_rows(store: Database) -> None:
    for room in (f"{WS}/a", f"{WS}/b", f"{WS}/c", "w2/a"):
        await store.append_updates([(room, an_update(), None)])
    await store.compact(f"{WS}/b", an_update())
    await index(store, "a")
    await store.purge_note(WS, "c", at=at(1))

    assert await store.rooms_to_index() == [f"{WS}/b", "w2/a"]
    assert await store.rooms_to_index(workspace_id=WS) == [f"{WS}/b"]
    assert await store.rooms_to_index(everything=True) == [f"{WS}/a", f"{WS}/b", "w2/a"]
    assert await store.rooms_to_index(everything=True, after=f"{WS}/a", limit=1) == [f"{WS}/b"]
    assert await store.first_stored_at(f"{WS}/b") is not None
    assert await store.first_stored_at(f"{WS}/never") is None


# --- listing ------------------------------------------------------------------------------


async def test_default_order_is_pinned_first_then_most_recently_updated(store: Database) -> None:
    await index(store, "old", 1)
    await index(store, "pinned-old", 2, pinned=True)
    await index(store, "new", 3)
    await index(store, "other-workspace", 4, workspace_id="w2")

    assert await ids(store) == ["pinned-old", "new", "old"]


async def test_every_filter_must_match(store: Database) -> None:
    await index(store, "a", 1, tags=("x", "y"), assignees=("u1",), priority=Priority.HIGH)
    await index(store, "b", 2, tags=("x",), assignees=("u2",), pinned=True)
    await index(
        store, "c", 3, tags=("y",), due="2026-12-24", due_at="2026-12-24T00:00:00.000000+00:00"
    )

    assert await ids(store, tags=("x",)) == ["b", "a"]
    assert await ids(store, tags=("x", "y")) == ["a"]
    assert await ids(store, tags=("z",)) == []
    assert await ids(store, assignee="u2") == ["b"]
    assert await ids(store, pinned=True) == ["b"]
    assert await ids(store, pinned=False) == ["c", "a"]
    assert await ids(store, priority=Priority.HIGH) == ["a"]
    assert await ids(store, due_before="2026-12-25T00:00:00.000000+00:00") == ["c"]
    assert await ids(store, due_before="2026-12-24T00:00:00.000000+00:00") == []
    assert await ids(store, due_after="2026-12-24T00:00:00.000000+00:00") == ["c"]
    assert await ids(store, due_after="2026-12-24T00:00:00.000001+00:00") == []


async def test_each_sort_in_both_directions(store: Database) -> None:
    day = "2026-12-{:02d}T00:00:00.000000+00:00"
    await index(
        store, "a", 3, title="banana", priority=Priority.LOW, due_at=day.format(2), due="2026-12-02"
    )
    await index(store, "b", 1, title="Apple", priority=Priority.URGENT)
    await index(
        store,
        "c",
        2,
        title="cherry",
        priority=Priority.MEDIUM,
        due_at=day.format(1),
        due="2026-12-01",
    )

    def query(sort: SortKey, descending: bool) -> dict[str, Any]:
        return {"sort": sort, "descending": descending}

    assert await ids(store, **query(SortKey.UPDATED, True)) == ["a", "c", "b"]
    assert await ids(store, **query(SortKey.UPDATED, False)) == ["b", "c", "a"]
    assert await ids(store, **query(SortKey.TITLE, False)) == ["b", "a", "c"]
    assert await ids(store, **query(SortKey.TITLE, True)) == ["c", "a", "b"]
    assert await ids(store, **query(SortKey.PRIORITY, True)) == ["b", "c", "a"]
    assert await ids(store, **query(SortKey.PRIORITY, False)) == ["a", "c", "b"]
    # Without a due date, last either way.
    assert await ids(store, **query(SortKey.DUE, False)) == ["c", "a", "b"]
    assert await ids(store, **query(SortKey.DUE, True)) == ["a", "c", "b"]
    created = await ids(store, **query(SortKey.CREATED, True))
    assert created == ["a", "c", "b"]


@pytest.mark.parametrize(
    ("sort", "descending"),
    [
        (SortKey.DEFAULT, True),
        (SortKey.UPDATED, False),
        (SortKey.TITLE, False),
        (SortKey.DUE, False),
        (SortKey.DUE, True),
        (SortKey.PRIORITY, True),
        (SortKey.RELEVANCE, True),
    ],
)
async def test_pages_list_every_note_once_while_notes_are_added(
    store: Database, sort: SortKey, descending: bool
) -> None:
    """Keyset pages: notes added between pages (at the front, in the middle, at the end of
    the order) never make an original note repeat or go missing."""
    day = "2026-12-{:02d}T00:00:00.000000+00:00"
    for number in range(23):
        await index(
            store,
            f"o{number:02d}",
            number,
            title=f"Note {number % 7}",
            pinned=number % 5 == 0,
            priority=Priority(number % 5),
            due_at=day.format(1 + number % 4) if number % 3 else None,
            text="common " + "word " * (number % 4),
        )
    text = "common" if sort is SortKey.RELEVANCE else None
    seen: list[str] = []
    after = None
    added = 0
    for _ in range(40):  # 23 notes in pages of 5, with 2 more per page: done in 8 pages
        page = await store.list_notes(
            WS, CatalogQuery(text=text, sort=sort, descending=descending, limit=5, after=after)
        )
        seen += [entry.note_id for entry in page.entries]
        if page.next_key is None:
            break
        after = page.next_key
        for _ in range(2):
            await index(
                store,
                f"new{added:02d}",
                100 + added,
                title=f"Note {added % 9}",
                pinned=added % 2 == 0,
                priority=Priority(added % 5),
                due_at=day.format(1 + added % 5),
                text="common word",
            )
            added += 1
    else:
        pytest.fail("the pages never ended")
    originals = [note for note in seen if note.startswith("o")]
    assert sorted(originals) == [f"o{number:02d}" for number in range(23)]
    assert len(seen) == len(set(seen))


# --- search -------------------------------------------------------------------------------


async def test_search_matches_every_term_as_a_word_prefix(store: Database) -> None:
    await index(store, "a", 1, title="Quarterly planning", text="budget review")
    await index(store, "b", 2, title="Groceries", tags=("planning",), text="milk")
    await index(store, "c", 3, title="Retro", text="the read_update function is slow")

    assert sorted(await ids(store, text="plan")) == ["a", "b"]
    assert await ids(store, text="plan budget") == ["a"]
    assert await ids(store, text="PLANNING milk") == ["b"]
    assert await ids(store, text="read_update") == ["c"]
    assert await ids(store, text="lanning") == []


async def test_search_ranks_title_above_tags_above_body(store: Database) -> None:
    await index(store, "body", 1, title="x", text="roadmap")
    await index(store, "title", 2, title="Roadmap", text="y")
    await index(store, "tag", 3, title="z", tags=("roadmap",))
    for number in range(10):  # notes without the term: it is a rare word, as in real use
        await index(store, f"other{number}", 4 + number, title="meeting", text="notes")

    assert await ids(store, text="roadmap", sort=SortKey.RELEVANCE) == ["title", "tag", "body"]


async def test_search_ranks_every_term_in_the_title_then_the_tags_then_partly_then_body(
    store: Database,
) -> None:
    """`SearchRank` for two terms; within a rank, the note indexed first comes last, and a
    later edit does not move a note within its rank."""
    await index(store, "body-old", 1, title="x", text="alpha beta")
    await index(store, "partly", 2, title="Alpha", text="beta")
    await index(store, "tags", 3, title="Alpha", tags=("beta",))
    await index(store, "title-old", 4, title="Alpha beta")
    await index(store, "title-new", 5, title="Beta alphabet")
    await index(store, "body-new", 6, title="y", text="betamax alphas")
    await index(store, "missing", 7, title="Alpha", text="gamma")
    await index(store, "body-old", 8, clock=2, title="x", text="alpha beta, edited")

    assert await ids(store, text="alpha beta", sort=SortKey.RELEVANCE) == [
        "title-new",
        "title-old",
        "tags",
        "partly",
        "body-new",
        "body-old",
    ]


async def test_relevance_pages_cross_ranks_without_repeating_or_skipping(
    store: Database,
) -> None:
    for number in range(12):
        where = number % 3
        await index(
            store,
            f"n{number:02d}",
            number,
            title="Roadmap" if where == 0 else "x",
            tags=("roadmap",) if where == 1 else (),
            text="roadmap" if where == 2 else "",
        )
    whole = await ids(store, text="roadmap", sort=SortKey.RELEVANCE)

    seen: list[str] = []
    after = None
    for _ in range(20):
        page = await store.list_notes(
            WS, CatalogQuery(text="roadmap", sort=SortKey.RELEVANCE, limit=5, after=after)
        )
        seen += [entry.note_id for entry in page.entries]
        after = page.next_key
        if after is None:
            break
    assert seen == whole
    assert whole[:4] == ["n09", "n06", "n03", "n00"]
    assert sorted(whole) == [f"n{number:02d}" for number in range(12)]


async def test_search_matches_accented_words_as_written(store: Database) -> None:
    """Words are case-folded and nothing else: no backend folds diacritics on its own."""
    await index(store, "accented", 1, title="Café menu")
    await index(store, "plain", 2, title="Cafe menu")

    assert await ids(store, text="café", sort=SortKey.RELEVANCE) == ["accented"]
    assert await ids(store, text="CAFE", sort=SortKey.RELEVANCE) == ["plain"]
    assert await ids(store, text="menu", sort=SortKey.RELEVANCE) == ["plain", "accented"]


async def test_search_splits_words_where_python_does_on_every_backend(store: Database) -> None:
    """Words are what `search_words` makes of the text, on every backend. SQLite's own
    tokenizer calls some code points separators that Python calls letters (U+19B0..U+19C9,
    New Tai Lue vowel signs, and U+1CF2/3: letters since Unicode 7 or 8); it must not split
    the words it is given at them."""
    await index(store, "tai-lue", 1, title="q\u19b0q kᦵ\u19c8x")

    assert await ids(store, text="q\u19b0q") == ["tai-lue"]
    # A term matches where a word begins, never in a word's middle.
    assert await ids(store, text="\u19b0q") == []
    assert await ids(store, text="x") == []
    assert await ids(store, text="kᦵ\u19c8x") == ["tai-lue"]


@pytest.mark.parametrize(
    "text",
    ['"', "*", "AND", "a OR", "NEAR(", "col:x", "-", "'); DROP TABLE notes; --", "\\", "ü^", ""],
)
async def test_any_query_text_is_answered(store: Database, text: str) -> None:
    await index(store, "a", 1, title="and or near col x drop table notes")

    page = await store.list_notes(WS, CatalogQuery(text=text))

    assert all(entry.note_id == "a" for entry in page.entries)


async def test_search_leaves_out_the_trash_and_other_workspaces(store: Database) -> None:
    await index(store, "a", 1, title="alpha")
    await index(store, "b", 2, title="alpha")
    await index(store, "c", 3, title="alpha", workspace_id="w2")
    await store.trash_note(WS, "b", at=at(4))

    assert await ids(store, text="alpha") == ["a"]
    assert await ids(store, text="alpha", trashed=True) == ["b"]
