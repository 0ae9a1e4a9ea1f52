"""A Yjs XML type as well-formed XML, whatever its clients wrote into it.

pycrdt's `str()` of an `XmlFragment` (yrs's) pastes text, attribute values and element names
in as they are: a note whose text reads `a < b`, `Q&A` or `</p><script>` gives a REST reader
malformed XML, or markup nobody wrote. `xml_string` writes the same shape as Yjs's
`toString()` (elements with their attributes sorted by name, formatted text runs as nested
tags named after their formats, sorted, with the format's entries as attributes) and escapes
what clients control:
- text and attribute values are escaped (`&`, `<`, `>`; `"` and whitespace in values, a
  carriage return in text), so a parser reads back what was written; characters XML 1.0
  does not allow (most control characters, U+FFFE, U+FFFF) become U+FFFD;
- an element whose name is not a plain XML name (ASCII letters, digits, `_`, `.`, `-`, not
  starting with a digit, `.` or `-`) is written as `invalid-element`, its name kept in a
  `name` attribute; attributes and formats whose names are not are left out (a format's text
  stays);
- attribute values that are not strings are written as JSON (`true`, `3`, `{"a":1}`), and so
  is embedded content in a text.
"""

from __future__ import annotations

import re
from typing import Any
from xml.sax.saxutils import escape

import orjson
from pycrdt import Array, Map, Text, XmlElement, XmlFragment, XmlText

from collab.rooms.json_values import plain

XmlNode = XmlFragment | XmlElement | XmlText

INVALID_ELEMENT = "invalid-element"

# The XML names editors use: an ASCII letter or "_", then ASCII letters, digits, "_", "." or
# "-". XML allows more (other scripts' letters, ":"), but not every letter Python's `\w`
# takes, and a ":" makes a namespace prefix that namespace-aware parsers refuse undeclared.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
# What XML 1.0 does not allow in a document (its `Char` production, outside surrogates).
_NOT_XML_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# Parsers read a raw carriage return in text as a line feed, and tabs and line breaks in an
# attribute value as spaces: as character references they come back as they were.
_TEXT_ENTITIES = {"\r": "&#13;"}
_ATTRIBUTE_ENTITIES = {'"': "&quot;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}


def xml_string(node: XmlNode) -> str:
    """`node` as an XML string (a fragment's children one after the other)."""
    parts: list[str] = []
    _write(node, parts)
    return "".join(parts)


def _write(node: Any, parts: list[str]) -> None:
    if isinstance(node, XmlText):
        _write_text(node, parts)
    elif isinstance(node, XmlElement):
        _write_element(node, parts)
    elif isinstance(node, XmlFragment):
        for child in node.children:
            _write(child, parts)
    else:
        parts.append(_text(_as_json(node)))


def _write_element(element: XmlElement, parts: list[str]) -> None:
    name = element.tag or ""
    # `__iter__` by name: pycrdt types it as returning an Iterable (it is an iterator).
    attributes: dict[str, Any] = dict(element.attributes.__iter__())
    if _NAME.match(name):
        tag = name
    else:
        tag = INVALID_ELEMENT
        attributes = {"name": name}
    parts.append(f"<{tag}{_attributes(attributes)}>")
    for child in element.children:
        _write(child, parts)
    parts.append(f"</{tag}>")


def _write_text(text: XmlText, parts: list[str]) -> None:
    for insert, attrs in text.diff():
        formats = attrs or {}
        tags = sorted(name for name in formats if _NAME.match(name))
        for name in tags:
            value = formats[name]
            parts.append(f"<{name}{_attributes(value) if isinstance(value, dict) else ''}>")
        parts.append(_text(insert if isinstance(insert, str) else _as_json(insert)))
        for name in reversed(tags):
            parts.append(f"</{name}>")


def _attributes(attributes: dict[str, Any]) -> str:
    return "".join(
        f' {key}="{_value(attributes[key])}"'
        for key in sorted(attributes)
        if isinstance(key, str) and _NAME.match(key)
    )


def _text(value: str) -> str:
    return escape(_NOT_XML_CHAR.sub("\ufffd", value), _TEXT_ENTITIES)


def _value(value: Any) -> str:
    shown = value if isinstance(value, str) else _as_json(value)
    return escape(_NOT_XML_CHAR.sub("\ufffd", shown), _ATTRIBUTE_ENTITIES)


def _as_json(value: Any) -> str:
    """A non-string value as JSON text, by the snapshot's rule (`plain`: whole numbers as
    integers, as JavaScript shows them); shared types by their content."""
    if isinstance(value, XmlFragment | XmlElement | XmlText):
        return xml_string(value)
    if isinstance(value, Text):
        return str(value)
    try:
        if isinstance(value, Map | Array):
            value = value.to_py()
        return orjson.dumps(plain(value), option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, ValueError):
        # pycrdt's `to_py` refuses XML inside a map or array; orjson, what JSON cannot hold.
        return f"<{type(value).__name__}>"
