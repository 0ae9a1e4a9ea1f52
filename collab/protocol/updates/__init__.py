"""Strict reading of Yjs v1 updates before the CRDT library sees them; no I/O.

An update a client sends is untrusted even when it decodes. The server's CRDT library
(pycrdt, on yrs) and the clients' (yjs) read some byte sequences differently, and whatever one
side applies and the other does not stays different forever. `read_update` decodes the whole
update with exact bounds and refuses, with `InvalidUpdate` naming the rule, everything a stock
Yjs client could not represent identically:

    update        = structs delete_set                 (nothing after it)
    structs       = var_uint(n_clients) n_clients * client_structs
    client_structs= var_uint(n_structs) var_uint(client) var_uint(clock) n_structs * struct
    struct        = info:u8 ( GC: var_uint(len) | Skip: var_uint(len) | item )
    item          = [origin: id] [right_origin: id]
                    [if neither: var_uint(1) var_string(root) | var_uint(0) id, [var_string(sub)]]
                    content(info & 31)
    id            = var_uint(client) var_uint(clock)
    delete_set    = var_uint(n_clients) n_clients * (var_uint(client) var_uint(n)
                    n * (var_uint(clock) var_uint(len)))

Rules, each with the reason (see also the README's limits):
- clocks, lengths and clock + length stay below 2**32 (yrs stores them as u32, yjs as
  doubles: a clock of 2**32 + 1 is 1 to the server and pending forever to every client);
- client ids stay at or below 2**53 - 1 (the largest integer a JavaScript number holds);
- every count announced (clients, structs, ranges, entries) fits in the bytes left, so nothing
  is allocated for a lie;
- no client appears twice among the structs or in the delete set (yjs keeps the last of two
  struct lists, yrs both);
- content kinds are the eight yjs and yrs both read (1, 3-9: JSON content, kind 2, yrs reads
  with one string more than announced), type refs the six (0-4, 6: yrs reads an XmlHook, 5,
  without its name) written in one byte (yjs reads a var_uint, yrs one byte), `parent info`
  is 0 or 1, and no struct, range or content is empty;
- a GC or Skip struct's info byte is exactly 0 or 10 (yjs reads its low five bits, yrs the
  whole byte, and then an item it cannot read);
- strings are valid UTF-8 (yjs decodes with a fatal decoder and throws); JSON and embed
  content is valid JSON; integers in lib0 `any` values stay within 2**53 - 1; object keys in
  `any` values are never `__proto__` (JavaScript turns it into the prototype, yrs into a key);
- map keys (an item's parent sub) and format keys are never `__proto__` either (yjs' toJSON,
  getAttributes and toDelta assign them to plain objects), and a map entry it names holds no
  string or format content (yjs reads its last character or nothing, yrs the whole string
  or an entry it cannot read);
- numbers with a fraction or an exponent in JSON content (embeds, format values) read the
  same with serde_json's best-effort float parser (yrs) as in JavaScript: serde_json reads
  about one such float in seven one unit in the last place off;
- a subdocument's options are a lib0 object (yjs throws on null and undefined, yrs not);
- an item never refers to its own client at or after its own clock (no real client can);
- an item whose parent id is a struct of the same update needs a shared type there (or a
  deleted struct): yrs stops applying the update at that item, after applying those before
  it, where yjs applies it all;
- the structs of different clients never refer to each other in a cycle (no real history
  has one; yjs and yrs keep such structs pending forever, where the room would count them in).

What `read_update` returns (`UpdateShape`) lets the room check, without the CRDT library,
whether the update depends on structs the room lacks and whether it carries anything new.
"""

from __future__ import annotations

from typing import NamedTuple

