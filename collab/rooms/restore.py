"""Restoring a note's content to a version's as an ordinary forward change (`restore_content`).

The document is not rewound: the changes that turn its `meta` and `body` into the version's
are made in one transaction, as a user would make them, so they reach every client as one
update and merge with what others edit concurrently or offline. As little as possible is
changed, so that update stays small when the difference is:

- `meta` (Y.Map): keys the version lacks are deleted, a key whose value differs is set to a
  copy of the version's (a plain value as a plain value; an Array, Map, Text or XmlFragment as
  a new one of the same kind and content; a subdocument as one of the same guid), equal keys
  are untouched. A version without a `meta` root, or whose `meta` is not a map, empties it.
- `body` (Y.XmlFragment): a list of children is diffed. Equal children are untouched: the
  common prefix and suffix, and in between the children that occur once on each side, in
  order (patience anchors). In each gap left, a child of the same kind (an XmlElement of the
  same tag, or an XmlText) is updated in place and the others are deleted, the version's
  inserted as deep copies. An element updated in place gets the version's attributes and its
  children are diffed the same way; an XmlText keeps the common prefix and suffix of its
  formatted content (characters with their attributes, embeds) and the middle is replaced.
- Other roots are left alone.

Values are compared by a digest of what is read (kind, tag, attributes, formatted text, plain
values), so a value equal by `to_py()` but of another kind (a list and a Y.Array) is replaced.

Restoring never raises for a document's content, whatever its depth or size: trees are walked
with explicit stacks, the anchor search has a budget linear in the number of children, and a
gap is paired by kind with difflib only while it is small (MAX_GAP_PAIRS), by position beyond.
What pycrdt cannot write is left out and logged: an XmlElement or XmlText as a map or array
value, an XmlFragment inside a text or among children. A children list that also holds items
that are not XML nodes (pycrdt lists only the nodes) cannot be addressed by index, so it is
rebuilt whole.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
from typing import Any

from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from collab.rooms.sequence_anchors import equal_pairs

log = logging.getLogger(__name__)

MAX_GAP_PAIRS = 10_000
"""A gap of `a` and `b` children is paired by kind with difflib while `a * b` is at most this."""
MATCH_WORK_PER_CHILD = 8
"""Budget of the anchor search, in children visited per child of the two lists."""

_PLAIN = (type(None), bool, int, float, str, bytes, bytearray, list, tuple, dict)
# The kinds pycrdt refuses to write into each kind of container.
_UNWRITABLE = {
    "map": {"element", "xmltext", "other"},
    "array": {"element", "xmltext", "other"},
    "text": {"element", "xmltext", "fragment", "other"},
    "xmltext": {"fragment", "other"},
    "children": {"fragment", "text", "array", "map", "doc", "plain", "other"},
}
_EMPTY: dict[str, Any] = {
    "xmltext": XmlText,
    "fragment": XmlFragment,
    "text": Text,
    "array": Array,
    "map": Map,
}
_CANNOT = object()
_END = object()


def restore_content(doc: Doc[Any], target: Doc[Any]) -> None:
    """Change `doc`'s `meta` and `body` in one transaction so that they equal `target`'s (see
    the module docstring); `target` is only read."""
    if doc is target:
        return
    writer = _Writer()
    doc_roots, target_roots = set(doc.keys()), set(target.keys())
    with doc.transaction():
        _restore_meta(doc, target, doc_roots, target_roots, writer)
        if "body" in target_roots or "body" in doc_roots:
            current = _read(doc.get("body", type=XmlFragment))
            wanted = _read(target.get("body", type=XmlFragment) if "body" in target_roots else None)
            writer.updates.append((current, wanted))
        writer.run()
    if writer.skipped:
        log.warning(
            "note %s: the restore left out %d values pycrdt cannot write", doc.guid, writer.skipped
        )


def _restore_meta(
    doc: Doc[Any], target: Doc[Any], doc_roots: set[str], target_roots: set[str], writer: _Writer
) -> None:
    if "meta" in target_roots:
        wanted = _read(target.get("meta", type=Map)).entries
    elif "meta" in doc_roots:
        wanted = {}
    else:
        return
    meta = doc.get("meta", type=Map)
    current = _read(meta).entries
    for key in sorted(current.keys() - wanted.keys()):
        del meta[key]
    for key in sorted(wanted):
        if key not in current or current[key].digest != wanted[key].digest:
            writer.put(meta, key, wanted[key])


class _Node:
    """One value as read: its kind, what it holds, and a digest of all of that."""

    __slots__ = ("attrs", "digest", "entries", "items", "kind", "runs", "tag", "value", "whole")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.kind = _kind(value)
        self.tag = ""
        self.attrs: dict[str, Any] = {}
        self.items: list[_Node] = []  # children of an element or fragment, items of an array
        self.entries: dict[str, _Node] = {}  # of a map
        self.runs: list[Run] = []  # content of a text
        self.whole = True  # False: a children list also holds items that are not XML nodes
        self.digest = b""


Run = tuple[str | _Node, dict[str, Any], bytes]
"""A piece of formatted content: a string or an embed, its attributes and their digest."""


def _kind(value: Any) -> str:
    for kind, cls in (*_EMPTY.items(), ("element", XmlElement), ("doc", Doc)):
        if isinstance(value, cls):
            return str(kind)
    return "plain" if isinstance(value, _PLAIN) else "other"


def _read(value: Any) -> _Node:
    """The tree of `value` read into nodes with their digests (None reads as an empty body)."""
    root = _Node(XmlFragment() if value is None else value)
    if value is None:
        root.digest = _digest(root)
        return root
    order, stack = [root], [root]
    while stack:
        found = _expand(stack.pop())
        order.extend(found)
        stack.extend(found)
    # Children were found after their parents: in reverse, every digest needs only done ones.
    for node in reversed(order):
        node.digest = _digest(node)
    return root


def _expand(node: _Node) -> list[_Node]:
    value = node.value
    if node.kind in ("element", "fragment"):
        if node.kind == "element":
            node.tag = value.tag or ""
            node.attrs = dict(iter(value.attributes))
        children = list(value.children)
        node.whole = len(children) == len(value.children)
        node.items = [_Node(child) for child in children]
        return node.items
    if node.kind in ("xmltext", "text"):
        if node.kind == "xmltext":
            node.attrs = dict(iter(value.attributes))
        node.runs = _runs(value.diff())
        return [content for content, _, _ in node.runs if isinstance(content, _Node)]
    if node.kind == "array":
        node.items = [_Node(item) for item in value]
        return node.items
    if node.kind == "map":
        node.entries = {key: _Node(item) for key, item in value.items()}
        return list(node.entries.values())
    return []


def _runs(delta: list[tuple[Any, dict[str, Any] | None]]) -> list[Run]:
    runs: list[Run] = []
    for insert, raw in delta:
        attrs = dict(raw or {})
        key = _plain_digest(attrs) if attrs else _NO_ATTRIBUTES
        if not isinstance(insert, str):
            runs.append((_Node(insert), attrs, key))
        elif runs and isinstance(runs[-1][0], str) and runs[-1][2] == key:
            runs[-1] = (runs[-1][0] + insert, attrs, key)
        elif insert:
            runs.append((insert, attrs, key))
    return runs


def _digest(node: _Node) -> bytes:
    h = hashlib.blake2b(node.kind.encode(), digest_size=16)
    if node.kind in ("element", "fragment"):
        _feed(h, [node.tag, node.attrs])
        for child in node.items:
            h.update(child.digest)
    elif node.kind in ("xmltext", "text"):
        _feed(h, node.attrs)
        for content, _, attributes in node.runs:
            if isinstance(content, str):
                _feed(h, content)
            else:
                h.update(b"e" + content.digest)
            h.update(attributes)
    elif node.kind == "array":
        for item in node.items:
            h.update(item.digest)
    elif node.kind == "map":
        for key in sorted(node.entries):
            _feed(h, key)
            h.update(node.entries[key].digest)
    elif node.kind == "doc":
        _feed(h, node.value.guid)
    elif node.kind == "other":
        _feed(h, type(node.value).__qualname__)
    else:
        _feed(h, node.value)
    return h.digest()


def _plain_digest(value: Any) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    _feed(h, value)
    return h.digest()


def _feed(h: Any, value: Any) -> None:
    """Feed a canonical encoding of a plain value to `h`, without recursion (any depth)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if item is _END:
            h.update(b")")
        elif item is None or isinstance(item, bool):
            h.update({None: b"n", True: b"t", False: b"f"}[item])
        elif isinstance(item, int | float):
            h.update(b"d" + _number(item) + b";")
        elif isinstance(item, str):
            data = item.encode("utf-8", "surrogatepass")
            h.update(b"s%d:" % len(data) + data)
        elif isinstance(item, bytes | bytearray):
            h.update(b"b%d:" % len(item) + bytes(item))
        elif isinstance(item, list | tuple):
            h.update(b"[")
            stack.append(_END)
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            h.update(b"{")
            stack.append(_END)
            for key in sorted(item, key=str, reverse=True):
                stack.extend((item[key], str(key)))
        else:
            h.update(b"?" + type(item).__qualname__.encode())


