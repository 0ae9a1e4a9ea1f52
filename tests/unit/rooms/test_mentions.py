"""Mentions and assignees read from notes as clients write them, hostile ones included.

A Yjs update does not say which type a root is: pycrdt reads `meta` as a map and `body` as an
XML fragment whatever a client wrote there, and raises nothing. What can raise is converting
content: pycrdt's `to_py` raises ValueError on XML nodes, which a client may put in an array.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from collab.rooms.mentions import assigned_users, mentioned_users
from collab.rooms.note_fields import MAX_ASSIGNEES


def received(write: Callable[[Doc[Any]], object]) -> Doc[Any]:
    """The document as the server holds it: a fresh one that applied what a client wrote."""
    writer: Doc[Any] = Doc()
    write(writer)
    doc: Doc[Any] = Doc()
    doc.apply_update(writer.get_update())
    return doc


def note(doc: Doc[Any]) -> None:
    paragraph = XmlText("ask @bob. and ")
    doc["body"] = XmlFragment([XmlElement("p", contents=[paragraph])])
    doc["body"].children.append(XmlElement("mention", {"id": "carol"}))
    doc["meta"] = Map({"title": "Plan", "assignees": Array(["dave", 3, "", None])})


def test_mentions_and_assignees_of_a_note_are_read() -> None:
    """`@id` in the text and mention elements are mentions; string assignees are assignees."""
    doc = received(note)
    assert mentioned_users(doc) == {"bob", "carol"}
    assert assigned_users(doc) == {"dave"}


@pytest.mark.parametrize(
    ("write", "mentioned", "assigned"),
    [
        pytest.param(
            lambda d: d.__setitem__("meta", Array(["bob"])), set(), set(), id="meta-array"
        ),
        pytest.param(lambda d: d.__setitem__("meta", Text("@bob")), set(), set(), id="meta-text"),
        pytest.param(
            lambda d: d.__setitem__("meta", XmlFragment([XmlElement("p")])),
            set(),
            set(),
            id="meta-xml",
        ),
        pytest.param(
            lambda d: d.__setitem__("meta", Map({"assignees": Map({"bob": 1})})),
            set(),
            set(),
            id="assignees-map",
        ),
        pytest.param(
            lambda d: d.__setitem__("body", Map({"x": "@bob"})), set(), set(), id="body-map"
        ),
        pytest.param(
            lambda d: d.__setitem__("body", Array(["hi @bob ", Doc()])),
            {"bob"},
            set(),
            id="body-array-with-subdoc",
        ),
        pytest.param(lambda d: d.__setitem__("body", Text("@bob")), {"bob"}, set(), id="body-text"),
    ],
)
def test_roots_written_as_another_type_read_as_the_note_schema(
    write: Callable[[Doc[Any]], object], mentioned: set[str], assigned: set[str]
) -> None:
    """A root written as another type is read as the schema's type (pycrdt casts it, raising
    nothing): its map entries or its text, whatever they hold, and nothing is refused."""
    assert mentioned_users(received(write)) == mentioned
    assert assigned_users(received(write)) == assigned


def xml_among_the_assignees(doc: Doc[Any]) -> None:
    doc["meta"] = Map(
        {
            "assignees": Array(
                ["bob", XmlFragment([XmlElement("p")]), Array([XmlFragment()]), Text("carol")]
            )
        }
    )


def test_xml_among_the_assignees_is_ignored_like_any_non_string_entry() -> None:
    """pycrdt's `to_py` raises ValueError on the XML a client put among the assignees; the
    entries are read one by one instead: strings (and text, as `to_py` reads it) count, the
    XML and the nested array are ignored, and nothing raises."""
    doc = received(xml_among_the_assignees)
    with pytest.raises(ValueError, match="no Python equivalent"):
        doc.get("meta", type=Map)["assignees"].to_py()
    assert assigned_users(doc) == {"bob", "carol"}


def test_only_the_assignees_the_catalog_lists_are_read() -> None:
    """A client may write any number of assignees: the first MAX_ASSIGNEES distinct ones
    count, as the catalog lists them, and the rest are never read (a note of 250,000 ids
    held the event loop 0.9 s at every check of its changes)."""
    ids = [f"user{number}" for number in range(1000)]
    doc = received(lambda d: d.__setitem__("meta", Map({"assignees": Array(["user0", *ids])})))
    assert assigned_users(doc) == set(ids[:MAX_ASSIGNEES])