from collab.protocol.updates.checks import (
    add_values,
    admit,
    advance,
    carries_new_structs,
    misplaced_text,
    missing_dependencies,
)
from collab.protocol.updates.encoding import (
    _ANY_OBJECT,
    _ANY_STRING,
    _CONTENT_ANY,
    _CONTENT_BINARY,
    _CONTENT_DELETED,
    _CONTENT_DOC,
    _CONTENT_EMBED,
    _CONTENT_FORMAT,
    _CONTENT_JSON,
    _CONTENT_STRING,
    _CONTENT_TYPE,
    _HAS_ORIGIN,
    _HAS_PARENT_SUB,
    _HAS_RIGHT_ORIGIN,
    _MAX_TYPE_REF,
    _SKIP,
    _TYPE_XML_ELEMENT,
    _TYPE_XML_HOOK,
    _count,
    _is_utf8,
    _raw,
    _string,
    _string_utf16_length,
    _uint,
)
from collab.protocol.updates.native import _native_read
from collab.protocol.updates.shape import (
    MAX_CLIENT_ID,
    MAX_CLOCK,
    ClientRange,
    InvalidUpdate,
    UpdateShape,
    _fail,
)
from collab.protocol.updates.values import MAX_ANY_DEPTH, _read_any, _read_json

__all__ = [
    "MAX_ANY_DEPTH",
    "MAX_CLIENT_ID",
    "MAX_CLOCK",
    "ClientRange",
    "InvalidUpdate",
    "UpdateShape",
    "add_values",
    "admit",
    "advance",
    "carries_new_structs",
    "misplaced_text",
    "missing_dependencies",
    "read_state_vector",
    "read_text_insert",
    "read_update",
    "read_update_in_python",
]


def read_update(update: bytes) -> UpdateShape:
    """Decode and check a whole Yjs v1 update. Returns its shape; raises `InvalidUpdate`."""
    if _native_read is not None:
        shape = _native_read(update)
        if shape is not None:
            return shape
    one_item = _read_one_item(update)
    return one_item[0] if one_item is not None else _read_any_update(update)


def read_update_in_python(update: bytes) -> UpdateShape:
    """`read_update` without the C reader: the reference it is tested against."""
    one_item = _read_one_item(update)
    return one_item[0] if one_item is not None else _read_any_update(update)


def read_text_insert(buf: bytes) -> UpdateShape | None:
    """The shape of an update that inserts one run of text (one client, one string item
    placed by its neighbours, nothing deleted), as a keystroke or a plain-text paste makes;
    None for any other update, and for one that breaks a rule (`read_update` says which).
    Its cost does not grow with the number of structs, only (slightly) with the text."""
    if _native_read is not None:
        shape = _native_read(buf)
        # The C reader reads items of strings or values: one without values is a string.
        if shape is not None and shape.struct_count == 1 and not shape.values:
            return None if shape.deletes else shape
    one_item = _read_one_item(buf)
    if one_item is None or one_item[1] != _CONTENT_STRING or one_item[0].deletes:
        return None
    return one_item[0]


