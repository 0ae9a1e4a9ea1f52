"""The update reader against the real yjs encoder, and yjs against pycrdt on crafted updates.

Random yjs edit sessions (`tests/support/js/updates.mjs`: text with formats and embeds, maps
with every value kind, arrays, XML, several clients, merges, state encodings and diffs) are
read as yjs reads them, and pycrdt applying them ends with the roots yjs has. Crafted updates
the reader accepts read alike in both libraries; the divergences the reader cannot see,
because they depend on the document, are pinned as such.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Doc, get_state

from collab.protocol.updates import (
    ClientRange,
    InvalidUpdate,
    UpdateShape,
    missing_dependencies,
    read_state_vector,
    read_update,
)
from tests.support.yjs_updates import (
    ARRAY_TYPE,
    MAP_TYPE,
    TEXT_TYPE,
    XML_ELEMENT_TYPE,
    XML_TEXT_TYPE,
    content_any,
    content_binary,
    content_deleted,
    content_doc,
    content_embed,
    content_format,
    content_string,
    content_type,
    encode_update,
    gc,
    item,
    pycrdt_apply,
    skip,
    yjs_apply,
    yjs_sessions,
)

pytestmark = pytest.mark.node

SESSIONS_PER_BATCH = 120
BATCHES = settings(max_examples=3, deadline=None, database=None)


def _clocks(state_vector: dict[str, int]) -> dict[int, int]:
    return {int(client): clock for client, clock in state_vector.items()}


def expected_shape_parts(read: dict[str, Any]) -> tuple[dict[int, ClientRange], dict[int, int]]:
    """The client ranges and delete-set ends an `UpdateShape` must hold for what yjs read
    (Y.decodeUpdate): a client's structs end where its trailing Skip structs begin."""
    structs: dict[int, list[tuple[int, int, str]]] = {}
    for client, clock, length, kind in read["structs"]:
        structs.setdefault(client, []).append((clock, clock + length, kind))
    clients: dict[int, ClientRange] = {}
    for client, runs in structs.items():
        while runs[-1][2] == "Skip":
            runs.pop()
        skips = tuple((start, end) for start, end, kind in runs if kind == "Skip")
        clients[client] = ClientRange(runs[0][0], runs[-1][1], skips)
    deletes = {
        int(client): max(clock + length for clock, length in ranges)
        for client, ranges in read["delete_set"].items()
    }
    return clients, deletes


def yjs_state_vector_of(shape: UpdateShape) -> dict[int, int]:
    """What Y.encodeStateVectorFromUpdate reports for an update of `shape`: clients whose
    structs start at clock 0, up to their first Skip."""
    clocks = {}
    for client, structs in shape.clients.items():
        if structs.start == 0:
            end = structs.skips[0][0] if structs.skips else structs.end
            if end > 0:
                clocks[client] = end
    return clocks


def check_session(session: dict[str, Any]) -> None:
    """Every update of a yjs session is read as yjs reads it, nothing it builds on is
    missing, and pycrdt applying the session's transactions (or its full states) has the
    roots and the state vector yjs has."""
    transactions: list[bytes] = []
    states: list[bytes] = []
    for update in session["updates"]:
        raw = bytes.fromhex(update["hex"])
        where = f"seed {session['seed']}, {update['origin']} {update['hex']}"
        try:
            shape = read_update(raw)
        except InvalidUpdate as error:
            raise AssertionError(f"{where}: {error}") from None
        read = update["read"]
        clients, deletes = expected_shape_parts(read)
        assert shape.clients == clients, where
        assert shape.deletes == deletes, where
        assert shape.struct_count == len(read["structs"]), where
        assert yjs_state_vector_of(shape) == _clocks(read["state_vector"]), where
        assert missing_dependencies(shape, _clocks(update["base"])) is None, where
        if update["origin"] == "transaction":
            transactions.append(raw)
        elif update["origin"] == "state":
            states.append(raw)
            assert read_state_vector(get_state(raw)) == _clocks(read["state_vector"]), where
    expected = {"errors": [None] * len(transactions), "json": session["json"]}
    applied = pycrdt_apply(session["roots"], transactions)
    assert applied["state_vector"] == _clocks(session["state_vector"]), session["seed"]
    assert {k: applied[k] for k in expected} == expected, session["seed"]
    from_states = pycrdt_apply(session["roots"], states)
    assert from_states["json"] == session["json"], session["seed"]


