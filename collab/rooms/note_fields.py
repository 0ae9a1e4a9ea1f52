"""What the catalog lists of a note, read from its document and sanitized (`note_fields`).

Pure functions over a pycrdt document following the note schema (README, "The note
document"): `meta` Y.Map with `title`, `tags`, `pinned`, `priority`, `due`, `assignees`; `body`
Y.XmlFragment. Clients may write anything there, so every value is checked and bounded here,
before the store sees it:

- a value of the wrong type is dropped (as if absent): a `pinned` that is not a boolean is
  false, a `priority` other than `low`, `medium`, `high`, `urgent` is none, a `due` that is not
  an ISO-8601 date or date-time is none;
- strings are truncated (title MAX_TITLE_CHARS, each tag MAX_TAG_CHARS, each assignee
  MAX_ASSIGNEE_CHARS), control characters become spaces, lists keep their first entries
  (MAX_TAGS, MAX_ASSIGNEES) once each, in order;
- the body's text is read up to MAX_SEARCH_CHARS (searched) and its first EXCERPT_CHARS are
  the excerpt.

Reading never raises for a document's content: a part that cannot be read (a bug of ours or
of the CRDT library) is left out and logged, and the rest is indexed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time
from typing import Any

from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from collab.store.catalog import EXCERPT_CHARS, NoteFields, Priority
from collab.store.rows import format_timestamp

log = logging.getLogger(__name__)

MAX_TITLE_CHARS = 500
MAX_TAGS = 32
MAX_TAG_CHARS = 64
MAX_ASSIGNEES = 100
MAX_ASSIGNEE_CHARS = 256
MAX_DUE_CHARS = 64
MAX_SEARCH_CHARS = 64 * 1024
# Elements visited in the body, whatever their text: a body of a million empty paragraphs
# costs no more than this to read.
MAX_BODY_NODES = 20_000

CONTROL_CLASS = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
"""The characters of `CONTROL_CHARACTERS`, as the inside of a regex character class."""
CONTROL_CHARACTERS = re.compile(f"[{CONTROL_CLASS}]")
"""What the catalog and the member directory never keep in a text: replaced or refused."""
_SPACES = re.compile(r"\s+")


def note_fields(doc: Doc[Any]) -> NoteFields:
    """The catalog fields of a note's document, sanitized (see the module docstring)."""
    # Listing the root types opens a transaction: once for both readers.
    roots: set[str] = _read("root types", _root_names, doc) or set()
    meta = _read("meta", _meta_values, doc, roots) or {}
    text = _read("body", body_text, doc, roots) or ""
    due = parse_due(meta.get("due"))
    return NoteFields(
        title=_clean(_string(meta.get("title")), MAX_TITLE_CHARS),
        tags=_strings(meta.get("tags"), MAX_TAGS, MAX_TAG_CHARS),
        pinned=meta.get("pinned") is True,
        priority=_priority(meta.get("priority")),
        due=None if due is None else due[0],
        due_at=None if due is None else due[1],
        assignees=assignees_of(meta.get("assignees")),
        excerpt=_SPACES.sub(" ", text[: EXCERPT_CHARS * 4]).strip()[:EXCERPT_CHARS],
        text=text,
    )


def body_text(doc: Doc[Any], roots: Iterable[str] | None = None) -> str:
    """The text of the note's body, blocks separated by a newline, at most MAX_SEARCH_CHARS
    (`roots`: the document's root names, when already listed).

    Walks the XML tree (not its XML string, which would lose text that looks like markup)
    without recursion, so a deeply nested body cannot exhaust the stack."""
    if "body" not in (doc.keys() if roots is None else roots):
        return ""
    parts: list[str] = []
    size = 0
    for chunk in _texts(doc.get("body", type=XmlFragment)):
        parts.append(chunk)
        size += len(chunk)
        if size >= MAX_SEARCH_CHARS:
            break
    return "".join(parts)[:MAX_SEARCH_CHARS].strip()


