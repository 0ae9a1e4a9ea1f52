"""The C reader of common updates (`collab/protocol/_reader.c`) against the Python reader,
which is the reference: whatever the C reader reads, it reads as Python does, and it reads
nothing Python refuses. The rule tests of test_updates.py run through it as well (they call
`read_update`, which asks the C reader first)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map, Text

from collab.protocol import updates
from collab.protocol.updates import (
    MAX_CLOCK,
    ClientRange,
    InvalidUpdate,
    UpdateShape,
    read_text_insert,
    read_update,
    read_update_in_python,
)
from collab.protocol.updates.checks import _advance_in_python, _check
from collab.protocol.updates.native import _native_advance, _native_check
from collab.protocol.updates.native import _native_read as native_read
from tests.support.yjs_updates import (
    ANY,
    HAS_ORIGIN,
    HAS_RIGHT_ORIGIN,
    STRING,
    any_value,
    content_any,
    content_string,
    encode_update,
    ident,
    item,
    var_uint,
)

if native_read is None:  # pragma: no cover - the assertion below says why
    pytest.fail(
        "the C update reader (collab.protocol._reader) was not built: install with a C "
        "compiler and the Python headers (pip install -e '.[test]' builds it)",
        pytrace=False,
    )

DIFFERENTIAL = settings(max_examples=1000, deadline=None)


def agree(update: bytes) -> UpdateShape | None:
    """What the C reader reads of `update`, after checking it against the Python reader:
    None, or exactly Python's shape (of the same classes); None whenever Python refuses."""
    assert native_read is not None
    native = native_read(update)
    try:
        reference = read_update_in_python(update)
    except InvalidUpdate:
        assert native is None, f"C reads {update.hex()}, which Python refuses"
        return None
    if native is not None:
        assert native == reference
        assert type(native) is UpdateShape
        assert all(type(structs) is ClientRange for structs in native.clients.values())
        assert all(structs.skips == () for structs in native.clients.values())
    return native


def edits_of(make: str) -> list[bytes]:
    doc = Doc(client_id=3_141_592_653)
    captured: list[bytes] = []
    doc.observe(lambda event: captured.append(event.update))
    text = doc.get("t", type=Text)
    meta = doc.get("m", type=Map)
    if make == "typing":
        text += "start"  # the first insert is placed by its parent: read by Python
        captured.clear()
        for char in "héllo 😀":
            text += char
    elif make == "deleting":
        text += "hello"
        captured.clear()
        del text[1:3]
        del text[0]
    elif make == "map":
        for index in range(3):
            meta["title"] = f"title {index}"
            meta["count"] = index
            meta["tags"] = ["a", {"b": 1.5, "c": None}]
    return captured


@pytest.mark.parametrize("make", ["typing", "deleting", "map"])
def test_the_edits_a_server_sees_most_are_read_in_c(make: str) -> None:
    """Keystrokes (astral characters included), deletions and map sets of a stock
    library are read by the C reader, with the Python reader's shapes."""
    edits = edits_of(make)
    assert edits
    for update in edits:
        assert agree(update) is not None, update.hex()
        assert read_update(update) == read_update_in_python(update)


def test_a_large_text_insert_reads_in_c_for_read_text_insert() -> None:
    """`read_text_insert` takes a large paste from the C reader, with its UTF-16 length."""
    doc = Doc(client_id=9)
    text = doc.get("t", type=Text)
    text += "start"
    before = doc.get_state()
    text += "ß😀" * 50_000
    update = doc.get_update(before)
    shape = agree(update)
    assert shape is not None
    assert read_text_insert(update) == shape
    assert shape.clients == {9: ClientRange(5, 5 + 150_000)}


def test_shapes_are_new_objects_each_time() -> None:
    """Callers may keep or change what they get: the C reader returns fresh dicts."""
    assert native_read is not None
    update = edits_of("map")[-1]
    first, second = native_read(update), native_read(update)
    assert first == second
    assert first.clients is not second.clients
    assert first.deletes is not second.deletes


def string_after_origin(raw: bytes, clock: int = 4) -> bytes:
    return encode_update(
        [(7, clock, [item((STRING, var_uint(len(raw)) + raw), origin=(7, clock - 1))])]
    )


@DIFFERENTIAL
@given(st.binary(max_size=24))
def test_string_content_of_any_bytes_reads_alike(raw: bytes) -> None:
    """Any bytes as typed text: the C reader's UTF-8 check and UTF-16 length are Python's
    (overlong forms, surrogates, code points above U+10FFFF and cut sequences refused)."""
    agree(string_after_origin(raw))