@BATCHES
@given(st.integers(0, 2**31))
def test_updates_the_yjs_encoder_writes_read_as_yjs_reads_them(first_seed: int) -> None:
    """Every update of random yjs sessions is accepted with the shape yjs reads, and pycrdt
    applying the sessions ends with the text, maps, arrays and XML yjs has."""
    seeds = range(first_seed, first_seed + SESSIONS_PER_BATCH)
    for session in yjs_sessions(seeds):
        check_session(session)


# ---- crafted updates: both libraries, one document ----

BASE_CLIENT = 7
ROOTS = {"t": "text", "m": "map", "a": "array", "x": "xml"}
BASE = encode_update(
    [
        (
            BASE_CLIENT,
            0,
            [
                item(content_string("hello"), root="t"),  # 0-4
                item(content_any(1), root="m", sub="k"),  # 5
                item(content_any(1, 2, 3), root="a"),  # 6-8
                item(content_type(XML_ELEMENT_TYPE, "p"), root="x"),  # 9
                item(content_type(XML_TEXT_TYPE), parent=(BASE_CLIENT, 9)),  # 10
                item(content_string("hi"), parent=(BASE_CLIENT, 10)),  # 11-12
                item(content_type(MAP_TYPE), root="m", sub="nested"),  # 13
                item(content_string("bye"), origin=(BASE_CLIENT, 4)),  # 14-16, deleted
                item(content_type(MAP_TYPE), root="m", sub="gone"),  # 17, deleted
                item(content_any(5), parent=(BASE_CLIENT, 17), sub="x"),  # 18
                item(content_type(TEXT_TYPE), origin=(BASE_CLIENT, 8)),  # 19: a Y.Text in "a"
                item(content_string("in"), parent=(BASE_CLIENT, 19)),  # 20-21
            ],
        )
    ],
    {BASE_CLIENT: [(14, 5)]},
)
"""A document of client 7 with text, a map, an array holding a Y.Text and XML; its text
"bye" and its map "gone" are deleted."""


def ours(*structs: bytes, deletes: dict[int, list[tuple[int, int]]] | None = None) -> bytes:
    """An update of client 9's structs from clock 0 on top of `BASE`."""
    return encode_update([(9, 0, list(structs))] if structs else [], deletes)