def _number(value: int | float) -> bytes:
    # Yjs numbers are doubles: 1 and 1.0 are one value (pycrdt reads most integers as floats).
    try:
        return repr(float(value)).encode()
    except OverflowError:
        return repr(value).encode()


_NO_ATTRIBUTES = _plain_digest({})


class _Writer:
    """Updates in place and writes copies, from two work stacks (no recursion)."""

    def __init__(self) -> None:
        self.updates: list[tuple[_Node, _Node]] = []
        self.fills: list[tuple[_Node, Any]] = []
        self.skipped = 0

    def run(self) -> None:
        while self.updates or self.fills:
            if self.fills:
                self._fill(*self.fills.pop())
            else:
                self._update(*self.updates.pop())

    def _shell(self, node: _Node, container: str) -> Any:
        """A copy of a plain value, or an empty value of `node`'s kind to fill once written;
        _CANNOT when pycrdt cannot write that kind in that container."""
        if node.kind in _UNWRITABLE[container]:
            self.skipped += 1
            return _CANNOT
        if node.kind == "element":
            return XmlElement(node.tag)
        if node.kind == "doc":
            return Doc(guid=node.value.guid)
        empty = _EMPTY.get(node.kind)
        return _writable(node.value) if empty is None else empty()

    def _written(self, node: _Node, shell: Any) -> None:
        if node.kind not in ("plain", "doc"):
            self.fills.append((node, shell))

    def put(self, container: Map[Any], key: str, node: _Node) -> None:
        shell = self._shell(node, "map")
        if shell is _CANNOT:
            if key in container:
                del container[key]
            return
        container[key] = shell
        self._written(node, shell)

    def insert_children(self, parent: Any, index: int, nodes: list[_Node]) -> None:
        # Last first, all at one index: pycrdt finds an index by walking the list from its
        # start, so appending one by one would cost quadratic time.
        for node in reversed(nodes):
            shell = self._shell(node, "children")
            if shell is not _CANNOT:
                parent.children.insert(index, shell)
                self._written(node, shell)

    def insert_runs(self, text: Any, offset: int, runs: list[Run], container: str) -> None:
        for content, attrs, _ in runs:
            if isinstance(content, str):
                text.insert(offset, content, attrs)
                offset += _size(content)
                continue
            shell = self._shell(content, container)
            if shell is not _CANNOT:
                text.insert_embed(offset, shell, attrs)
                self._written(content, shell)
                offset += 1

    def _fill(self, node: _Node, shell: Any) -> None:
        if node.kind in ("element", "xmltext"):
            self._set_attributes(shell, {}, node.attrs)
        if node.kind in ("element", "fragment"):
            self.insert_children(shell, 0, node.items)
        elif node.kind in ("xmltext", "text"):
            self.insert_runs(shell, 0, node.runs, node.kind)
        elif node.kind == "array":
            for item in node.items:
                made = self._shell(item, "array")
                if made is not _CANNOT:
                    shell.append(made)
                    self._written(item, made)
        elif node.kind == "map":
            for key, item in node.entries.items():
                self.put(shell, key, item)

    def _update(self, current: _Node, wanted: _Node) -> None:
        """Make `current` (read from the document) equal `wanted`, of the same kind."""
        if current.digest == wanted.digest:
            return
        if current.kind in ("element", "xmltext"):
            self._set_attributes(current.value, current.attrs, wanted.attrs)
        if current.kind == "xmltext":
            self._update_text(current, wanted)
        else:
            self._update_children(current, wanted)

    def _set_attributes(self, node: Any, current: dict[str, Any], wanted: dict[str, Any]) -> None:
        for key in sorted(current.keys() - wanted.keys()):
            del node.attributes[key]
        for key, value in sorted(wanted.items()):
            if key in current and _plain_digest(current[key]) == _plain_digest(value):
                continue
            if isinstance(value, _PLAIN):
                node.attributes[key] = _writable(value)
            else:
                self.skipped += 1

    def _update_children(self, current: _Node, wanted: _Node) -> None:
        parent, children = current.value, current.value.children
        if not current.whole:
            del children[0 : len(children)]
            self.insert_children(parent, 0, wanted.items)
            return
        old, new = current.items, wanted.items
        # (start, stop, first, last): delete old[start:stop], insert new[first:last] there.
        edits: list[tuple[int, int, int, int]] = []
        i = j = 0
        equal = equal_pairs([n.digest for n in old], [n.digest for n in new], MATCH_WORK_PER_CHILD)
        for next_i, next_j in [*equal, (len(old), len(new))]:
            kept = _pairs_by_kind(
                [_pairing_key(n) for n in old[i:next_i]], [_pairing_key(n) for n in new[j:next_j]]
            )
            for pair_i, pair_j in [*((i + a, j + b) for a, b in kept), (next_i, next_j)]:
                if pair_i > i or pair_j > j:
                    edits.append((i, pair_i, j, pair_j))
                if pair_i < next_i:
                    self.updates.append((old[pair_i], new[pair_j]))
                i, j = pair_i + 1, pair_j + 1
        # From the end, so that the indices of the edits still to come stay valid.
        for start, stop, first, last in reversed(edits):
            if stop > start:
                del children[start:stop]
            self.insert_children(parent, start, new[first:last])

    def _update_text(self, current: _Node, wanted: _Node) -> None:
        old, new = current.runs, wanted.runs
        prefix, prefix_size = _common_prefix(old, new)
        suffix, suffix_size = _common_prefix(_reversed(old), _reversed(new))
        old_units, new_units = _units(old), _units(new)
        if suffix > min(old_units, new_units) - prefix:
            suffix = min(old_units, new_units) - prefix
            suffix_size = _runs_size(_slice(old, old_units - suffix, old_units))
        stop = _runs_size(old) - suffix_size
        if stop > prefix_size:
            del current.value[prefix_size:stop]
        middle = _slice(new, prefix, new_units - suffix)
        self.insert_runs(current.value, prefix_size, middle, "xmltext")