def _read_one_item(buf: bytes) -> tuple[UpdateShape, int] | None:
    """The shape and content kind of an update of one item placed by its neighbours, with
    text or one value as its content and any delete set: what typing, deleting, setting a
    map key or formatting makes, most updates a server sees. None for any other update, and
    for one that breaks a rule (the general path says which). Same rules as the general
    path, with a fraction of its calls: every edit pays for this."""
    if len(buf) < 8 or buf[0] != 1 or buf[1] != 1:
        return None
    try:
        client, pos = _uint(buf, 2)
        # The same client id recurs in the origin and the delete set: its bytes are compared,
        # not decoded again.
        client_bytes = buf[2:pos]
        clock, pos = _uint(buf, pos)
        info = buf[pos]
        kind = info & 0x1F
        if not info & (_HAS_ORIGIN | _HAS_RIGHT_ORIGIN) or client > MAX_CLIENT_ID:
            return None
        refs: dict[int, int] = {}
        neighbours: list[tuple[int, int]] = []
        pos += 1
        for flag in (_HAS_ORIGIN, _HAS_RIGHT_ORIGIN):
            if not info & flag:
                continue
            if buf.startswith(client_bytes, pos):
                ref_client, pos = client, pos + len(client_bytes)
            else:
                ref_client, pos = _uint(buf, pos)
            ref_clock, pos = _uint(buf, pos)
            if ref_client > MAX_CLIENT_ID or ref_clock > MAX_CLOCK:
                return None
            if ref_client == client and ref_clock >= clock:
                return None
            if refs.get(ref_client, -1) < ref_clock:
                refs[ref_client] = ref_clock
            neighbours.append((ref_client, ref_clock))
        if kind == _CONTENT_STRING:
            string_at = pos
            length, start = _uint(buf, pos)
            pos = start + length
            if pos > len(buf):
                return None
            if not buf[start:pos].isascii():
                length, pos = _string_utf16_length(buf, string_at)
        elif kind == _CONTENT_ANY and buf[pos] == 1:
            if buf[pos + 1] == _ANY_STRING and buf[pos + 2] < 0x80:
                # One short string, as most map values are.
                start = pos + 3
                pos = start + buf[pos + 2]
                value = buf[start:pos]
                if pos > len(buf) or (not value.isascii() and not _is_utf8(value)):
                    return None
            else:
                pos = _read_any(buf, pos + 1, 0)
            length = 1
        else:
            return None
        if length == 0 or clock + length > MAX_CLOCK:
            return None
        delete_set_offset = pos
        if buf[pos] == 0:
            deletes: dict[int, int] = {}  # no deletions: most updates
            pos += 1
        elif buf[pos] == 1 and buf.startswith(client_bytes, pos + 1):
            # The item's own client, as deleting while typing makes.
            pos += 1 + len(client_bytes)
            n_ranges, pos = _count(buf, pos, "deleted ranges", 2)
            last_end = 0
            for _ in range(n_ranges):
                deleted_at, pos = _uint(buf, pos)
                deleted, pos = _uint(buf, pos)
                if deleted == 0:
                    return None
                if deleted_at + deleted > last_end:
                    last_end = deleted_at + deleted
            if last_end == 0 or last_end > MAX_CLOCK:
                return None
            deletes = {client: last_end}
        else:
            deletes, pos = _read_delete_set(buf, pos)
    except (InvalidUpdate, IndexError):
        return None
    if pos != len(buf):
        return None
    shape = UpdateShape(
        {client: ClientRange(clock, clock + length)},
        refs,
        deletes,
        delete_set_offset,
        1,
        ((client, clock, clock + length),) if kind == _CONTENT_ANY else (),
        tuple(neighbours) if kind == _CONTENT_STRING else (),
    )
    return shape, kind


def read_state_vector(state_vector: bytes) -> dict[int, int]:
    """Decode a Yjs state vector (`var_uint(n) n * (var_uint(client) var_uint(clock))`) into
    {client: clock}. Raises `InvalidUpdate`."""
    count, pos = _count(state_vector, 0, "clients in the state vector", 2)
    clocks: dict[int, int] = {}
    for _ in range(count):
        client, pos = _uint(state_vector, pos)
        clocks[client], pos = _uint(state_vector, pos)
    if pos != len(state_vector):
        raise _fail("bytes after the state vector")
    return clocks


def _read_any_update(buf: bytes) -> UpdateShape:
    clients: dict[int, ClientRange] = {}
    refs: dict[int, int] = {}
    found = _Found([], [], set(), [], [], [])
    struct_count = 0
    # Each client's structs take at least 3 header bytes and 2 per struct.
    n_clients, pos = _count(buf, 0, "clients of structs", 3)
    for _ in range(n_clients):
        n_structs, pos = _count(buf, pos, "structs", 2)
        client, pos = _uint(buf, pos)
        if client > MAX_CLIENT_ID:
            raise _fail(f"client id {client} above 2**53 - 1")
        if client in clients:
            raise _fail(f"client {client} has two lists of structs")
        if n_structs == 0:
            raise _fail(f"client {client} announces no structs")
        clock, pos = _uint(buf, pos)
        start = clock
        skips: list[tuple[int, int]] = []
        for _ in range(n_structs):
            length, pos = _read_struct(buf, pos, client, clock, refs, skips, found)
            clock += length
        if clock > MAX_CLOCK:
            raise _fail(f"client {client} clock {clock} at or above 2**32")
        struct_count += n_structs
        # A Skip carries nothing: structs of the client end where its trailing skips begin
        # (counting them would advance the room's clock past content it never got).
        while skips and skips[-1][1] == clock:
            clock = skips.pop()[0]
        clients[client] = (
            ClientRange(start, clock, tuple(skips)) if skips else ClientRange(start, clock)
        )
    if found.parents:
        _check_parents(clients, found)
    if found.cross and len(clients) > 1:
        _check_acyclic(clients, found.cross)
    delete_set_offset = pos
    deletes, pos = _read_delete_set(buf, pos)
    if pos != len(buf):
        raise _fail(f"{len(buf) - pos} bytes after the delete set")
    return UpdateShape(
        clients,
        refs,
        deletes,
        delete_set_offset,
        struct_count,
        tuple(found.values),
        tuple(found.text_neighbours),
    )


