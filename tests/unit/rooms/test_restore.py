"""Restoring a version as a forward change: equal content, small updates, sane merges."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from collab.rooms.restore import restore_content

# A body as the tests write it: ("element", tag, attributes, children) or ("text", runs), a
# run being (string, formatting) or ("embed", value, formatting). At most one attribute and
# one format each: pycrdt's XML string lists several in a random order.
Node = tuple[Any, ...]

_TAGS = st.sampled_from(["paragraph", "heading", "bulletList", "listItem", "blockquote"])
_ATTRIBUTES = st.one_of(
    st.just({}),
    st.fixed_dictionaries({"level": st.sampled_from([1, 2, 3])}),
    st.fixed_dictionaries({"class": st.sampled_from(["a", "b"])}),
)
_FORMATS = st.sampled_from([None, {"bold": True}, {"italic": True}, {"link": {"href": "x"}}])
_RUNS = st.lists(
    st.one_of(
        st.tuples(st.text(min_size=1, max_size=8), _FORMATS),
        st.tuples(st.just("embed"), st.sampled_from([{"image": "a.png"}, 5]), _FORMATS),
    ),
    min_size=1,
    max_size=4,
)
_BODIES = st.lists(
    st.recursive(
        st.tuples(st.just("text"), _RUNS),
        lambda children: st.tuples(
            st.just("element"), _TAGS, _ATTRIBUTES, st.lists(children, max_size=3)
        ),
        max_leaves=10,
    ),
    max_size=5,
)
_PLAIN = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False)
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
# A meta value: ("plain", value) or a shared type ("array", "map", "text") and its content.
_META_VALUES = st.one_of(
    st.tuples(st.just("plain"), _PLAIN),
    st.tuples(st.just("array"), st.lists(_PLAIN, max_size=3)),
    st.tuples(st.just("map"), st.dictionaries(st.text(max_size=3), _PLAIN, max_size=3)),
    st.tuples(st.just("text"), st.text(max_size=10)),
)
_META = st.dictionaries(
    st.sampled_from(["title", "tags", "pinned", "priority", "due", "assignees", "x", ""]),
    _META_VALUES,
    max_size=5,
)


def _shared(kind: str, content: Any) -> Any:
    if kind == "array":
        return Array(content)
    if kind == "map":
        return Map(content)
    if kind == "text":
        return Text(content)
    return content


def _write(doc: Doc[Any], meta: dict[str, tuple[str, Any]], body: list[Node]) -> Doc[Any]:
    fields = doc.get("meta", type=Map)
    for key, (kind, content) in meta.items():
        fields[key] = _shared(kind, content)
    _insert(doc.get("body", type=XmlFragment), 0, body)
    return doc


def _insert(parent: Any, index: int, nodes: list[Node]) -> None:
    for offset, node in enumerate(nodes):
        if node[0] == "element":
            element = parent.children.insert(index + offset, XmlElement(node[1]))
            for key, value in node[2].items():
                element.attributes[key] = value
            _insert(element, 0, node[3])
        else:
            text = parent.children.insert(index + offset, XmlText())
            for run in node[1]:
                if run[0] == "embed":
                    text.insert_embed(len(text), run[1], run[2] or {})
                else:
                    text.insert(len(text), run[0], run[1])


def _note(meta: dict[str, tuple[str, Any]], body: list[Node]) -> Doc[Any]:
    return _write(Doc(), meta, body)


def _fork(doc: Doc[Any]) -> Doc[Any]:
    copy: Doc[Any] = Doc()
    copy.apply_update(doc.get_update())
    return copy


def _tree(doc: Doc[Any]) -> list[tuple[Any, ...]]:
    """The body's nodes in document order, each with its depth, tag, attributes and delta:
    flat, so that comparing a body nested thousands deep needs no recursion."""
    if "body" not in doc.keys():
        return []
    nodes: list[tuple[Any, ...]] = []
    stack: list[tuple[int, Any]] = [
        (0, child) for child in reversed(list(doc.get("body", type=XmlFragment).children))
    ]
    while stack:
        depth, node = stack.pop()
        attributes = dict(iter(node.attributes))
        if isinstance(node, XmlText):
            nodes.append((depth, "text", attributes, _delta(node)))
        else:
            nodes.append((depth, node.tag, attributes))
            stack.extend((depth + 1, child) for child in reversed(list(node.children)))
    return nodes


def _delta(text: XmlText) -> list[tuple[Any, dict[str, Any]]]:
    """The text's delta, adjacent strings of equal formatting merged: pycrdt splits a delta
    wherever a formatting mark is left, even one that changes nothing."""
    delta: list[tuple[Any, dict[str, Any]]] = []
    for value, attrs in text.diff():
        if isinstance(value, str) and delta and isinstance(delta[-1][0], str):
            if delta[-1][1] == (attrs or {}):
                delta[-1] = (delta[-1][0] + value, delta[-1][1])
                continue
        delta.append((_embedded(value), attrs or {}))
    return delta


def _embedded(value: Any) -> Any:
    if isinstance(value, Array | Map | Text):
        return value.to_py()
    if isinstance(value, XmlElement | XmlText):
        return str(value)
    return value


def _meta(doc: Doc[Any]) -> Any:
    return doc.get("meta", type=Map).to_py() if "meta" in doc.keys() else {}


def _body(doc: Doc[Any]) -> str:
    return str(doc.get("body", type=XmlFragment)) if "body" in doc.keys() else ""


def _restore(doc: Doc[Any], target: Doc[Any]) -> list[bytes]:
    """Restore `doc` to `target`; the updates it emitted."""
    updates: list[bytes] = []
    subscription = doc.observe(lambda event: updates.append(event.update))
    try:
        restore_content(doc, target)
    finally:
        doc.unobserve(subscription)
    return updates


def _assert_same_content(doc: Doc[Any], target: Doc[Any], *, markup: bool = True) -> None:
    """Same meta, same body (tags, attributes, formatted text, embeds) and, with `markup`,
    the same XML string, which also shows where formatting marks split a text."""
    assert _meta(doc) == _meta(target)
    assert _tree(doc) == _tree(target)
    if markup:
        assert _body(doc) == _body(target)


def _paragraphs(doc: Doc[Any]) -> list[str]:
    return [
        "".join(str(text) for text in p.children)
        for p in doc.get("body", type=XmlFragment).children
    ]


@settings(max_examples=150, deadline=None)
@given(_META, _BODIES, _META, _BODIES)
def test_any_note_is_restored_to_any_other(
    meta: Any, body: list[Node], target_meta: Any, target_body: list[Node]
) -> None:
    """Unrelated notes: the restored one has the target's meta and body; the target is only
    read, and restoring again changes nothing."""
    doc, target = _note(meta, body), _note(target_meta, target_body)
    target_state = target.get_state()

    restore_content(doc, target)

    _assert_same_content(doc, target, markup=False)
    assert target.get_state() == target_state
    assert _restore(doc, target) == []


def _edit(doc: Doc[Any], data: st.DataObject) -> None:
    """One random edit, as a user would make it."""
    containers: list[Any] = [doc.get("body", type=XmlFragment)]
    texts: list[XmlText] = []
    for container in containers:
        for child in container.children:
            (texts if isinstance(child, XmlText) else containers).append(child)
    kind = data.draw(
        st.sampled_from(["type", "erase", "bold", "block", "drop", "attribute", "meta"])
    )
    if kind in ("type", "erase", "bold") and texts:
        text = data.draw(st.sampled_from(texts))
        offsets = [0]
        for value, _ in text.diff():
            for character in value if isinstance(value, str) else [None]:
                offsets.append(offsets[-1] + (1 if character is None else len(character.encode())))
        start = data.draw(st.sampled_from(offsets))
        stop = data.draw(st.sampled_from([offset for offset in offsets if offset >= start]))
        if kind == "type":
            text.insert(start, data.draw(st.text(min_size=1, max_size=5)), data.draw(_FORMATS))
        elif kind == "erase":
            del text[start:stop]
        else:
            text.format(start, stop, {"bold": True})
    elif kind == "block":
        parent = data.draw(st.sampled_from(containers))
        index = data.draw(st.integers(0, len(parent.children)))
        _insert(parent, index, data.draw(_BODIES))
    elif kind == "drop":
        parent = data.draw(st.sampled_from(containers))
        if len(parent.children):
            del parent.children[data.draw(st.integers(0, len(parent.children) - 1))]
    elif kind == "attribute" and len(containers) > 1:
        element = data.draw(st.sampled_from(containers[1:]))
        element.attributes["level"] = data.draw(st.sampled_from([1, 2, 9]))
    else:
        meta = doc.get("meta", type=Map)
        key = data.draw(st.sampled_from(["title", "tags", "x"]))
        if key in meta and data.draw(st.booleans()):
            del meta[key]
        else:
            meta[key] = _shared(*data.draw(_META_VALUES))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_META, _BODIES, st.data())
def test_an_edited_note_is_restored_to_its_earlier_state(
    meta: Any, body: list[Node], data: st.DataObject
) -> None:
    """A note forked from a version and edited at random is restored to that version."""
    version = _note(meta, body)
    doc = _fork(version)
    for _ in range(data.draw(st.integers(1, 6))):
        _edit(doc, data)

    restore_content(doc, version)

    _assert_same_content(doc, version, markup=False)
    assert _restore(doc, version) == []


def _long_note(paragraphs: int = 200) -> Doc[Any]:
    return _note(
        {"title": ("plain", "Plan"), "tags": ("array", ["a", "b"])},
        [
            ("element", "paragraph", {}, [("text", [(f"paragraph {i} says something long", None)])])
            for i in range(paragraphs)
        ],
    )


def test_undoing_a_small_edit_is_a_small_update() -> None:
    """One word typed into one paragraph of a long note: the restore's update is tiny."""
    version = _long_note()
    doc = _fork(version)
    doc.get("body", type=XmlFragment).children[100].children[0].insert(10, "oops ")

    updates = _restore(doc, version)

    _assert_same_content(doc, version)
    assert len(updates) == 1
    assert len(updates[0]) * 50 < len(version.get_update())