@pytest.mark.parametrize(
    "raw",
    [
        b"\xc0\x80",  # overlong NUL
        b"\xe0\x80\x80",  # overlong
        b"\xed\xa0\x80",  # a surrogate
        b"\xf4\x90\x80\x80",  # above U+10FFFF
        b"\xf0\x9f\x98",  # cut
        b"\xff",
        b"\x80",
    ],
)
def test_invalid_utf8_is_left_to_python(raw: bytes) -> None:
    """Every kind of invalid UTF-8 makes the C reader step aside; Python refuses it."""
    update = string_after_origin(b"a" + raw)
    assert native_read is not None
    assert native_read(update) is None
    with pytest.raises(InvalidUpdate, match="UTF-8"):
        read_update(update)


ANY_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**31), 2**31),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.binary(max_size=5),
)
ANY_VALUES = st.recursive(
    ANY_LEAVES,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "__proto__", "é", ""]), children, max_size=3)
    ),
    max_leaves=8,
)
# lib0 `any` values yjs never writes: integers beyond 2**53, var_ints of nine bytes, unknown
# tags, cut values, invalid UTF-8 in strings and keys.
HOSTILE_ANY = st.sampled_from(
    [
        b"\x7d" + b"\xff" * 8 + b"\x01",
        b"\x7d\xbf\xff\xff\xff\xff\xff\xff\xff\x7f",
        b"\x7d\xbf\xff\xff\xff\xff\xff\xff\x1f",
        b"\x7d\xbf\xff\xff\xff\xff\xff\xff\x0f",
        b"\x7d\x80",
        b"\x7b\x00\x00",
        b"\x7c\x00",
        b"\x7a" + b"\x00" * 8,
        b"\x73",
        b"\x80",
        b"\x77\x01\xff",
        b"\x76\x01\x01\xff\x7e",
        b"\x76\x01\x09__proto__\x7e",
        b"\x75\x05\x7e",
        b"\x74\x05\x00",
        b"\x75\x01" * 70 + b"\x7e",
        b"\x75\x01" * 60 + b"\x7e",
    ]
)


@DIFFERENTIAL
@given(st.lists(st.one_of(ANY_VALUES.map(any_value), HOSTILE_ANY), min_size=0, max_size=3))
def test_values_of_any_kind_read_alike(payloads: list[bytes]) -> None:
    """Map and array values, yjs' own and hostile ones, set after an origin: the C reader
    applies Python's rules (integer range, __proto__ keys, depth, UTF-8, lengths)."""
    content = (ANY, var_uint(len(payloads)) + b"".join(payloads))
    agree(encode_update([(7, 4, [item(content, origin=(7, 3), right=(8, 0))])]))


CLIENTS = st.one_of(st.integers(0, 300), st.sampled_from([2**32, 2**53 - 1, 2**53, 2**56]))
CLOCKS = st.one_of(st.integers(0, 300), st.sampled_from([MAX_CLOCK - 1, MAX_CLOCK, 2**32]))
DELETE_SETS = st.dictionaries(
    CLIENTS, st.lists(st.tuples(CLOCKS, st.integers(0, 3)), max_size=3), max_size=10
)


@DIFFERENTIAL
@given(
    client=CLIENTS,
    clock=CLOCKS,
    origin=st.none() | st.tuples(CLIENTS, CLOCKS),
    right=st.none() | st.tuples(CLIENTS, CLOCKS),
    text=st.text(max_size=3),
    deletes=DELETE_SETS,
    with_item=st.booleans(),
)
def test_items_and_delete_sets_of_any_numbers_read_alike(
    client: int,
    clock: int,
    origin: tuple[int, int] | None,
    right: tuple[int, int] | None,
    text: str,
    deletes: dict[int, list[tuple[int, int]]],
    with_item: bool,
) -> None:
    """Ids, clocks, lengths and delete sets around every limit (2**32 clocks, 2**53 client
    ids, references to the item's own future, empty and duplicate ranges, long delete sets):
    the C reader reads them as Python does or leaves them to it."""
    structs = []
    if with_item:
        placed = item(content_string(text), origin=origin, right=right) if origin or right else b""
        if placed:
            structs = [(client, clock, [placed])]
    agree(encode_update(structs, deletes))


@DIFFERENTIAL
@given(
    root=st.none() | st.binary(max_size=6),
    parent=st.tuples(CLIENTS, CLOCKS),
    sub=st.none() | st.sampled_from([b"title", b"__proto__", b"\xff", b"", "é".encode()]),
    content=st.sampled_from([content_string("ab"), content_any("v", 1), content_any()]),
    clock=CLOCKS,
)
def test_items_placed_by_their_parent_read_alike(
    root: bytes | None,
    parent: tuple[int, int],
    sub: bytes | None,
    content: tuple[int, bytes],
    clock: int,
) -> None:
    """First inserts and map sets name their parent (a root by name, or an item by id) and
    a key: root names and keys of any bytes, __proto__, strings under a key, parents in the
    item's own future, read alike or left to Python."""
    info = content[0] | (0x20 if sub is not None else 0)
    placed = bytes([info])
    if root is not None:
        placed += b"\x01" + var_uint(len(root)) + root
    else:
        placed += b"\x00" + ident(*parent)
    if sub is not None:
        placed += var_uint(len(sub)) + sub
    agree(encode_update([(5, clock, [placed + content[1]])]))