B = BASE_CLIENT
ACCEPTED_AND_READ_ALIKE = {
    "typing at the end": ours(item(content_string("X"), origin=(B, 4))),
    "origin in the middle of an item": ours(item(content_string("Q"), origin=(B, 2))),
    "right origin only": ours(item(content_string("Q"), right=(B, 2))),
    "origin and right origin the same": ours(
        item(content_string("Q"), origin=(B, 2), right=(B, 2))
    ),
    "right origin left of origin": ours(item(content_string("Q"), origin=(B, 3), right=(B, 1))),
    "origin and right origin in other parents": ours(
        item(content_string("Q"), origin=(B, 4), right=(B, 7))
    ),
    "origin in a deleted text": ours(item(content_string("Q"), origin=(B, 15))),
    "origin in a deleted map": ours(item(content_any(1), origin=(B, 17))),
    "parent a deleted map": ours(item(content_any(3), parent=(B, 17), sub="y")),
    "parent a collected child": ours(item(content_any(3), parent=(B, 18), sub="y")),
    "parent deleted text": ours(item(content_string("P"), parent=(B, 14))),
    "parent a type of the update": ours(
        item(content_type(MAP_TYPE), root="m", sub="mine"),
        item(content_any(1), parent=(9, 0), sub="z"),
    ),
    "parent sub on an item with an origin": ours(
        item(content_string("Q"), origin=(B, 4), extra_info=0x20)
    ),
    "a GC then an item in it": ours(gc(3), item(content_string("Q"), origin=(9, 2))),
    "a GC then a root item": ours(gc(3), item(content_string("Q"), root="t")),
    "deleted content then an item in it": ours(
        item(content_deleted(5), origin=(B, 4)), item(content_string("Q"), origin=(9, 3))
    ),
    "deleted content of 2**32 - 2 clocks": ours(item(content_deleted(2**32 - 2), origin=(B, 4))),
    "overlapping deletions": ours(deletes={B: [(0, 3), (1, 3)]}),
    "unsorted deletions": ours(deletes={B: [(3, 2), (0, 4), (2, 1)]}),
    "deleting a type with children": ours(deletes={B: [(19, 1)]}),
    "deleting an XML element": ours(deletes={B: [(9, 1)]}),
    "a whole surrogate pair deleted": ours(
        item(content_string("a😀b"), origin=(B, 4)), deletes={9: [(1, 2)]}
    ),
    "map entries of any, binary, embed, deleted": ours(
        item(content_any(1, 2, 3), root="m", sub="multi"),
        item(content_embed('{"e": 1}'), root="m", sub="e"),
        item(content_deleted(3), root="m", sub="k"),
    ),
    "text of values, types and embeds": ours(
        item(content_any(1, "two"), origin=(B, 1)),
        item(content_type(MAP_TYPE), origin=(9, 1)),
        item(content_embed('{"image": "x.png"}'), origin=(9, 2)),
    ),
    "array of formats, embeds and strings": ours(
        item(content_format("bold", "true"), origin=(B, 6)),
        item(content_embed("[1]"), origin=(9, 0)),
        item(content_string("str"), origin=(9, 1)),
    ),
    "a subdocument": ours(item(content_doc("g1"), root="a")),
    "two subdocuments of one guid": ours(
        item(content_doc("g1"), root="a"), item(content_doc("g1"), origin=(9, 0))
    ),
    "an XML element named __proto__": ours(
        item(content_type(XML_ELEMENT_TYPE, "__proto__"), root="x")
    ),
    "an empty root name and map key": ours(
        item(content_string("Q"), root=""), item(content_any(1), root="m", sub="")
    ),
    "JSON __proto__ key": ours(item(content_embed('{"__proto__": {"x": 1}}'), origin=(B, 1))),
    "JSON floats serde reads exactly": ours(
        item(content_embed("[0.1, 3.141592653589793, 1e300, 0.30000000000000004]"), origin=(B, 1))
    ),
}