def test_restoring_removed_and_changed_content_writes_only_that() -> None:
    """A deleted paragraph, a reworded one and a changed title come back; the update holds
    them, not the rest of the note."""
    version = _long_note()
    doc = _fork(version)
    body = doc.get("body", type=XmlFragment)
    del body.children[50]
    text = body.children[120].children[0]
    del text[0:9]
    text.insert(0, "section", {"bold": True})
    doc.get("meta", type=Map)["title"] = "Other"

    updates = _restore(doc, version)

    _assert_same_content(doc, version)
    assert len(updates) == 1
    assert len(updates[0]) * 20 < len(version.get_update())


def test_restoring_the_same_content_emits_no_update() -> None:
    """A note equal to the version, forked from it or written apart, is left untouched."""
    version = _long_note(20)

    assert _restore(_fork(version), version) == []
    assert _restore(_long_note(20), version) == []
    assert _restore(version, version) == []


def test_other_roots_are_left_alone() -> None:
    """Only `meta` and `body` are restored."""
    version = _long_note(2)
    doc = _long_note(3)
    doc.get("comments", type=Map)["c1"] = "kept"

    restore_content(doc, version)

    assert doc.get("comments", type=Map).to_py() == {"c1": "kept"}
    _assert_same_content(doc, version)


def _offline_scene(edit: Any) -> tuple[Doc[Any], Doc[Any], Doc[Any]]:
    """The server's note (restored), the offline client's copy (edited), the version."""
    version = _note(
        {"title": ("plain", "Plan")},
        [
            ("element", "paragraph", {}, [("text", [(text, None)])])
            for text in ("alpha one", "beta two", "gamma three")
        ],
    )
    server = _fork(version)
    body = server.get("body", type=XmlFragment)
    text = body.children[2].children[0]
    del text[6:11]
    text.insert(6, "3")
    body.children.append(XmlElement("paragraph", {}, [XmlText("delta")]))
    server.get("meta", type=Map)["title"] = "Plan 2"
    client = _fork(server)

    client_state = client.get_state()
    edit(client.get("body", type=XmlFragment))
    offline = client.get_update(client_state)
    restored = _restore(server, version)
    server.apply_update(offline)
    for update in restored:
        client.apply_update(update)
    return server, client, version


