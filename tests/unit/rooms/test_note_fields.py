"""Reading a note's catalog fields from its document: every value checked and bounded."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from collab.rooms.note_fields import (
    MAX_SEARCH_CHARS,
    MAX_TAGS,
    MAX_TITLE_CHARS,
    body_text,
    note_content,
    note_fields,
    parse_due,
)
from collab.store.catalog import NoteFields, Priority


def doc_with(**meta: Any) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    fields = doc.get("meta", type=Map)
    for key, value in meta.items():
        fields[key] = value
    return doc


def test_an_empty_document_has_empty_fields() -> None:
    assert note_fields(Doc()) == NoteFields()


def test_well_formed_meta_is_read_as_written() -> None:
    doc = doc_with(
        title="Plan",
        tags=Array(["a", "b"]),
        pinned=True,
        priority="urgent",
        due="2026-12-24T10:00:00+01:00",
        assignees=Array(["u1", "u2"]),
    )

    fields = note_fields(doc)

    assert fields.title == "Plan"
    assert fields.tags == ("a", "b")
    assert fields.pinned
    assert fields.priority is Priority.URGENT
    assert fields.due == "2026-12-24T10:00:00+01:00"
    assert fields.due_at == "2026-12-24T09:00:00.000000+00:00"
    assert fields.assignees == ("u1", "u2")


def test_a_title_kept_as_text_is_read_as_its_string() -> None:
    assert note_fields(doc_with(title=Text("Shared title"))).title == "Shared title"


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"title": 5}, NoteFields()),
        ({"title": "a\x00b\u2028c\n  d"}, NoteFields(title="a b c d")),
        ({"title": "x" * 10_000}, NoteFields(title="x" * MAX_TITLE_CHARS)),
        ({"pinned": "true"}, NoteFields()),
        ({"pinned": 1}, NoteFields()),
        ({"priority": "HIGH"}, NoteFields()),
        ({"priority": "none"}, NoteFields()),
        ({"priority": 3}, NoteFields()),
        ({"due": "soon"}, NoteFields()),
        ({"due": 20261224}, NoteFields()),
        ({"tags": "a,b"}, NoteFields()),
        ({"assignees": {"u1": True}}, NoteFields()),
    ],
)
def test_values_of_the_wrong_type_are_dropped_or_cleaned(
    meta: dict[str, Any], expected: NoteFields
) -> None:
    assert note_fields(doc_with(**meta)) == expected


def test_lists_keep_their_first_distinct_strings_within_bounds() -> None:
    tags = Array(["a", 1, "", "a", "  b  ", "c" * 100, True, *[f"t{i}" for i in range(100)]])

    fields = note_fields(doc_with(tags=tags))

    assert fields.tags[:3] == ("a", "b", "c" * 64)
    assert len(fields.tags) == MAX_TAGS


def test_a_huge_array_costs_no_more_than_its_first_entries() -> None:
    doc = doc_with(assignees=Array([1] * 1000 + ["late"]))  # "late" is past what is read

    assert note_fields(doc).assignees == ()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-12-24", ("2026-12-24", "2026-12-24T00:00:00.000000+00:00")),
        ("2026-12-24T10:30:00Z", ("2026-12-24T10:30:00+00:00", "2026-12-24T10:30:00.000000+00:00")),
        ("2026-12-24T10:30", ("2026-12-24T10:30:00+00:00", "2026-12-24T10:30:00.000000+00:00")),
        (
            "2026-12-24T23:30:00-02:00",
            ("2026-12-24T23:30:00-02:00", "2026-12-25T01:30:00.000000+00:00"),
        ),
        ("2026-02-30", None),
        # Valid as written, out of datetime's range once in UTC.
        ("9999-12-31T23:00:00-05:00", None),
        ("0001-01-01T00:00:00+05:00", None),
        (
            "9999-12-31T23:00:00+05:00",
            ("9999-12-31T23:00:00+05:00", "9999-12-31T18:00:00.000000+00:00"),
        ),
        ("24/12/2026", None),
        ("", None),
        ("2026-12-24" + " " * 100, None),
        (None, None),
    ],
)
def test_due_dates_are_iso_8601_dates_or_date_times(
    raw: Any, expected: tuple[str, str] | None
) -> None:
    assert parse_due(raw) == expected


def test_body_text_keeps_text_that_looks_like_markup_and_separates_blocks() -> None:
    doc: Doc[Any] = Doc()
    body = doc.get("body", type=XmlFragment)
    body.children.append(XmlElement("paragraph", {}, [XmlText("if a <b> & c")]))
    body.children.append(XmlElement("heading", {}, [XmlText("Next")]))

    assert body_text(doc) == "if a <b> & c\nNext"
    assert note_fields(doc).excerpt == "if a <b> & c Next"


def test_a_deeply_nested_body_is_read_without_recursion() -> None:
    doc: Doc[Any] = Doc()
    node = doc.get("body", type=XmlFragment)
    for _ in range(3000):
        node = node.children.append(XmlElement("div"))
    node.children.append(XmlText("deep"))

    assert body_text(doc) == "deep"


def test_the_searched_text_and_the_excerpt_are_bounded() -> None:
    doc: Doc[Any] = Doc()
    body = doc.get("body", type=XmlFragment)
    for _ in range(30):
        body.children.append(XmlElement("p", {}, [XmlText("word " * 1000)]))

    fields = note_fields(doc)

    assert len(fields.text) == MAX_SEARCH_CHARS
    assert len(fields.excerpt) == 200


def test_note_content_round_trips_through_note_fields() -> None:
    update = note_content(
        title="T", tags=["a"], pinned=False, priority="low", due="2026-01-02", text="x\ny"
    )
    doc: Doc[Any] = Doc()
    doc.apply_update(update)

    fields = note_fields(doc)

    assert (fields.title, fields.tags, fields.pinned, fields.priority) == (
        "T",
        ("a",),
        False,
        Priority.LOW,
    )
    assert fields.due == "2026-01-02"
    assert fields.text == "x\ny"


def test_note_content_writes_one_paragraph_per_line_in_order() -> None:
    lines = ["first", "", "third", *(f"line {i}" for i in range(500)), ""]
    doc: Doc[Any] = Doc()
    doc.apply_update(note_content(text="\n".join(lines)))

    body = doc.get("body", type=XmlFragment)
    paragraphs = list(body.children)
    assert len(paragraphs) == len(lines)
    assert all(isinstance(p, XmlElement) and p.tag == "paragraph" for p in paragraphs)
    assert [str(p)[len("<paragraph>") : -len("</paragraph>")] for p in paragraphs] == lines


_VALUES = st.recursive(
    # Integers as Yjs clients write them (pycrdt panics on ints beyond 64 bits).
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["title", "tags", "pinned", "priority", "due", "assignees", "x"]), _VALUES
    )
)
def test_any_meta_values_are_indexed_without_raising(meta: dict[str, Any]) -> None:
    doc: Doc[Any] = Doc()
    fields = doc.get("meta", type=Map)
    for key, value in meta.items():
        fields[key] = Array(value) if isinstance(value, list) else value

    result = note_fields(doc)

    assert len(result.title) <= MAX_TITLE_CHARS
    assert len(result.tags) <= MAX_TAGS
    assert all(isinstance(tag, str) and tag for tag in result.tags)
    assert isinstance(result.pinned, bool)
