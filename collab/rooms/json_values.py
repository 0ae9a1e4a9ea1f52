"""Plain Python values of a Yjs document as JSON shows them: the one rule for REST snapshots
and for values written into XML (`collab.rooms.snapshot`, `collab.rooms.xml_string`)."""

from __future__ import annotations

from typing import Any

from pycrdt import Doc

JsonValue = Any


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