def test_offline_typing_in_an_unchanged_paragraph_survives_the_restore() -> None:
    """Text typed offline where the restore changes nothing merges in once, both ways."""
    server, client, version = _offline_scene(
        lambda body: body.children[0].children[0].insert(6, "XYZ")
    )

    for doc in (server, client):
        assert _paragraphs(doc) == ["alpha XYZone", "beta two", "gamma three"]
        assert _meta(doc) == _meta(version)
    assert _tree(server) == _tree(client)


def test_offline_typing_in_a_restored_paragraph_appears_once() -> None:
    """Text typed offline into a paragraph the restore rewrites appears once, and nothing of
    the restored content is doubled."""
    server, client, _ = _offline_scene(lambda body: body.children[2].children[0].insert(6, "XYZ"))

    for doc in (server, client):
        first, second, third = _paragraphs(doc)
        assert (first, second) == ("alpha one", "beta two")
        assert third.count("XYZ") == 1
        assert third.replace("XYZ", "") == "gamma three"
    assert _tree(server) == _tree(client)


def test_a_meta_that_is_not_a_map_in_the_version_empties_the_meta() -> None:
    """A version whose `meta` is an array or a text (read as a map: no entries)."""
    for value in (Array([1, 2]), Text("title")):
        version: Doc[Any] = Doc()
        version["meta"] = value
        remote = _fork(version)
        for target in (version, remote):
            doc = _long_note(1)

            restore_content(doc, target)

            assert _meta(doc) == {}