def _compare(update: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """What yjs and pycrdt make of `BASE` then `update`: (yjs, pycrdt)."""
    [yjs] = yjs_apply([{"roots": ROOTS, "base": [BASE.hex()], "updates": [update.hex()]}])
    pycrdt = pycrdt_apply(ROOTS, [BASE], [update])
    yjs_view = {
        "errors": yjs["errors"],
        "state_vector": _clocks(yjs["state_vector"]),
        "json": yjs["json"],
        "pending": yjs["pending_structs"] is not None or yjs["pending_ds"] is not None,
    }
    pycrdt_view = {**pycrdt, "pending": False}
    return yjs_view, pycrdt_view


def test_crafted_updates_the_reader_accepts_read_alike_in_yjs_and_pycrdt() -> None:
    """Unusual updates the reader accepts (origins in other parents or in deleted content,
    GC and deleted structs, overlapping deletions, values of every kind in every parent,
    subdocuments) leave yjs and pycrdt with the same document, nothing pending."""
    names = list(ACCEPTED_AND_READ_ALIKE)
    updates = [ACCEPTED_AND_READ_ALIKE[name] for name in names]
    clocks = read_state_vector(_base_state())
    for name, update in zip(names, updates, strict=True):
        assert missing_dependencies(read_update(update), clocks) is None, name
    cases = [{"roots": ROOTS, "base": [BASE.hex()], "updates": [u.hex()]} for u in updates]
    for name, update, yjs in zip(names, updates, yjs_apply(cases), strict=True):
        pycrdt = pycrdt_apply(ROOTS, [BASE], [update])
        assert yjs["pending_structs"] is None, name
        assert yjs["pending_ds"] is None, name
        assert yjs["errors"] == pycrdt["errors"] == [None, None], name
        assert _clocks(yjs["state_vector"]) == pycrdt["state_vector"], name
        assert yjs["json"] == pycrdt["json"], name


def _base_state() -> bytes:
    doc = Doc()
    doc.apply_update(BASE)
    return doc.get_state()


# ---- random unusual updates: each item placed by neighbours of one parent ----

Id = tuple[int, int]
# For each parent of BASE: the ids of its items, the content kinds an item there may have,
# and how an item names that parent when it has no neighbour.
PARENTS: dict[str, tuple[list[Id], tuple[str, ...], dict[str, Any]]] = {
    "text": (
        [(B, clock) for clock in (0, 1, 2, 3, 4, 14, 15, 16)],
        ("string", "string", "embed", "format", "any", "type", "deleted"),
        {"root": "t"},
    ),
    # No strings in arrays: yrs never finishes reading an array where a non-ASCII string
    # item has a neighbour after it: a hang that depends on the document (the parent type).
    "array": (
        [(B, clock) for clock in (6, 7, 8, 19)],
        ("any", "any", "binary", "embed", "type", "doc", "deleted"),
        {"root": "a"},
    ),
    "map entry k": (
        [(B, 5)],
        ("any", "binary", "type", "doc", "deleted"),
        {"root": "m", "sub": "k"},
    ),
    "nested text": (
        [(B, 20), (B, 21)],
        ("string", "embed", "format", "deleted"),
        {"parent": (B, 19)},
    ),
    "XML text": ([(B, 11), (B, 12)], ("string", "embed", "format", "deleted"), {"parent": (B, 10)}),
    "XML fragment": ([(B, 9)], ("xml", "deleted"), {"root": "x"}),
}
# No astral characters: a deletion or origin between the halves of a surrogate pair is a
# known divergence (see DOCUMENT_DEPENDENT).
PIECES = ["a", "xy", "é", "中", "\ufeff", "ß", " "]
VALUES = [
    0,
    1,
    -5,
    2**31,
    2**40,
    0.5,
    -1.25,
    "s",
    "",
    None,
    True,
    False,
    b"\x01",
    [1, "x"],
    {"k": 1},
]
JSON_TEXTS = ['{"image": "x.png"}', "1", '"e"', "[1, 2]", "0.5", "null", "true", '{"a": {"b": []}}']


def _content(rng: random.Random, kind: str) -> tuple[tuple[int, bytes], int]:
    """Content of `kind` and its length in clocks."""
    if kind == "string":
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 3)))
        return content_string(text), len(text.encode("utf-16-le")) // 2
    if kind == "any":
        values = [rng.choice(VALUES) for _ in range(rng.randint(1, 3))]
        return content_any(*values), len(values)
    if kind == "deleted":
        length = rng.randint(1, 3)
        return content_deleted(length), length
    if kind == "binary":
        return content_binary(bytes(rng.randrange(256) for _ in range(rng.randint(0, 3)))), 1
    if kind == "embed":
        return content_embed(rng.choice(JSON_TEXTS)), 1
    if kind == "format":
        key = rng.choice(["bold", "italic", "color"])
        return content_format(key, rng.choice(JSON_TEXTS)), 1
    if kind == "type":
        # No nested XmlFragment: pycrdt cannot read one out of a map or array (to_py raises).
        return content_type(rng.choice([ARRAY_TYPE, MAP_TYPE, TEXT_TYPE])), 1
    if kind == "doc":
        return content_doc(rng.choice(["g1", "g2"])), 1
    assert kind == "xml"
    return rng.choice([content_type(XML_ELEMENT_TYPE, "q"), content_type(XML_TEXT_TYPE)]), 1


