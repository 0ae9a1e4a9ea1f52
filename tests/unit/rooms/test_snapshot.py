"""`document_to_json`: each root read as the type its content shows, one decode per note."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from collab.rooms import snapshot
from collab.rooms.json_values import MAX_SHARED_DEPTH
from collab.rooms.snapshot import document_to_json


def _state(build: Any) -> bytes:
    doc: Doc[Any] = Doc()
    build(doc)
    return doc.get_update()


def _every_kind(doc: Doc[Any]) -> None:
    doc.get("meta", type=Map)["title"] = "Plan"
    doc.get("body", type=XmlFragment).children.append(XmlElement("paragraph", {}, [XmlText("hi")]))
    doc.get("settings", type=Map)["width"] = 80.0
    doc.get("text", type=Text).insert(0, "plain")
    doc.get("items", type=Array).extend(["a", 2.0, {"k": 1.5}])
    doc.get("prosemirror", type=XmlFragment).children.append(XmlElement("p", {}, []))
    doc.get("unused", type=Text)


def test_every_root_is_read_as_the_type_its_content_shows() -> None:
    assert document_to_json(_state(_every_kind)) == {
        "body": "<paragraph>hi</paragraph>",
        "items": ["a", 2, {"k": 1.5}],
        "meta": {"title": "Plan"},
        "prosemirror": "<p></p>",
        "settings": {"width": 80},
        "text": "plain",
    }


def test_an_empty_document_has_the_note_roots_empty() -> None:
    assert document_to_json(Doc().get_update()) == {"meta": {}, "body": ""}


def test_a_note_costs_one_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    """`meta`, `body` and a map root are all read from the first decoded copy; a text root
    needs a second copy, as its first guess (map) was wrong."""
    decodes: list[bytes] = []
    fresh = snapshot._fresh

    def counting_fresh(state: bytes) -> Doc[Any]:
        decodes.append(state)
        return fresh(state)

    monkeypatch.setattr(snapshot, "_fresh", counting_fresh)

    def note(doc: Doc[Any]) -> None:
        doc.get("meta", type=Map)["title"] = "Plan"
        doc.get("body", type=XmlFragment).children.append(XmlElement("p", {}, []))
        doc.get("settings", type=Map)["width"] = 80.0

    assert document_to_json(_state(note))["settings"] == {"width": 80}
    assert len(decodes) == 1
    decodes.clear()
    assert document_to_json(_state(lambda doc: doc.get("t", type=Text).insert(0, "x")))["t"] == "x"
    assert len(decodes) == 2


def test_xml_text_and_subdocuments_inside_a_map_are_shown_not_refused() -> None:
    """A map value that is XML, text or a subdocument (yjs clients can write each) appears
    as its string or its guid; pycrdt's own conversion raises on XML."""

    def build(doc: Doc[Any]) -> None:
        meta = doc.get("meta", type=Map)
        meta["fragment"] = XmlFragment([XmlText("x")])
        meta["text"] = Text("hello")
        meta["nested"] = Map({"list": Array([1.0, Text("y")])})
        meta["sub"] = Doc()

    meta = document_to_json(_state(build))["meta"]
    assert meta["fragment"] == "x"
    assert meta["text"] == "hello"
    assert meta["nested"] == {"list": [1, "y"]}
    assert list(meta["sub"]) == ["subdocument"]
    # meta.x = a Y.XmlElement("p"), as yjs writes it (pycrdt will not build it).
    element = bytes.fromhex("010109002701046d657461017803017000")
    assert document_to_json(element)["meta"] == {"x": "<p></p>"}


def _nested_maps(doc: Doc[Any], depth: int) -> None:
    meta = doc.get("meta", type=Map)
    meta["title"] = "deep"
    current = meta
    for _ in range(depth):
        current["k"] = Map()
        current = current["k"]
    current["end"] = "here"


def test_maps_nested_past_the_bound_are_null_and_the_rest_is_read() -> None:
    """Each nested Y.Map is an item of its own, so clients can nest thousands: the snapshot
    is read without recursion and shows the first MAX_SHARED_DEPTH levels."""
    roots = document_to_json(_state(lambda doc: _nested_maps(doc, 3000)))

    value, levels = roots["meta"], 0
    assert value["title"] == "deep"
    while isinstance(value, dict) and "k" in value:
        value, levels = value["k"], levels + 1
    assert (levels, value) == (MAX_SHARED_DEPTH, None)
    orjson.dumps(roots)  # within what a JSON encoder takes


def test_maps_nested_within_the_bound_are_read_whole() -> None:
    roots = document_to_json(_state(lambda doc: _nested_maps(doc, MAX_SHARED_DEPTH - 1)))
    value = roots["meta"]
    for _ in range(MAX_SHARED_DEPTH - 1):
        value = value["k"]
    assert value == {"end": "here"}


def test_arrays_nested_deep_in_an_array_root_are_read_without_recursion() -> None:
    def build(doc: Doc[Any]) -> None:
        current = doc.get("items", type=Array)
        current.append("top")
        for _ in range(3000):
            inner: Array[Any] = Array()
            current.append(inner)
            current = inner

    items = document_to_json(_state(build))["items"]
    assert items[0] == "top"
    orjson.dumps(items)
