"""What changed between two states of a note (`version_diff`), as JSON a UI can render.

    {"meta": [{"key": str, "change": "added" | "removed" | "changed",
               "before": value | null, "after": value | null}, ...],
     "body": [{"op": "equal" | "insert" | "delete", "text": str}, ...],
     "truncated": bool}

- `meta`: the keys of the `meta` map whose value differs, sorted, at most MAX_META_KEYS. Values
  are compared and shown as `to_py()` reads them (a Y.Text as its string, a Y.Array as a list, a
  Y.Map as an object) and further as JSON can hold them: XML as its XML string, a subdocument
  as `{"guid": ...}`, bytes as a list of integers, integral numbers as integers, NaN and
  infinities as null. A value whose compact JSON (no spaces, non-ASCII unescaped) is longer
  than MAX_VALUE_CHARS is cut to that length: strings are truncated, lists and objects lose
  their last entries (objects are sorted by key); a key is cut to MAX_VALUE_CHARS characters.
- `body`: the body's text as `note_fields.body_text` reads it (blocks separated by "\\n", at
  most MAX_SEARCH_CHARS characters and MAX_BODY_NODES nodes), diffed by lines, then by tokens
  inside each changed group of lines (words, runs of whitespace, single other characters).
  Lines are paired as patience diff pairs them (`sequence_anchors`: the common first and last
  lines, then lines that occur once on each side, in linear time), and the lines between two
  such pairs with difflib while that gap is small (MAX_GAP_LINE_PAIRS): difflib alone takes
  quadratic time and more (seconds for a few thousand swapped lines). A group of more than
  MAX_GROUP_TOKENS tokens, and the groups beyond MAX_DIFFED_TOKENS in all, are reported as
  one delete and one insert, so any two bodies diff in bounded time. Adjacent ops of one kind
  are merged; equal runs are kept whole (the UI collapses them). The equal and deleted texts,
  in order, make the before text; the equal and inserted texts the after text.
- `truncated`: a value or a key was cut, keys were left out, or either body reached a bound.

Diffing never raises for a document's content: a part that cannot be read (a bug of ours or
of the CRDT library) is logged and left out. Values are walked without recursion, whatever
their depth.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from difflib import SequenceMatcher
from typing import Any

from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from collab.rooms.note_fields import MAX_BODY_NODES, MAX_SEARCH_CHARS, body_text
from collab.rooms.sequence_anchors import equal_pairs
from collab.rooms.xml_string import xml_string

log = logging.getLogger(__name__)

MAX_META_KEYS = 100
MAX_VALUE_CHARS = 1_000
MAX_GROUP_TOKENS = 2_000
"""Tokens of both sides of a changed group of lines, beyond which it is not diffed by word."""
MAX_DIFFED_TOKENS = 20_000
"""Tokens diffed by word in all groups of one diff; the groups beyond are not."""
MAX_GAP_LINE_PAIRS = 10_000
"""Lines `a * b` of a gap between paired lines beyond which difflib does not pair its lines."""
MATCH_WORK_PER_LINE = 8
"""Budget of the anchor search, in lines visited per line of the two bodies."""

_TOKENS = re.compile(r"\w+|\s+|[^\w\s]")
_END = object()


def version_diff(before: Doc[Any], after: Doc[Any]) -> dict[str, Any]:
    """The changes from `before` to `after` (the module docstring gives the shape)."""
    meta, meta_cut = _meta_changes(
        _read("meta", _meta, before) or {}, _read("meta", _meta, after) or {}
    )
    old, old_cut = _read("body", _body, before) or ("", False)
    new, new_cut = _read("body", _body, after) or ("", False)
    return {"meta": meta, "body": diff_text(old, new), "truncated": meta_cut or old_cut or new_cut}


def diff_text(old: str, new: str) -> list[dict[str, str]]:
    """The ops that turn `old` into `new`: by lines, then by words in changed groups."""
    ops: list[tuple[str, list[str]]] = []
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    budget = [MAX_DIFFED_TOKENS]
    i = j = 0
    for next_i, next_j in [*equal_pairs(a, b, MATCH_WORK_PER_LINE), (len(a), len(b))]:
        _emit_gap(ops, a[i:next_i], b[j:next_j], budget)
        _emit(ops, "equal", "".join(a[next_i : next_i + 1]))
        i, j = next_i + 1, next_j + 1
    return [{"op": op, "text": "".join(parts)} for op, parts in ops]


def _emit_gap(
    ops: list[tuple[str, list[str]]], a: list[str], b: list[str], budget: list[int]
) -> None:
    """Emit the lines between two paired lines: paired further by difflib when few."""
    if not a or not b or len(a) * len(b) > MAX_GAP_LINE_PAIRS:
        _emit_words(ops, "".join(a), "".join(b), budget)
        return
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            _emit(ops, "equal", "".join(a[i1:i2]))
        else:
            _emit_words(ops, "".join(a[i1:i2]), "".join(b[j1:j2]), budget)


def _emit_words(ops: list[tuple[str, list[str]]], old: str, new: str, budget: list[int]) -> None:
    """Emit a changed group of lines, diffed by word while the `budget` of tokens lasts."""
    if not old or not new:
        _emit(ops, "delete", old)
        _emit(ops, "insert", new)
        return
    a, b = _TOKENS.findall(old), _TOKENS.findall(new)
    if not a or not b or len(a) + len(b) > min(MAX_GROUP_TOKENS, budget[0]):
        _emit(ops, "delete", old)
        _emit(ops, "insert", new)
        return
    budget[0] -= len(a) + len(b)
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b).get_opcodes():
        if tag == "equal":
            _emit(ops, "equal", "".join(a[i1:i2]))
        else:
            _emit(ops, "delete", "".join(a[i1:i2]))
            _emit(ops, "insert", "".join(b[j1:j2]))


def _emit(ops: list[tuple[str, list[str]]], op: str, text: str) -> None:
    if not text:
        return
    if ops and ops[-1][0] == op:
        ops[-1][1].append(text)
    else:
        ops.append((op, [text]))


def _meta(doc: Doc[Any]) -> dict[str, Any]:
    if "meta" not in doc.keys():
        return {}
    meta = doc.get("meta", type=Map)
    return {key: meta[key] for key in meta.keys()}


def _meta_changes(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    changes: list[dict[str, Any]] = []
    cut = False
    for key in sorted(old.keys() | new.keys()):
        if key in old and key in new and _fingerprint(old[key]) == _fingerprint(new[key]):
            continue
        if len(changes) == MAX_META_KEYS:
            return changes, True
        before, before_cut = _bounded(old[key]) if key in old else (None, False)
        after, after_cut = _bounded(new[key]) if key in new else (None, False)
        change = "added" if key not in old else "removed" if key not in new else "changed"
        shown = key[:MAX_VALUE_CHARS]
        changes.append({"key": shown, "change": change, "before": before, "after": after})
        cut = cut or before_cut or after_cut or shown != key
    return changes, cut


def _shape(value: Any) -> tuple[str, Any, Any]:
    """`("list", length, item getter)`, `("object", sorted keys, getter)` or `("scalar",
    JSON scalar, None)`: how a value reads as JSON."""
    if isinstance(value, Array | list | tuple | bytes | bytearray):
        return "list", len(value), value.__getitem__
    if isinstance(value, Map | dict):
        return "object", sorted(value.keys(), key=str), value.__getitem__
    if isinstance(value, Doc):
        return "object", ["guid"], lambda _: value.guid
    if isinstance(value, XmlText | XmlElement | XmlFragment):
        return "scalar", xml_string(value), None
    if isinstance(value, Text):
        return "scalar", str(value), None
    if isinstance(value, float):
        if not math.isfinite(value):
            return "scalar", None, None
        if value.is_integer() and abs(value) <= 2**53:
            return "scalar", int(value), None
    if value is None or isinstance(value, str | int | float):
        return "scalar", value, None
    return "scalar", f"<{type(value).__name__}>", None


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _fingerprint(value: Any) -> bytes:
    """A digest of the JSON `value` reads as (object keys sorted), without recursion."""
    h = hashlib.blake2b(digest_size=16)
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Token):
            h.update(item.data)
            continue
        kind, content, get = _shape(item)
        if kind == "scalar":
            h.update(_json(content).encode("utf-8", "surrogatepass") + b"\x00")
        elif kind == "list":
            h.update(b"[")
            stack.append(_Token(b"]"))
            stack.extend(get(index) for index in reversed(range(content)))
        else:
            h.update(b"{")
            stack.append(_Token(b"}"))
            for key in reversed(content):
                stack.append(get(key))
                stack.append(_Token(_json(str(key)).encode("utf-8", "surrogatepass") + b":"))
    return h.digest()


class _Token:
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def _bounded(value: Any) -> tuple[Any, bool]:
    """`value` as JSON whose compact encoding is at most MAX_VALUE_CHARS, and whether it was
    cut. Entries are read in order and only while they fit: a huge array costs no more."""
    budget, cut = MAX_VALUE_CHARS, False
    root: list[Any] = []
    # ("value", item, parent, key, length of the separator and key before it)
    # or ("next", shape of a list or object, its container, index of the entry to read)
    tasks: list[tuple[Any, ...]] = [("value", value, root, None, 0)]
    while tasks:
        task = tasks.pop()
        if task[0] == "next":
            _, (kind, content, get), parent, index = task
            if index == (content if kind == "list" else len(content)):
                continue
            tasks.append(("next", (kind, content, get), parent, index + 1))
            key = str(content[index]) if kind == "object" else None
            overhead = (1 if index else 0) + (0 if key is None else len(_json(key)) + 1)
            item = get(index if key is None else content[index])
            tasks.append(("value", item, parent, key, overhead))
            continue
        _, item, parent, key, overhead = task
        kind, content, get = _shape(item)
        if kind == "scalar":
            if overhead + len(_json(content)) > budget:
                cut = True
                if not isinstance(content, str) or budget - overhead < 2:
                    break
                content = _cut(content, budget - overhead)
                tasks.clear()
            budget -= overhead + len(_json(content))
            _place(parent, key, content)
        elif overhead + 2 > budget:
            cut = True
            break
        else:
            budget -= overhead + 2
            container: list[Any] | dict[str, Any] = [] if kind == "list" else {}
            _place(parent, key, container)
            tasks.append(("next", (kind, content, get), container, 0))
    return (root[0] if root else None), cut


def _cut(text: str, length: int) -> str:
    """The longest start of `text` whose JSON is at most `length` characters."""
    lo, hi = 0, min(len(text), length)
    while lo < hi:
        middle = (lo + hi + 1) // 2
        if len(_json(text[:middle])) <= length:
            lo = middle
        else:
            hi = middle - 1
    return text[:lo]


def _place(parent: list[Any] | dict[str, Any], key: str | None, value: Any) -> None:
    if isinstance(parent, dict):
        parent[key or ""] = value
    else:
        parent.append(value)


def _body(doc: Doc[Any]) -> tuple[str, bool]:
    return body_text(doc), _beyond_bounds(doc)


def _beyond_bounds(doc: Doc[Any]) -> bool:
    """Whether `body_text` stopped at one of its bounds before the end of the body: walks the
    body as it does, no further than those bounds."""
    if "body" not in doc.keys():
        return False
    stack: list[Any] = list(reversed(list(doc.get("body", type=XmlFragment).children)))
    visited = size = 0
    while stack:
        if visited >= MAX_BODY_NODES or size >= MAX_SEARCH_CHARS:
            return True
        node = stack.pop()
        visited += 1
        if isinstance(node, str):
            size += len(node)
        elif isinstance(node, XmlText):
            size += sum(len(insert) for insert, _ in node.diff() if isinstance(insert, str))
        elif isinstance(node, XmlElement):
            stack.append("\n")
            stack.extend(reversed(list(node.children)))
    return size > MAX_SEARCH_CHARS


def _read(what: str, read: Any, doc: Doc[Any]) -> Any:
    try:
        return read(doc)
    except Exception:
        # Content we fail to read is our bug (or the library's), not the client's fault: the
        # rest of the diff is shown all the same.
        log.exception("note %s: could not read its %s for a version diff", doc.guid, what)
        return None