class _Found(NamedTuple):
    """What the general path notes while reading structs, for the checks across them."""

    # (client, clock, referred client, referred clock) of references to other clients
    cross: list[tuple[int, int, int, int]]
    # ids items name as their parent
    parents: list[tuple[int, int]]
    # ids of the update's shared type items
    types: set[tuple[int, int]]
    # (client, start, end) of the update's GC structs and deleted content
    erased: list[tuple[int, int, int]]
    # (client, start, end) of its items of value content
    values: list[tuple[int, int, int]]
    # ids its items of text content are placed next to
    text_neighbours: list[tuple[int, int]]


def _read_delete_set(buf: bytes, pos: int) -> tuple[dict[int, int], int]:
    """The delete set at `pos`: for each client, the end of its last deleted range."""
    deletes: dict[int, int] = {}
    n_clients, pos = _count(buf, pos, "clients in the delete set", 2)
    for _ in range(n_clients):
        client, pos = _uint(buf, pos)
        if client > MAX_CLIENT_ID:
            raise _fail(f"client id {client} above 2**53 - 1 in the delete set")
        if client in deletes:
            raise _fail(f"client {client} appears twice in the delete set")
        n_ranges, pos = _count(buf, pos, "deleted ranges", 2)
        if n_ranges == 0:
            raise _fail(f"client {client} announces no deleted ranges")
        last_end = 0
        for _ in range(n_ranges):
            clock, pos = _uint(buf, pos)
            length, pos = _uint(buf, pos)
            if length == 0:
                raise _fail(f"an empty deleted range of client {client}")
            if clock + length > last_end:
                last_end = clock + length
        if last_end > MAX_CLOCK:
            raise _fail(f"client {client} deleted range ends at {last_end}, at or above 2**32")
        deletes[client] = last_end
    return deletes, pos