def unusual_update(rng: random.Random) -> bytes:
    """Structs of one to three clients on top of `BASE`: GC structs, items of every kind
    placed by origins, right origins (either side, the same one, the middle of an item,
    deleted ones) or their parent, with each item's neighbours in one parent; deletions."""
    clients = rng.sample([9, 10, 11], rng.randint(1, 3))
    structs = []
    placed: dict[str, list[Id]] = {}
    for client in clients:
        parent = rng.choice(sorted(PARENTS))
        base_ids, kinds, parent_ref = PARENTS[parent]
        client_structs = []
        clock = 0
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.06:
                length = rng.randint(1, 3)
                client_structs.append(gc(length))
                clock += length
                continue
            pool = base_ids + placed.get(parent, [])
            content, length = _content(rng, rng.choice(kinds))
            how = rng.choice(["origin", "origin", "right", "both", "both", "parent"])
            placement: dict[str, Any] = dict(parent_ref) if how == "parent" else {}
            if how in ("origin", "both"):
                placement["origin"] = rng.choice(pool)
            if how in ("right", "both"):
                placement["right"] = rng.choice(pool)
            client_structs.append(item(content, **placement))
            placed.setdefault(parent, []).extend((client, clock + i) for i in range(length))
            clock += length
        structs.append((client, 0, client_structs))
    deletes: dict[int, list[tuple[int, int]]] = {}
    if rng.random() < 0.4:
        for client in rng.sample([B, *clients], rng.randint(1, 2)):
            top = 20 if client == B else 3
            deletes[client] = [(rng.randint(0, top), rng.randint(1, 3)) for _ in range(2)]
    return encode_update(structs, deletes)


UNUSUAL_PER_BATCH = 150


@BATCHES
@given(st.integers(0, 2**31))
def test_unusual_updates_the_reader_accepts_read_alike_in_yjs_and_pycrdt(seed: int) -> None:
    """Random unusual updates (see `unusual_update`) that the reader accepts and that the
    document has everything for leave yjs and pycrdt with the same document, nothing
    pending."""
    rng = random.Random(seed)
    clocks = read_state_vector(_base_state())
    accepted = []
    for _ in range(UNUSUAL_PER_BATCH):
        update = unusual_update(rng)
        try:
            shape = read_update(update)
        except InvalidUpdate:
            continue
        if missing_dependencies(shape, clocks) is None:
            accepted.append(update)
    cases = [{"roots": ROOTS, "base": [BASE.hex()], "updates": [u.hex()]} for u in accepted]
    for update, yjs in zip(accepted, yjs_apply(cases), strict=True):
        pycrdt = pycrdt_apply(ROOTS, [BASE], [update])
        assert yjs["pending_structs"] is None, update.hex()
        assert yjs["pending_ds"] is None, update.hex()
        assert yjs["errors"] == pycrdt["errors"], update.hex()
        assert _clocks(yjs["state_vector"]) == pycrdt["state_vector"], update.hex()
        assert yjs["json"] == pycrdt["json"], update.hex()


REFUSED_DIVERGENCES = {
    "GC with flags": bytes.fromhex("01010900200200"),
    "type ref in two bytes": bytes.fromhex("010109002701016d066e65776d6170810000"),
    "XmlHook": bytes.fromhex("01020900070101780504686f6f6b840704015a00"),
    "JSON content": bytes.fromhex("0101090002010161020131013200"),
    "subdocument options null": bytes.fromhex("010109002901016d0164087375622d677569647e00"),
    "string map entry": bytes.fromhex("010109002401016d01730368657900"),
    "format map entry": bytes.fromhex("010109002601016d016604626f6c64047472756500"),
    "map key __proto__": bytes.fromhex("010109002801016d095f5f70726f746f5f5f017d0100"),
    "XML attribute __proto__": bytes.fromhex("0101090028000709095f5f70726f746f5f5f0177017600"),
    "format key __proto__": ours(
        item(content_format("__proto__", '{"x": 1}'), origin=(B, 1), right=(B, 2)),
        item(content_format("__proto__", "null"), origin=(B, 3), right=(B, 4)),
    ),
    "a float serde reads one unit off": ours(
        item(content_embed("9007199254740993.0"), origin=(B, 1))
    ),
    "parent a string item of the update": bytes.fromhex("0102090084070402616204000900015000"),
    "a cycle of origins": bytes.fromhex("02010900840a000141010a00840900014200"),
}