def test_a_version_without_meta_or_body_empties_them() -> None:
    """A version with neither root: the note's meta and body become empty."""
    doc = _long_note(3)

    restore_content(doc, Doc())

    assert _meta(doc) == {}
    assert _tree(doc) == []


def test_a_body_holding_items_that_are_not_xml_is_rebuilt() -> None:
    """A client wrote the body as an array: its children cannot be addressed, so the whole
    list is replaced by the version's."""
    writer: Doc[Any] = Doc()
    writer["body"] = Array([1, "s", Map({"a": 1})])
    doc = _fork(writer)
    version = _long_note(2)

    restore_content(doc, version)

    assert _tree(doc) == _tree(version)
    assert len(doc.get("body", type=XmlFragment).children) == 2


def test_meta_values_of_every_kind_are_copied() -> None:
    """Nested shared types, XML fragments, bytes, subdocuments and NaN are copied or kept."""
    version: Doc[Any] = Doc()
    meta = version.get("meta", type=Map)
    meta["nested"] = Array([Map({"t": Text("x"), "a": Array([1, [2]])}), "s"])
    meta["xml"] = XmlFragment([XmlElement("p", {"k": "v"}, [XmlText("in xml")])])
    meta["bytes"] = b"\x00\x01"
    meta["nan"] = float("nan")
    subdoc: Doc[Any] = Doc()
    meta["subdoc"] = subdoc
    doc = _long_note(1)

    restore_content(doc, version)

    restored = doc.get("meta", type=Map)
    assert restored["nested"].to_py() == meta["nested"].to_py()
    assert isinstance(restored["nested"][0]["t"], Text)
    assert str(restored["xml"]) == str(meta["xml"])
    assert restored["bytes"] == b"\x00\x01"
    assert restored["subdoc"].guid == subdoc.guid
    assert set(restored.keys()) == set(meta.keys())
    assert _restore(doc, version) == []