def _read_struct(
    buf: bytes,
    pos: int,
    client: int,
    clock: int,
    refs: dict[int, int],
    skips: list[tuple[int, int]],
    found: _Found,
) -> tuple[int, int]:
    """Read one struct of `client` at `clock`, recording what it refers to; return its
    length in clock units and the next position. A clock over the limit is refused by the
    caller after the client's last struct: until then lengths only add up."""
    if pos >= len(buf):
        raise _fail("truncated: a struct is cut off")
    info = buf[pos]
    pos += 1
    kind = info & 0x1F
    if kind == 0 or kind == _SKIP:
        if info != kind:
            # yjs reads the low five bits, yrs the whole byte (and then no GC or Skip)
            raise _fail(f"a GC or Skip struct with flags (info byte {info})")
        length, pos = _uint(buf, pos)
        if length == 0:
            raise _fail(f"an empty struct of client {client}")
        if length > MAX_CLOCK:
            raise _fail(f"a struct length {length} at or above 2**32")
        if kind == _SKIP:
            skips.append((clock, clock + length))
        else:
            found.erased.append((client, clock, clock + length))
        return length, pos
    is_text = kind == _CONTENT_STRING or kind == _CONTENT_FORMAT or kind == _CONTENT_EMBED
    if info & _HAS_ORIGIN:
        ref_client, ref_clock, pos = _read_item_ref(buf, pos, client, clock, refs, found, "origin")
        if is_text:
            found.text_neighbours.append((ref_client, ref_clock))
    if info & _HAS_RIGHT_ORIGIN:
        ref_client, ref_clock, pos = _read_item_ref(
            buf, pos, client, clock, refs, found, "right origin"
        )
        if is_text:
            found.text_neighbours.append((ref_client, ref_clock))
    if not info & (_HAS_ORIGIN | _HAS_RIGHT_ORIGIN):
        parent_info, pos = _uint(buf, pos)
        if parent_info == 1:
            _, pos = _string(buf, pos)
        elif parent_info == 0:
            parent = _read_item_ref(buf, pos, client, clock, refs, found, "parent")
            found.parents.append((parent[0], parent[1]))
            pos = parent[2]
        else:
            raise _fail(f"parent info {parent_info} (yjs reads any value but 1 as an id)")
        if info & _HAS_PARENT_SUB:
            key, pos = _string(buf, pos)
            if key == "__proto__":
                raise _fail("a map key __proto__ (yjs' toJSON reads it as the prototype)")
            if kind == _CONTENT_STRING or kind == _CONTENT_FORMAT:
                raise _fail(
                    "a map entry of string or format content (yjs reads its last "
                    "character or nothing, yrs the whole string or no entry)"
                )
    if kind == _CONTENT_STRING:
        length, pos = _string_utf16_length(buf, pos)
    else:
        length, pos = _read_content(buf, pos, kind)
        if kind == _CONTENT_TYPE:
            found.types.add((client, clock))
        elif kind == _CONTENT_DELETED:
            found.erased.append((client, clock, clock + length))
        elif kind == _CONTENT_ANY or kind == _CONTENT_BINARY:
            found.values.append((client, clock, clock + length))
    if length == 0:
        raise _fail(f"an empty item of client {client}")
    if length > MAX_CLOCK:
        raise _fail(f"an item length {length} at or above 2**32")
    return length, pos


def _read_item_ref(
    buf: bytes,
    pos: int,
    client: int,
    clock: int,
    refs: dict[int, int],
    found: _Found,
    what: str,
) -> tuple[int, int, int]:
    """Read the id an item of `client` at `clock` refers to (as its `what`), recording it
    in `refs` and, when it is another client's, in `found`; return the id and the next
    position."""
    ref_client, pos = _uint(buf, pos)
    ref_clock, pos = _uint(buf, pos)
    if ref_client > MAX_CLIENT_ID:
        raise _fail(f"{what} client id {ref_client} above 2**53 - 1")
    if ref_clock > MAX_CLOCK:
        raise _fail(f"{what} clock {ref_clock} at or above 2**32")
    if ref_client == client:
        if ref_clock >= clock:
            raise _fail(f"an item of client {client} at clock {clock} refers to its own future")
    else:
        found.cross.append((client, clock, ref_client, ref_clock))
    if refs.get(ref_client, -1) < ref_clock:
        refs[ref_client] = ref_clock
    return ref_client, ref_clock, pos


def _carried(clients: dict[int, ClientRange], client: int, clock: int) -> bool:
    """Whether the update carries the struct of `client` at `clock` (not in a Skip)."""
    structs = clients.get(client)
    if structs is None or not structs.start <= clock < structs.end:
        return False
    return not any(start <= clock < end for start, end in structs.skips)


def _check_parents(clients: dict[int, ClientRange], found: _Found) -> None:
    """An item whose parent is a struct of the same update needs that struct to be a shared
    type (or deleted): yrs stops applying the update there, after its earlier structs, where
    yjs applies it all."""
    suspects = [
        parent
        for parent in found.parents
        if parent not in found.types and _carried(clients, *parent)
    ]
    if not suspects:
        return
    erased: dict[int, list[tuple[int, int]]] = {}
    for client, start, end in found.erased:
        erased.setdefault(client, []).append((start, end))
    for client, clock in suspects:
        ranges = erased.get(client, [])
        if not any(start <= clock < end for start, end in ranges):
            raise _fail(
                f"an item's parent {client}:{clock} is an item of the same update that is "
                "not a shared type (yrs stops applying the update there)"
            )