def _texts(fragment: XmlFragment) -> Iterator[str]:
    stack: list[Any] = list(reversed(list(fragment.children)))
    visited = 0
    while stack and visited < MAX_BODY_NODES:
        node = stack.pop()
        visited += 1
        if isinstance(node, str):
            yield node
        elif isinstance(node, XmlText):
            for insert, _attributes in node.diff():
                if isinstance(insert, str):
                    yield CONTROL_CHARACTERS.sub(" ", insert)
        elif isinstance(node, XmlElement):
            # A block ends with a line break; its children come first (the stack is LIFO).
            stack.append("\n")
            stack.extend(reversed(list(node.children)))


def _meta_values(doc: Doc[Any], roots: Iterable[str]) -> dict[str, Any]:
    if "meta" not in roots:
        return {}
    meta = doc.get("meta", type=Map)
    return {
        key: meta.get(key) for key in ("title", "tags", "pinned", "priority", "due", "assignees")
    }


def _root_names(doc: Doc[Any]) -> set[str]:
    return set(doc.keys())


def _read(what: str, read: Any, doc: Doc[Any], *args: Any) -> Any:
    try:
        return read(doc, *args)
    except Exception:
        # Content we fail to read is our bug (or the library's), not the client's fault: the
        # rest of the note is indexed all the same.
        log.exception("note %s: could not read its %s for the catalog", doc.guid, what)
        return None


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Text):
        return str(value)
    return ""


def _clean(value: str, limit: int) -> str:
    return _SPACES.sub(" ", CONTROL_CHARACTERS.sub(" ", value[: limit * 2])).strip()[:limit]


def assignees_of(value: Any) -> tuple[str, ...]:
    """The assignees the catalog lists for a `meta.assignees` value: its first MAX_ASSIGNEES
    distinct strings (or texts), cleaned, read by index."""
    return _strings(value, MAX_ASSIGNEES, MAX_ASSIGNEE_CHARS)


def _strings(value: Any, count: int, limit: int) -> tuple[str, ...]:
    if not isinstance(value, Array | list):
        return ()
    found: dict[str, None] = {}
    # By index, at most a bounded number of entries: an array of a million tags costs no more.
    for index in range(min(len(value), count * 4)):
        text = _clean(_string(value[index]), limit)
        if text:
            found.setdefault(text, None)
        if len(found) == count:
            break
    return tuple(found)


def _priority(value: Any) -> Priority:
    if isinstance(value, str):
        return Priority.from_label(value) or Priority.NONE
    return Priority.NONE


def parse_due(value: Any) -> tuple[str, str] | None:
    """`(due as written, normalized; due as a UTC instant)`, or None.

    A date alone stands for that day at 00:00 UTC; a date-time without an offset is UTC. A
    date-time whose offset takes it out of years 1-9999 in UTC is no due either."""
    if not isinstance(value, str) or not value or len(value) > MAX_DUE_CHARS:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return day.isoformat(), format_timestamp(datetime.combine(day, time(), UTC))
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.isoformat(), format_timestamp(moment)
    except (ValueError, OverflowError):  # OverflowError: past year 9999 (or before 1) in UTC
        return None


def note_content(
    *,
    title: str | None = None,
    tags: list[str] | None = None,
    pinned: bool | None = None,
    priority: str | None = None,
    due: str | None = None,
    assignees: list[str] | None = None,
    text: str | None = None,
) -> bytes:
    """A Yjs update that writes a new note's document in the note schema: the given `meta`
    entries, and `text` as the body, one paragraph per line (as editors write paragraphs)."""
    doc: Doc[Any] = Doc()
    meta = doc.get("meta", type=Map)
    with doc.transaction():
        if title is not None:
            meta["title"] = title
        if tags is not None:
            meta["tags"] = Array(tags)
        if pinned is not None:
            meta["pinned"] = pinned
        if priority is not None:
            meta["priority"] = priority
        if due is not None:
            meta["due"] = due
        if assignees is not None:
            meta["assignees"] = Array(assignees)
        if text:
            body = doc.get("body", type=XmlFragment)
            # Last line first, each in front: pycrdt's append walks the children it has, so
            # appending n paragraphs costs n^2 (65,536 empty lines took a minute).
            for line in reversed(text.split("\n")):
                body.children.insert(
                    0, XmlElement("paragraph", {}, [XmlText(line)] if line else [])
                )
    return doc.get_update()