def test_a_delete_set_naming_a_client_twice_is_left_to_python() -> None:
    """A hand-built delete set with a client twice (a dict cannot hold it)."""
    update = b"\x00\x02" + var_uint(5) + b"\x01\x00\x01" + var_uint(5) + b"\x01\x02\x01"
    assert native_read is not None
    assert native_read(update) is None
    with pytest.raises(InvalidUpdate, match="twice"):
        read_update(update)


@pytest.mark.parametrize(
    "number",
    [2**53 - 1, 2**53, 2**56 - 1, 2**56],
)
def test_variable_length_integers_up_to_eight_bytes(number: int) -> None:
    """Client ids of up to eight bytes, within 2**53 - 1, read; beyond, Python refuses."""
    update = encode_update([(number, 1, [item(content_any(1), origin=(number, 0))])])
    shape = agree(update)
    assert (shape is not None) == (number <= 2**53 - 1)


def mutations(update: bytes) -> st.SearchStrategy[bytes]:
    return st.lists(
        st.tuples(st.integers(0, len(update) - 1), st.integers(0, 255)), min_size=1, max_size=3
    ).map(lambda changes: _apply(update, changes))


def _apply(update: bytes, changes: list[tuple[int, int]]) -> bytes:
    mutated = bytearray(update)
    for index, byte in changes:
        mutated[index] = byte
    return bytes(mutated)


NATIVE_SAMPLES = [
    *edits_of("typing")[-2:],
    *edits_of("deleting"),
    *edits_of("map")[-3:],
    encode_update([(7, 4, [item(content_any({"k": [1, "é", b"\x00"]}), origin=(7, 3))])]),
]


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(NATIVE_SAMPLES).flatmap(mutations))
def test_mutated_common_updates_read_alike(update: bytes) -> None:
    """Updates the C reader reads, with bytes changed: read alike, or left to Python."""
    agree(update)


@settings(max_examples=1000, deadline=None)
@given(
    st.sampled_from(NATIVE_SAMPLES).flatmap(
        lambda update: st.integers(0, len(update)).map(lambda cut: update[:cut])
    )
)
def test_cut_off_common_updates_are_left_to_python(update: bytes) -> None:
    """Truncated at any byte, a common update is never read past its end."""
    agree(update)


def test_flags_it_does_not_read_are_left_to_python() -> None:
    """Other content kinds, several structs or clients: the C reader steps aside and Python
    reads them."""
    assert native_read is not None
    for update in [
        encode_update([(5, 1, [item((6, b"\x01b\x04true"), origin=(5, 0))])]),
        encode_update(
            [
                (
                    5,
                    1,
                    [
                        item(content_string("a"), origin=(5, 0)),
                        item(content_string("b"), origin=(5, 1)),
                    ],
                )
            ]
        ),
        encode_update(
            [
                (5, 1, [item(content_string("a"), origin=(5, 0))]),
                (6, 1, [item(content_string("a"), origin=(6, 0))]),
            ]
        ),
    ]:
        assert native_read(update) is None
        assert read_update(update).struct_count >= 1


def test_origin_flags_are_read_in_order() -> None:
    """Origin then right origin, as yjs writes them: the text neighbours keep that order."""
    update = encode_update(
        [
            (
                5,
                9,
                [
                    bytes([STRING | HAS_ORIGIN | HAS_RIGHT_ORIGIN])
                    + ident(6, 2)
                    + ident(5, 1)
                    + var_uint(1)
                    + b"x"
                ],
            )
        ]
    )
    shape = agree(update)
    assert shape is not None
    assert shape.text_neighbours == ((6, 2), (5, 1))
    assert shape.refs == {6: 2, 5: 1}


# ---- the check of every edit against the room's clocks ----

SMALL_CLOCKS = st.integers(0, 12)
SHAPE_CLIENTS = st.sampled_from([1, 2, 3, 2**53 - 1])
CLOCK_VECTORS = st.dictionaries(SHAPE_CLIENTS, SMALL_CLOCKS, max_size=4)


@st.composite
def shapes(draw: st.DrawFn) -> UpdateShape:
    clients = {}
    for client in draw(st.lists(SHAPE_CLIENTS, max_size=3, unique=True)):
        start = draw(SMALL_CLOCKS)
        end = start + draw(st.integers(1, 6))
        skips = draw(st.sampled_from([(), ((start, start + 1),)]))
        clients[client] = ClientRange(start, end, skips)
    return UpdateShape(
        clients,
        draw(st.dictionaries(SHAPE_CLIENTS, SMALL_CLOCKS, max_size=3)),
        draw(st.dictionaries(SHAPE_CLIENTS, st.integers(1, 14), max_size=3)),
        0,
        len(clients),
    )


