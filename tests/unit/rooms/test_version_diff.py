"""What changed between two versions of a note: meta changes and a word-level body diff."""

from __future__ import annotations

import difflib
import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from collab.rooms.note_fields import MAX_BODY_NODES, MAX_SEARCH_CHARS, body_text
from collab.rooms.version_diff import (
    MAX_META_KEYS,
    MAX_VALUE_CHARS,
    diff_text,
    version_diff,
)


def _note(text: str | None = None, **meta: Any) -> Doc[Any]:
    """A note with these meta values and one paragraph per line of `text`."""
    doc: Doc[Any] = Doc()
    fields = doc.get("meta", type=Map)
    for key, value in meta.items():
        fields[key] = value
    if text:
        body = doc.get("body", type=XmlFragment)
        with doc.transaction():
            # Last first, at the start: pycrdt walks the list to find an index.
            for line in reversed(text.split("\n")):
                body.children.insert(
                    0, XmlElement("paragraph", {}, [XmlText(line)] if line else [])
                )
    return doc


def _sides(ops: list[dict[str, str]]) -> tuple[str, str]:
    """The before and after texts the ops spell."""
    before = "".join(op["text"] for op in ops if op["op"] in ("equal", "delete"))
    after = "".join(op["text"] for op in ops if op["op"] in ("equal", "insert"))
    return before, after


def _assert_well_formed(ops: list[dict[str, str]]) -> None:
    assert all(op["op"] in ("equal", "insert", "delete") and op["text"] for op in ops)
    assert all(a["op"] != b["op"] for a, b in itertools.pairwise(ops))


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def test_meta_keys_added_removed_and_changed_are_listed_by_key() -> None:
    """Each changed key once, sorted, with its values before and after; equal keys omitted."""
    before = _note(title="Plan", tags=Array(["a"]), due="2026-01-01", priority="low")
    after = _note(title="Plan B", tags=Array(["a", "b"]), pinned=True, priority="low")

    assert version_diff(before, after)["meta"] == [
        {"key": "due", "change": "removed", "before": "2026-01-01", "after": None},
        {"key": "pinned", "change": "added", "before": None, "after": True},
        {"key": "tags", "change": "changed", "before": ["a"], "after": ["a", "b"]},
        {"key": "title", "change": "changed", "before": "Plan", "after": "Plan B"},
    ]


def test_meta_values_are_compared_as_read() -> None:
    """A Y.Text and a string of the same content, or 1 and 1.0, are no change; a null is."""
    before = _note(title=Text("Plan"), count=1, gone=None)
    after = _note(title="Plan", count=1.0)

    assert version_diff(before, after)["meta"] == [
        {"key": "gone", "change": "removed", "before": None, "after": None}
    ]


def test_a_word_inserted_deleted_or_replaced_is_one_op() -> None:
    """Word-level ops inside a changed line; the rest of the text stays equal."""
    before = _note("the quick brown fox\njumps over\nthe lazy dog")
    after = _note("the quick red fox\njumps high over\nthe dog")

    assert version_diff(before, after)["body"] == [
        {"op": "equal", "text": "the quick "},
        {"op": "delete", "text": "brown"},
        {"op": "insert", "text": "red"},
        {"op": "equal", "text": " fox\njumps "},
        {"op": "insert", "text": "high "},
        {"op": "equal", "text": "over\nthe "},
        {"op": "delete", "text": "lazy "},
        {"op": "equal", "text": "dog"},
    ]


def test_lines_added_and_removed_are_whole_ops() -> None:
    """A new line is one insert, a removed line one delete."""
    ops = diff_text("one\ntwo\nthree\n", "one\nthree\nfour\n")

    assert ops == [
        {"op": "equal", "text": "one\n"},
        {"op": "delete", "text": "two\n"},
        {"op": "equal", "text": "three\n"},
        {"op": "insert", "text": "four\n"},
    ]


def test_identical_notes_have_only_equal_ops_and_no_meta_changes() -> None:
    """Same content, written apart: nothing changed."""
    text = "first line\nsecond, with punctuation!"

    diff = version_diff(_note(text, title="T"), _note(text, title="T"))

    assert diff == {"meta": [], "body": [{"op": "equal", "text": text}], "truncated": False}
    assert version_diff(Doc(), Doc()) == {"meta": [], "body": [], "truncated": False}


_LINES = st.lists(st.text(alphabet="ab .,é\t\x01", max_size=12), max_size=8)


@settings(max_examples=200, deadline=None)
@given(_LINES, _LINES)
def test_the_ops_spell_both_bodies(before: list[str], after: list[str]) -> None:
    """Equal and deleted texts make the before body, equal and inserted ones the after body."""
    old, new = _note("\n".join(before)), _note("\n".join(after))

    ops = version_diff(old, new)["body"]

    _assert_well_formed(ops)
    assert _sides(ops) == (body_text(old), body_text(new))


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text())
def test_the_ops_spell_any_two_texts(before: str, after: str) -> None:
    """Whatever the characters (line separators of every kind included)."""
    ops = diff_text(before, after)

    _assert_well_formed(ops)
    assert _sides(ops) == (before, after)