def _check_acyclic(clients: dict[int, ClientRange], cross: list[tuple[int, int, int, int]]) -> None:
    """The structs of different clients must not refer to each other in a cycle: no real
    history has one, and yjs and yrs keep such structs pending forever, where the room
    would count them in. Integrates the clients in an order that respects every
    reference into the update, as yjs and yrs do, and fails if one gets stuck."""
    needs: dict[int, list[tuple[int, int, int]]] = {}
    for client, clock, ref_client, ref_clock in cross:
        structs = clients.get(ref_client)
        if structs is not None and structs.start <= ref_clock < structs.end:
            needs.setdefault(client, []).append((clock, ref_client, ref_clock))
    if not needs:
        return
    done = {
        client: (structs.start if client in needs else structs.end)
        for client, structs in clients.items()
    }
    next_need = dict.fromkeys(needs, 0)
    waiting: dict[int, list[tuple[int, int]]] = {}
    stack = list(needs)
    while stack:
        client = stack.pop()
        client_needs = needs[client]
        index = next_need[client]
        while index < len(client_needs):
            _, ref_client, ref_clock = client_needs[index]
            if ref_clock >= done[ref_client]:
                waiting.setdefault(ref_client, []).append((ref_clock, client))
                break
            index += 1
        next_need[client] = index
        reached = client_needs[index][0] if index < len(client_needs) else clients[client].end
        if reached > done[client]:
            done[client] = reached
            waiters = waiting.pop(client, [])
            still = [(clock, waiter) for clock, waiter in waiters if clock >= reached]
            stack.extend(waiter for clock, waiter in waiters if clock < reached)
            if still:
                waiting[client] = still
    stuck = sorted(client for client, index in next_need.items() if index < len(needs[client]))
    if stuck:
        raise _fail(f"the structs of clients {stuck} refer to each other in a cycle")


def _read_content(buf: bytes, pos: int, kind: int) -> tuple[int, int]:
    """Read an item's content of `kind` (not a string); return its length in clock units."""
    if kind == _CONTENT_ANY:
        length, pos = _count(buf, pos, "values", 1)
        for _ in range(length):
            pos = _read_any(buf, pos, 0)
        return length, pos
    if kind == _CONTENT_DELETED:
        return _uint(buf, pos)
    if kind == _CONTENT_TYPE:
        if pos >= len(buf):
            raise _fail("truncated: a shared type is cut off")
        # yjs reads a var_uint, yrs one byte: a type ref of more bytes reads differently
        type_ref = buf[pos]
        pos += 1
        if type_ref > _MAX_TYPE_REF:
            raise _fail(f"unknown shared type {type_ref}")
        if type_ref == _TYPE_XML_HOOK:
            raise _fail("an XmlHook (yrs reads it without its hook name)")
        if type_ref == _TYPE_XML_ELEMENT:
            _, pos = _string(buf, pos)
        return 1, pos
    if kind == _CONTENT_FORMAT:
        key, pos = _string(buf, pos)
        if key == "__proto__":
            raise _fail("a format key __proto__ (yjs' toDelta reads it as the prototype)")
        return 1, _read_json(buf, pos)
    if kind == _CONTENT_EMBED:
        return 1, _read_json(buf, pos)
    if kind == _CONTENT_BINARY:
        length, pos = _uint(buf, pos)
        _, pos = _raw(buf, pos, length)
        return 1, pos
    if kind == _CONTENT_JSON:
        raise _fail("JSON content (yrs reads one string more than it announces)")
    if kind == _CONTENT_DOC:
        _, pos = _string(buf, pos)
        if pos >= len(buf) or buf[pos] != _ANY_OBJECT:
            raise _fail("subdocument options that are not an object (yjs throws on some)")
        return 1, _read_any(buf, pos, 0)
    raise _fail(f"unknown content kind {kind}")