@pytest.mark.parametrize("name", list(REFUSED_DIVERGENCES))
def test_updates_yjs_and_pycrdt_read_differently_are_refused(name: str) -> None:
    """Each divergence the hunt found (yjs and pycrdt end with different documents, or
    one throws, or both keep it pending) is refused by the reader."""
    update = REFUSED_DIVERGENCES[name]
    yjs, pycrdt = _compare(update)
    assert yjs != pycrdt
    with pytest.raises(InvalidUpdate):
        read_update(update)


DOCUMENT_DEPENDENT = {
    # yrs refuses the update midway ("block parent must be deleted or shared ref type")
    "parent a string item of the document": ours(item(content_string("P"), parent=(B, 0))),
    # yjs keeps the last character of a string in a map entry, yrs the whole string
    "a map entry's right neighbour of string content": ours(
        item(content_string("mapstr"), origin=(B, 5))
    ),
    # yjs lists non-XML children of an XML fragment, pycrdt skips them
    "a string in an XML fragment": ours(item(content_string("Q"), origin=(B, 9))),
    # yrs links the array to the map entry: the array's later items vanish from it
    "origin in an array, right origin a map entry": ours(
        item(content_any(1), origin=(B, 8), right=(B, 5))
    ),
    # yjs replaces the halves of a split surrogate pair with U+FFFD, yrs keeps the pair
    "a deletion splitting a surrogate pair": ours(
        item(content_string("a😀b"), origin=(B, 4)), deletes={9: [(2, 1)]}
    ),
    "an origin between the halves of a surrogate pair": ours(
        item(content_string("a😀b"), origin=(B, 4)), item(content_string("Z"), origin=(9, 1))
    ),
}


@pytest.mark.parametrize("name", list(DOCUMENT_DEPENDENT))
def test_divergences_that_depend_on_the_document_are_known(name: str) -> None:
    """Updates that read differently because of what the document holds (the parent's
    type, the neighbour's content): the reader, which has no document, accepts them. This
    pins them: when one stops diverging, its entry goes."""
    update = DOCUMENT_DEPENDENT[name]
    assert missing_dependencies(read_update(update), read_state_vector(_base_state())) is None
    yjs, pycrdt = _compare(update)
    assert yjs != pycrdt


def test_a_negative_zero_is_read_as_zero_by_pycrdt() -> None:
    """lib0's -0 (a stock client's `map.set(key, -0)`) is -0 to yjs and 0 to pycrdt; JSON
    cannot tell them apart, so the reader accepts it (refusing would lock that client out)."""
    update = ours(item((8, b"\x01\x7d\x40"), root="a"))
    yjs, pycrdt = _compare(update)
    assert yjs["json"]["a"][-1] == {"$float": "-0"}
    assert pycrdt["json"]["a"][-1] == 0
    assert read_update(update).struct_count == 1


def test_what_follows_a_missing_skip_is_pending_in_yjs_and_applied_by_pycrdt() -> None:
    """An update with a Skip over clocks the document lacks: yjs keeps what follows pending,
    pycrdt integrates it (its clock stays before the Skip), and the reader names the gap, so
    the room answers with sync step 1 instead of applying it."""
    update = ours(
        item(content_string("Q"), origin=(B, 4)),
        skip(2),
        item(content_string("R"), origin=(9, 0)),
    )
    shape = read_update(update)
    assert missing_dependencies(shape, read_state_vector(_base_state())) == (
        "client 9's clocks 1-3 are missing"
    )
    yjs, pycrdt = _compare(update)
    assert yjs["pending"]
    assert yjs["state_vector"] == pycrdt["state_vector"] == {B: 22, 9: 1}
    assert yjs["json"]["t"]["string"] == "helloQ"
    assert pycrdt["json"]["t"]["string"] == "helloQR"