def _writable(value: Any) -> Any:
    """A plain value as pycrdt writes it: it reads bytes as a bytearray but writes only bytes
    (copied without recursion, whatever the depth)."""
    if isinstance(value, bytearray):
        return bytes(value)
    if not isinstance(value, list | tuple | dict):
        return value
    top: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, top, 0)]
    while stack:
        item, parent, key = stack.pop()
        if isinstance(item, bytearray):
            item = bytes(item)
        elif isinstance(item, list | tuple):
            items: list[Any] = [None] * len(item)
            stack.extend((child, items, index) for index, child in enumerate(item))
            item = items
        elif isinstance(item, dict):
            entries: dict[Any, Any] = {}
            stack.extend((child, entries, name) for name, child in item.items())
            item = entries
        parent[key] = item
    return top[0]


def _pairing_key(node: _Node) -> tuple[Any, ...]:
    if node.kind == "element":
        return ("element", node.tag)
    if node.kind == "xmltext":
        return ("xmltext",)
    return ("other", id(node))


def _pairs_by_kind(old: list[Any], new: list[Any]) -> list[tuple[int, int]]:
    """Pairs `(i, j)` of children of one kind in a gap, to update in place."""
    if old == new:
        return [(k, k) for k in range(len(old))]
    if not old or not new:
        return []
    if len(old) * len(new) > MAX_GAP_PAIRS:
        return [(k, k) for k in range(min(len(old), len(new))) if old[k] == new[k]]
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    return [(i + k, j + k) for i, j, n in matcher.get_matching_blocks() for k in range(n)]


