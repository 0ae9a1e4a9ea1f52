"""The general path of the update reader: any update, struct by struct, then the checks
across its structs (parents, references between clients) and its delete set. Slower than
the fast path (`reader._read_one_item`) and the C reader, it reads what they leave to it and
is the reference they are tested against; it says which rule an update breaks."""

from __future__ import annotations

from typing import NamedTuple

from collab.protocol.updates.encoding import (
    _ANY_OBJECT,
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
    _raw,
    _string,
    _string_utf16_length,
    _uint,
)
from collab.protocol.updates.shape import (
    MAX_CLIENT_ID,
    MAX_CLOCK,
    ClientRange,
    UpdateShape,
    _fail,
)
from collab.protocol.updates.values import _read_any, _read_json


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