def test_shared_embeds_and_text_attributes_are_copied() -> None:
    """A map, an array and an XML element embedded in a text, and a text's own attributes."""
    version: Doc[Any] = Doc()
    text = version.get("body", type=XmlFragment).children.append(XmlText("ab"))
    text.attributes["lang"] = "fr"
    text.insert_embed(1, Map({"src": "a.png"}), {"bold": True})
    text.insert_embed(1, Array([1, "x"]))
    text.insert_embed(0, XmlElement("mention", {"id": "u1"}, [XmlText("@u1")]))
    doc = _long_note(1)

    restore_content(doc, version)

    restored = doc.get("body", type=XmlFragment).children[0]
    assert isinstance(restored, XmlText)
    assert dict(iter(restored.attributes)) == {"lang": "fr"}
    assert _tree(doc) == _tree(version)
    mention = restored.diff()[0][0]
    assert (mention.tag, str(mention)) == ("mention", '<mention id="u1">@u1</mention>')
    assert _restore(doc, version) == []


def test_a_plain_value_and_a_shared_one_of_equal_content_are_different() -> None:
    """A list in the note and a Y.Array in the version: replaced by a Y.Array."""
    version = _note({"tags": ("array", ["a"])}, [])
    doc = _note({"tags": ("plain", ["a"])}, [])

    assert len(_restore(doc, version)) == 1
    assert isinstance(doc.get("meta", type=Map)["tags"], Array)


def _nested(depth: int, text: str) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    node: Any = doc.get("body", type=XmlFragment)
    for _ in range(depth):
        node = node.children.append(XmlElement("div"))
    node.children.append(XmlText(text))
    return doc


def test_a_body_nested_five_thousand_deep_is_restored() -> None:
    """Written, updated in place at the bottom, and removed, without recursion."""
    version = _nested(5000, "deep")
    doc: Doc[Any] = Doc()

    restore_content(doc, version)
    assert _tree(doc) == _tree(version)

    edited = _fork(version)
    updates = _restore(edited, _nested(5000, "deeper"))
    assert _tree(edited) == _tree(_nested(5000, "deeper"))
    assert len(updates) == 1
    assert len(updates[0]) < 100

    restore_content(edited, Doc())
    assert _tree(edited) == []


def test_a_meta_value_nested_thousands_deep_is_copied() -> None:
    """A Y.Array nested 3,000 deep is copied without recursion."""
    version: Doc[Any] = Doc()
    node: Any = version.get("meta", type=Map)
    node["deep"] = node = Array()
    for _ in range(3000):
        node.append(child := Array())
        node = child
    node.append("bottom")
    doc: Doc[Any] = Doc()

    restore_content(doc, version)

    node = doc.get("meta", type=Map)["deep"]
    for _ in range(3000):
        node = node[0]
    assert node[0] == "bottom"
    assert _restore(doc, version) == []


def _paragraph_note(texts: list[str]) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    body = doc.get("body", type=XmlFragment)
    with doc.transaction():
        # Last first, at the start: pycrdt walks the list to find an index.
        for text in reversed(texts):
            body.children.insert(0, XmlElement("paragraph", {}, [XmlText(text)]))
    return doc


def test_twenty_thousand_paragraphs_are_restored() -> None:
    """Written from nothing, then restored after edits far apart, then to a note whose every
    paragraph differs, and to nothing."""
    texts = [f"line {i}" for i in range(20_000)]
    version = _paragraph_note(texts)
    doc: Doc[Any] = Doc()

    restore_content(doc, version)
    assert _paragraphs(doc) == texts

    body = doc.get("body", type=XmlFragment)
    del body.children[15_000]
    body.children.insert(10_000, XmlElement("heading", {}, [XmlText("new")]))
    body.children[5_000].children[0].insert(0, "edited ")
    updates = _restore(doc, version)
    assert _paragraphs(doc) == texts
    assert len(updates[0]) < 200

    other = _paragraph_note([f"other {i}" for i in range(20_000)])
    restore_content(doc, other)
    assert _paragraphs(doc) == _paragraphs(other)

    restore_content(doc, Doc())
    assert _paragraphs(doc) == []