def _size(text: str) -> int:
    # pycrdt's text indices count UTF-8 bytes.
    return len(text.encode("utf-8", "surrogatepass"))


def _units(runs: list[Run]) -> int:
    return sum(len(content) if isinstance(content, str) else 1 for content, _, _ in runs)


def _runs_size(runs: list[Run]) -> int:
    return sum(_size(content) if isinstance(content, str) else 1 for content, _, _ in runs)


def _reversed(runs: list[Run]) -> list[Run]:
    return [(c[::-1] if isinstance(c, str) else c, a, k) for c, a, k in reversed(runs)]


def _slice(runs: list[Run], start: int, stop: int) -> list[Run]:
    """The runs between two offsets counted in characters (an embed counts one)."""
    found: list[Run] = []
    offset = 0
    for content, attrs, key in runs:
        length = len(content) if isinstance(content, str) else 1
        if offset + length > start and offset < stop:
            if isinstance(content, str):
                content = content[max(start - offset, 0) : stop - offset]
            found.append((content, attrs, key))
        offset += length
    return found


def _common_prefix(old: list[Run], new: list[Run]) -> tuple[int, int]:
    """The length of the common start of two contents, in characters and in bytes."""
    units = size = 0
    for (a, _, a_key), (b, _, b_key) in zip(old, new, strict=False):
        if a_key != b_key:
            break
        if isinstance(a, str) and isinstance(b, str):
            n = _common_start(a, b)
            units, size = units + n, size + _size(a[:n])
            if n < len(a) or n < len(b):
                break
        elif isinstance(a, _Node) and isinstance(b, _Node) and a.digest == b.digest:
            units, size = units + 1, size + 1
        else:
            break
    return units, size


def _common_start(a: str, b: str) -> int:
    # Bisecting with slice comparisons: linear in all, at the speed of C.
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while hi - lo > 1:
        middle = (lo + hi) // 2
        if a[lo:middle] == b[lo:middle]:
            lo = middle
        else:
            hi = middle
    return lo