def test_long_values_are_cut_and_the_diff_says_so() -> None:
    """Strings are truncated, lists and maps shortened: each value's JSON fits the bound."""
    after = _note(
        title="x" * 5000,
        tags=Array([f"tag {i}" for i in range(1000)]),
        settings=Map({f"k{i:04}": "v" * 20 for i in range(200)}),
        quoted='"\\' * 1000,
    )

    diff = version_diff(_note(), after)

    assert diff["truncated"]
    values = {change["key"]: change["after"] for change in diff["meta"]}
    assert all(len(_compact(value)) <= MAX_VALUE_CHARS for value in values.values())
    assert values["title"] == "x" * (MAX_VALUE_CHARS - 2)
    assert values["tags"][:2] == ["tag 0", "tag 1"]
    assert 10 < len(values["tags"]) < 1000
    assert list(values["settings"])[:2] == ["k0000", "k0001"]
    assert values["quoted"].startswith('"\\"\\')


def test_short_values_are_whole() -> None:
    """A value within the bound is shown as it is, and nothing is marked truncated."""
    value = {"a": [1, 2.5, None, True], "b": "é" * 100}

    diff = version_diff(_note(), _note(v=Map(value)))

    assert diff["meta"][0]["after"] == value
    assert not diff["truncated"]


def test_at_most_a_hundred_keys_are_listed() -> None:
    """The first keys in order; the diff says some were left out."""
    after = _note(**{f"key{i:03}": i for i in range(150)})

    diff = version_diff(_note(), after)

    assert [change["key"] for change in diff["meta"]] == [
        f"key{i:03}" for i in range(MAX_META_KEYS)
    ]
    assert diff["truncated"]


def test_values_of_any_kind_and_depth_are_shown_as_json() -> None:
    """XML, subdocuments, bytes, NaN, and an array nested 3,000 deep: shown, never raising."""
    doc = _note()
    meta = doc.get("meta", type=Map)
    meta["xml"] = XmlFragment([XmlElement("p", {}, [XmlText("hi")])])
    meta["subdoc"] = Doc(guid="sub")
    meta["bytes"] = b"\x01\x02"
    meta["nan"] = float("nan")
    node: Any = Array()
    meta["deep"] = node
    for _ in range(3000):
        node.append(child := Array())
        node = child

    diff = version_diff(_note(), doc)

    values = {change["key"]: change["after"] for change in diff["meta"]}
    assert values["xml"] == "<p>hi</p>"
    assert values["subdoc"] == {"guid": "sub"}
    assert values["bytes"] == [1, 2]
    assert values["nan"] is None
    assert len(_compact(values["deep"])) <= MAX_VALUE_CHARS
    json.dumps(diff, allow_nan=False)
    assert version_diff(doc, doc)["meta"] == []


def test_a_body_beyond_the_read_bounds_is_marked_truncated() -> None:
    """More text than body_text reads, or more nodes than it visits."""
    long_text = _note("word " * (MAX_SEARCH_CHARS // 4))
    many_nodes = _note("\n" * MAX_BODY_NODES)

    assert version_diff(_note("x"), long_text)["truncated"]
    assert version_diff(many_nodes, _note("x"))["truncated"]
    assert not version_diff(_note("x" * (MAX_SEARCH_CHARS - 1)), _note("y"))["truncated"]


def test_the_worst_bodies_diff_in_bounded_time() -> None:
    """About 64 KiB against 64 KiB, nothing in common: short lines against long ones, lines
    that repeat a lot against others, one line of words against long lines. The ops still
    spell both texts."""
    short_lines = "\n".join(f"{i:>9}" for i in range(7_000))
    long_lines = "\n".join(" ".join(f"w{i}-{j}" for j in range(400)) for i in range(30))
    repeated = "\n".join(f"{i % 200:>9}" for i in range(7_000))
    others = "\n".join(f"{i % 97:>9}" for i in range(7_000))
    one_line = " ".join(f"x{i}" for i in range(15_000))
    cases = [(short_lines, long_lines), (repeated, others), (one_line, long_lines)]
    for before, after in cases:
        old, new = _note(before), _note(after)

        diff = version_diff(old, new)

        _assert_well_formed(diff["body"])
        assert _sides(diff["body"]) == (body_text(old), body_text(new))
        assert len(body_text(old)) + len(body_text(new)) > MAX_SEARCH_CHARS
        assert diff["meta"] == []


def test_swapped_neighbour_lines_cost_linear_work_and_keep_half_the_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A body of distinct short lines against the same with each neighbouring pair swapped:
    difflib alone rescans the rest of the lines for each pair (22 million lines scanned, about
    4 s, for 6,666 lines). Lines are paired by their anchors first: difflib sees only the
    small gaps between them."""
    lines = [f"{i:x}" for i in range(MAX_BODY_NODES // 3)]
    swapped = [lines[i ^ 1] for i in range(len(lines))]
    scanned = [0]
    find_longest_match = difflib.SequenceMatcher.find_longest_match

    def counted(self: Any, alo: int = 0, ahi: Any = None, blo: int = 0, bhi: Any = None) -> Any:
        ahi = len(self.a) if ahi is None else ahi
        bhi = len(self.b) if bhi is None else bhi
        scanned[0] += (ahi - alo) + (bhi - blo)
        return find_longest_match(self, alo, ahi, blo, bhi)

    monkeypatch.setattr(difflib.SequenceMatcher, "find_longest_match", counted)
    old, new = _note("\n".join(lines)), _note("\n".join(swapped))

    diff = version_diff(old, new)

    assert scanned[0] < 20 * len(lines)
    assert _sides(diff["body"]) == (body_text(old), body_text(new))
    equal = sum(op["text"].count("\n") for op in diff["body"] if op["op"] == "equal")
    assert equal >= len(lines) // 2 - 1
