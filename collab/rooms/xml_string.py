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

Nodes are written from a stack, not by recursion: clients may nest elements as deep as they
like. An element embedded in a text is written as escaped text, as other embeds are, and such
embeds nested in each other count towards the bound on shared types nested in values
(`MAX_SHARED_DEPTH`), past which nothing is written; a map or array holding XML is written
`<Map>` or `<Array>` (its JSON would escape the XML inside once more at every level).
"""

from __future__ import annotations

import re
from typing import Any
from xml.sax.saxutils import escape

import orjson
from pycrdt import Array, Map, Text, XmlElement, XmlFragment, XmlText

from collab.rooms.json_values import MAX_SHARED_DEPTH, plain, shared_json

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


class _ClosingTag(str):
    """An element's closing tag, waiting on the stack for its children to be written."""

    __slots__ = ()


def xml_string(node: XmlNode, depth: int = 0) -> str:
    """`node` as an XML string (a fragment's children one after the other). `depth`: how
    deep in values the node already is (see the module doc)."""
    if depth > MAX_SHARED_DEPTH:
        return ""
    parts: list[str] = []
    # What is left to write, the next last: nodes, and the closing tags of elements.
    stack: list[Any] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, _ClosingTag):
            parts.append(item)
        elif isinstance(item, XmlText):
            _write_text(item, parts, depth)
        elif isinstance(item, XmlElement):
            opening, closing = _tags(item, depth)
            parts.append(opening)
            stack.append(closing)
            stack.extend(reversed(list(item.children)))
        elif isinstance(item, XmlFragment):
            stack.extend(reversed(list(item.children)))
        else:
            parts.append(_text(_as_json(item, depth)))
    return "".join(parts)


def _tags(element: XmlElement, depth: int) -> tuple[str, _ClosingTag]:
    name = element.tag or ""
    # `__iter__` by name: pycrdt types it as returning an Iterable (it is an iterator).
    attributes: dict[str, Any] = dict(element.attributes.__iter__())
    if _NAME.match(name):
        tag = name
    else:
        tag = INVALID_ELEMENT
        attributes = {"name": name}
    return f"<{tag}{_attributes(attributes, depth)}>", _ClosingTag(f"</{tag}>")


def _write_text(text: XmlText, parts: list[str], depth: int) -> None:
    """A text's runs, each in the tags of its formats; an embed (XML included) as escaped
    text."""
    for insert, attrs in text.diff():
        formats = attrs or {}
        tags = sorted(name for name in formats if _NAME.match(name))
        for name in tags:
            value = formats[name]
            parts.append(f"<{name}{_attributes(value, depth) if isinstance(value, dict) else ''}>")
        parts.append(_text(insert if isinstance(insert, str) else _as_json(insert, depth)))
        parts.extend(f"</{name}>" for name in reversed(tags))


def _attributes(attributes: dict[str, Any], depth: int) -> str:
    return "".join(
        f' {key}="{_value(attributes[key], depth)}"'
        for key in sorted(attributes)
        if isinstance(key, str) and _NAME.match(key)
    )


def _text(value: str) -> str:
    return escape(_NOT_XML_CHAR.sub("\ufffd", value), _TEXT_ENTITIES)


def _value(value: Any, depth: int) -> str:
    shown = value if isinstance(value, str) else _as_json(value, depth)
    return escape(_NOT_XML_CHAR.sub("\ufffd", shown), _ATTRIBUTE_ENTITIES)


def _as_json(value: Any, depth: int) -> str:
    """A non-string value as JSON text, by the snapshot's rule (`plain`: whole numbers as
    integers, as JavaScript shows them); shared types by their content, XML in them as its
    string."""
    if isinstance(value, XmlFragment | XmlElement | XmlText):
        return xml_string(value, depth + 1)
    if isinstance(value, Text):
        return str(value)
    try:
        if isinstance(value, Map | Array):
            value = shared_json(value, _no_xml_in_json, depth + 1)
        return orjson.dumps(plain(value), option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, ValueError):
        # XML in a map or array here; or what JSON cannot hold.
        return f"<{type(value).__name__}>"


def _no_xml_in_json(node: Any, depth: int) -> str:
    """XML inside JSON inside XML is not written: each level would escape the one inside it
    as a JSON string again, doubling its backslashes, so a few levels would make megabytes."""
    raise ValueError("XML in a value in XML")
