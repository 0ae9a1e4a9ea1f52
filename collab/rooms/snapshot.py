"""A JSON view of a document's root types, for REST readers.

A Yjs update does not say which type a root is (the client decides when it calls
`getText`/`getMap`/...), so the type is inferred from the content: map entries make a map,
characters a text, XML elements an XML fragment, other items an array. The note schema's
roots (`meta`: map, `body`: XML fragment) are always read with their declared type.

Reading a root as a type fixes it in that copy of the document, so a wrong guess spoils the
root for the next one, but not the other roots. Every root is read from one decoded copy, and
only a root whose first guess was wrong costs more copies: a note (`meta` and `body`) costs one
decode, which for a large document is most of the time a snapshot takes.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from collab.rooms.json_values import JsonValue, shared_json
from collab.rooms.xml_string import xml_string

KNOWN_ROOT_TYPES: dict[str, type[Map[Any] | XmlFragment]] = {"meta": Map, "body": XmlFragment}


def document_to_json(state: bytes) -> dict[str, JsonValue]:
    """Return `{root name: value}`: text as a string, maps as objects, arrays as lists and
    XML fragments as their XML string (`collab.rooms.xml_string`: well-formed, whatever
    clients wrote). Empty roots of unknown type are omitted."""
    doc = _fresh(state)
    result: dict[str, JsonValue] = {}
    for name in sorted(doc.keys()):
        value = _read_root(doc, state, name)
        if value is not None:
            result[name] = value
    for name, root_type in KNOWN_ROOT_TYPES.items():
        result.setdefault(name, {} if root_type is Map else "")
    return result


def _fresh(state: bytes) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    doc.apply_update(state)
    return doc


def _read_root(doc: Doc[Any], state: bytes, name: str) -> JsonValue:
    """Read root `name` from `doc`, where no other read touched it; a second guess reads a
    fresh copy of `state`."""
    known = KNOWN_ROOT_TYPES.get(name)
    if known is Map:
        return _shared_to_json(doc.get(name, type=Map))
    if known is XmlFragment:
        return xml_string(doc.get(name, type=XmlFragment))
    as_map = doc.get(name, type=Map)
    if len(as_map) > 0:
        return _shared_to_json(as_map)
    text = str(_fresh(state).get(name, type=Text))
    if text:
        return text
    as_array = _fresh(state).get(name, type=Array)
    items = list(as_array)
    if any(isinstance(item, XmlElement | XmlText) for item in items):
        # XML nodes are no array's items: this root is an XML fragment.
        return xml_string(_fresh(state).get(name, type=XmlFragment))
    if items:
        return _shared_to_json(as_array)
    return None


def _shared_to_json(value: Any) -> JsonValue:
    """A map or array value as JSON (`shared_json`: nested maps and arrays as objects and
    lists, text and XML as their string, where pycrdt's `to_py` raises on XML inside a map,
    which yjs clients can write, and recurses as deep as clients nested)."""
    return shared_json(value, xml_string)