@DIFFERENTIAL
@given(shapes(), CLOCK_VECTORS, st.booleans())
def test_the_c_check_agrees_with_python(
    shape: UpdateShape, clocks: dict[int, int], refuse_overlap: bool
) -> None:
    """For any shape and clocks, the C check answers exactly when Python finds nothing
    missing (with the same "new structs" answer), and leaves every refusal to Python;
    shapes with skips it always leaves to Python."""
    native_check = _native_check
    assert native_check is not None
    missing, new = _check(shape, clocks, refuse_overlap)
    answer = native_check(shape, clocks, refuse_overlap)
    has_skips = any(structs.skips for structs in shape.clients.values())
    if missing is not None or has_skips:
        assert answer is None
    else:
        assert answer is new
    assert updates.admit(shape, clocks) == _check(shape, clocks, True)
    assert updates.missing_dependencies(shape, clocks) == _check(shape, clocks, False)[0]


def test_the_c_check_leaves_what_it_cannot_read_to_python() -> None:
    """Numbers beyond 64 bits or not ints (never made by the reader): Python decides."""
    native_check = _native_check
    assert native_check is not None
    shape = UpdateShape({1: ClientRange(0, 2)}, {1: 0}, {}, 0, 1)
    assert native_check(shape, {1: 2**70}, True) is None
    assert native_check(shape, {1: 0}, True) is True
    assert native_check(shape, {1: 2}, True) is False
    assert native_check(shape._replace(refs={1: 5}), {1: 2}, True) is None


VALUE_INDEXES = st.dictionaries(
    SHAPE_CLIENTS,
    st.lists(st.tuples(SMALL_CLOCKS, st.integers(1, 4)), max_size=3).map(
        lambda pairs: sorted({(start, start + length) for start, length in pairs})
    ),
    max_size=3,
)


@st.composite
def applied_shapes(draw: st.DrawFn) -> UpdateShape:
    shape = draw(shapes())
    values = []
    for client, structs in shape.clients.items():
        if draw(st.booleans()):
            values.append((client, structs.start, structs.end))
    return shape._replace(values=tuple(values))


@st.composite
def edits_after(draw: st.DrawFn) -> tuple[UpdateShape, dict[int, list[tuple[int, int]]]]:
    """A one-client shape whose value starts at, after or inside the client's last range
    of the index, as map sets mostly do."""
    values = draw(VALUE_INDEXES)
    client = draw(SHAPE_CLIENTS)
    ranges = values.get(client)
    last_end = ranges[-1][1] if ranges else 0
    start = max(0, last_end + draw(st.integers(-2, 2)))
    end = start + draw(st.integers(1, 3))
    shape = UpdateShape({client: ClientRange(start, end)}, {}, {}, 0, 1, ((client, start, end),))
    return shape, values


@DIFFERENTIAL
@given(st.one_of(st.tuples(applied_shapes(), VALUE_INDEXES), edits_after()), CLOCK_VECTORS)
def test_the_c_advance_agrees_with_python(
    edit: tuple[UpdateShape, dict[int, list[tuple[int, int]]]], clocks: dict[int, int]
) -> None:
    """Clocks and value index after `advance` are what the Python version makes of them,
    whether the C version did it (and then changed nothing when it declined) or not."""
    shape, values = edit
    expected_clocks = dict(clocks)
    expected_values = {client: list(ranges) for client, ranges in values.items()}
    _advance_in_python(shape, expected_clocks, expected_values)
    native_advance = _native_advance
    assert native_advance is not None
    before = (dict(clocks), {client: list(ranges) for client, ranges in values.items()})
    if not native_advance(shape, clocks, values):
        assert (clocks, values) == before
        _advance_in_python(shape, clocks, values)
    assert clocks == expected_clocks
    assert values == expected_values


def test_the_c_advance_takes_the_common_edits() -> None:
    """A map set after the client's earlier values extends its range; a keystroke moves
    its clock: both done in C."""
    native_advance = _native_advance
    assert native_advance is not None
    clocks = {7: 3}
    values: dict[int, list[tuple[int, int]]] = {7: [(0, 3)]}
    map_set = UpdateShape({7: ClientRange(3, 4)}, {7: 2}, {}, 0, 1, ((7, 3, 4),))
    assert native_advance(map_set, clocks, values) is True
    assert clocks == {7: 4}
    assert values == {7: [(0, 4)]}
    keystroke = UpdateShape({8: ClientRange(0, 1)}, {}, {}, 0, 1, (), ((7, 3),))
    assert native_advance(keystroke, clocks, values) is True
    assert clocks == {7: 4, 8: 1}
