"""Plain Python values of a Yjs document as JSON shows them: the one rule for REST snapshots
and for values written into XML (`collab.rooms.snapshot`, `collab.rooms.xml_string`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

JsonValue = Any

MAX_SHARED_DEPTH = 64
"""Shared types nested deeper than this are shown as null (in XML, left out). Each nested Y.Map
or Y.Array is an item of its own, so the update reader's bound on the depth of plain values
does not reach them; JSON encoders refuse deep nesting (orjson past 254 levels), and no editor
writes it. Plain values inside have their own bound, the same 64."""


def plain(value: JsonValue) -> JsonValue:
    """Yjs numbers arrive as floats; show whole numbers as integers, as JavaScript does. A
    subdocument (yjs `map.set(key, new Y.Doc())`) is shown by its guid: its content is a
    document of its own, not part of this one."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, Doc):
        return {"subdocument": value.guid}
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def shared_json(value: Any, xml: Callable[[Any, int], str], depth: int = 0) -> JsonValue:
    """A shared value as JSON, walked without recursion: maps and arrays as objects and lists
    (those nested past `MAX_SHARED_DEPTH` as null), a text as its string, XML by `xml(node,
    depth)`, everything else as `plain` shows it. `depth` is how deep `value` already is
    (XML and JSON nest in each other: the bound holds across both)."""
    root: list[JsonValue] = [None]
    # (value, the container it goes into, its key or index there, its depth)
    stack: list[tuple[Any, Any, Any, int]] = [(value, root, 0, depth)]
    while stack:
        item, parent, key, level = stack.pop()
        if isinstance(item, Map | Array) and level >= MAX_SHARED_DEPTH:
            parent[key] = None
        elif isinstance(item, Map):
            entries = list(item.items())
            container: dict[str, JsonValue] = dict.fromkeys(name for name, _ in entries)
            parent[key] = container
            stack.extend((entry, container, name, level + 1) for name, entry in reversed(entries))
        elif isinstance(item, Array):
            items = list(item)
            array: list[JsonValue] = [None] * len(items)
            parent[key] = array
            stack.extend((entry, array, index, level + 1) for index, entry in enumerate(items))
        elif isinstance(item, XmlFragment | XmlElement | XmlText):
            parent[key] = xml(item, level + 1)
        elif isinstance(item, Text):
            parent[key] = str(item)
        else:
            parent[key] = plain(item)
    return root[0]
