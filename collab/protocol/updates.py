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
- content kinds are the nine yjs knows (1-9), type refs the seven (0-6), `parent info` is 0
  or 1, and no struct, range or content is empty;
- strings are valid UTF-8 (yjs decodes with a fatal decoder and throws); JSON and embed
  content is valid JSON; integers in lib0 `any` values stay within 2**53 - 1; object keys in
  `any` values are never `__proto__` (JavaScript turns it into the prototype, yrs into a key);
- an item never refers to its own client at or after its own clock (no real client can).

What `read_update` returns (`UpdateShape`) lets the room check, without the CRDT library,
whether the update depends on structs the room lacks and whether it carries anything new.
"""

from __future__ import annotations

from typing import NamedTuple

import orjson

from collab.errors import ProtocolError

__all__ = [
    "MAX_CLIENT_ID",
    "MAX_CLOCK",
    "ClientRange",
    "InvalidUpdate",
    "UpdateShape",
    "carries_new_structs",
    "missing_dependencies",
    "read_state_vector",
    "read_text_insert",
    "read_update",
]

MAX_CLOCK = 2**32 - 1
"""The largest clock (and clock + length) an update may carry: yrs reads clocks as u32."""
MAX_CLIENT_ID = 2**53 - 1
"""The largest client id: yjs reads client ids as JavaScript numbers."""
MAX_SAFE_INTEGER = 2**53 - 1
_MAX_VAR_UINT_BYTES = 8
# lib0's `any` may nest; yjs and yrs recurse, so depth is a stack-size attack.
MAX_ANY_DEPTH = 64

_CONTENT_DELETED = 1
_CONTENT_JSON = 2
_CONTENT_BINARY = 3
_CONTENT_STRING = 4
_CONTENT_EMBED = 5
_CONTENT_FORMAT = 6
_CONTENT_TYPE = 7
_CONTENT_ANY = 8
_CONTENT_DOC = 9
_SKIP = 10
_TYPE_XML_ELEMENT = 3
_TYPE_XML_HOOK = 5
_MAX_TYPE_REF = 6
_HAS_ORIGIN = 0x80
_HAS_RIGHT_ORIGIN = 0x40
_HAS_PARENT_SUB = 0x20


class InvalidUpdate(ProtocolError):
    """A Yjs update that is malformed or that the server and its clients would read
    differently; the message names the rule (WebSocket close 1007, HTTP 400)."""


# Named tuples, not dataclasses: one is built per update per client, on every edit's path.
class ClientRange(NamedTuple):
    """The structs of one client in an update: clocks `start` up to `end` (exclusive),
    with the clock ranges of its Skip structs (content the update does not carry)."""

    start: int
    end: int
    skips: tuple[tuple[int, int], ...] = ()


class UpdateShape(NamedTuple):
    """What an update carries, read without applying it.

    - `clients`: each client's struct range;
    - `refs`: for each client an update's items refer to (origins, parents) the highest clock
      referred to, references into the update's own structs of that client included;
    - `deletes`: for each client in the delete set, the end of its last deleted range;
    - `delete_set_offset`: where the delete set starts in the update's bytes;
    - `struct_count`: how many structs the update carries (its cost to integrate grows with
      it, and with the document)."""

    clients: dict[int, ClientRange]
    refs: dict[int, int]
    deletes: dict[int, int]
    delete_set_offset: int
    struct_count: int


def missing_dependencies(shape: UpdateShape, clocks: dict[int, int]) -> str | None:
    """What a document with state vector `clocks` lacks to apply an update of `shape`
    whole (structs before the update's first ones, items it refers to, content it deletes),
    or None if nothing. Such an update must not reach the CRDT library: it keeps the part it
    cannot place pending, and pycrdt and yjs then diverge (see the README's limits)."""
    for client, structs in shape.clients.items():
        have = clocks.get(client, 0)
        if structs.start > have:
            return (
                f"client {client}'s structs start at clock {structs.start}, the document has {have}"
            )
        for skip_start, skip_end in structs.skips:
            if have < skip_end < structs.end:
                return f"client {client}'s clocks {skip_start}-{skip_end} are missing"
    for client, clock in shape.refs.items():
        if clock >= _known_end(client, shape, clocks):
            return f"an item refers to client {client}'s clock {clock}, which is missing"
    for client, end in shape.deletes.items():
        if end > _known_end(client, shape, clocks):
            return f"deletes client {client}'s clocks up to {end}, which are missing"
    return None


def _known_end(client: int, shape: UpdateShape, clocks: dict[int, int]) -> int:
    """The clock of `client` a document at `clocks` has once an update of `shape` is in."""
    have = clocks.get(client, 0)
    structs = shape.clients.get(client)
    return max(have, structs.end) if structs is not None else have


def carries_new_structs(shape: UpdateShape, clocks: dict[int, int]) -> bool:
    """Whether an update of `shape` has structs a document at `clocks` does not have."""
    return any(structs.end > clocks.get(client, 0) for client, structs in shape.clients.items())


def _fail(rule: str) -> InvalidUpdate:
    return InvalidUpdate(f"invalid Yjs update: {rule}")


# The readers below take the buffer and a position and return (value, next position): a
# typing update is read in a few microseconds only without objects or method calls per field.


def _uint(buf: bytes, pos: int) -> tuple[int, int]:
    """A lib0 var_uint at `pos`. Unrolled to five bytes: random 32-bit client ids, which
    every item and reference carries, take five."""
    try:
        byte = buf[pos]
        if byte < 0x80:
            return byte, pos + 1
        result = byte & 0x7F
        byte = buf[pos + 1]
        if byte < 0x80:
            return result | byte << 7, pos + 2
        result |= (byte & 0x7F) << 7
        byte = buf[pos + 2]
        if byte < 0x80:
            return result | byte << 14, pos + 3
        result |= (byte & 0x7F) << 14
        byte = buf[pos + 3]
        if byte < 0x80:
            return result | byte << 21, pos + 4
        result |= (byte & 0x7F) << 21
        byte = buf[pos + 4]
        if byte < 0x80:
            return result | byte << 28, pos + 5
        return _uint_long(buf, pos)
    except IndexError:
        raise _fail("truncated: a variable-length integer is cut off") from None


def _uint_long(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    for index in range(_MAX_VAR_UINT_BYTES):
        byte = buf[pos + index]
        result |= (byte & 0x7F) << (7 * index)
        if byte < 0x80:
            if result > MAX_SAFE_INTEGER:
                raise _fail(f"integer {result} above 2**53 - 1")
            return result, pos + index + 1
    raise _fail("a variable-length integer is longer than 8 bytes")


def _count(buf: bytes, pos: int, what: str, min_bytes_each: int) -> tuple[int, int]:
    """A var_uint count of things that each take at least `min_bytes_each` bytes."""
    value, pos = _uint(buf, pos)
    if value * min_bytes_each > len(buf) - pos:
        raise _fail(f"{value} {what} announced in {len(buf) - pos} bytes")
    return value, pos


def _raw(buf: bytes, pos: int, length: int) -> tuple[bytes, int]:
    stop = pos + length
    if stop > len(buf):
        raise _fail(f"truncated: a field announces {length} bytes, {len(buf) - pos} remain")
    return buf[pos:stop], stop


def _string(buf: bytes, pos: int) -> tuple[str, int]:
    length, pos = _uint(buf, pos)
    raw, pos = _raw(buf, pos, length)
    try:
        return raw.decode("utf-8"), pos
    except UnicodeDecodeError:
        raise _fail("a string is not valid UTF-8 (yjs refuses it)") from None


def _string_utf16_length(buf: bytes, pos: int) -> tuple[int, int]:
    """Skip a string; return its length in UTF-16 code units, as yjs counts clocks."""
    length, pos = _uint(buf, pos)
    raw, pos = _raw(buf, pos, length)
    if raw.isascii():
        return length, pos
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail("a string is not valid UTF-8 (yjs refuses it)") from None
    # Code points above the BMP take two UTF-16 units.
    return len(text) + sum(1 for char in text if char > "\uffff"), pos


def read_update(update: bytes) -> UpdateShape:
    """Decode and check a whole Yjs v1 update. Returns its shape; raises `InvalidUpdate`."""
    shape = read_text_insert(update)
    return shape if shape is not None else _read_any_update(update)


def read_text_insert(buf: bytes) -> UpdateShape | None:
    """The shape of an update that inserts one run of text (one client, one string item
    placed by its neighbours, nothing deleted), as a keystroke or a plain-text paste makes;
    None for any other update, and for one that breaks a rule (`read_update` says which).

    Most updates are these: this reads them with a third of the calls of the general path,
    and its cost does not grow with the number of structs, only (slightly) with the text."""
    if len(buf) < 8 or buf[0] != 1 or buf[1] != 1 or buf[-1] != 0:
        return None
    client, pos = _uint(buf, 2)
    clock, pos = _uint(buf, pos)
    info = buf[pos]
    if info & 0x3F != _CONTENT_STRING or not info & (_HAS_ORIGIN | _HAS_RIGHT_ORIGIN):
        return None
    refs: dict[int, int] = {}
    if info & _HAS_ORIGIN:
        pos = _read_ref(buf, pos + 1, client, clock, refs, "origin")
    else:
        pos += 1
    if info & _HAS_RIGHT_ORIGIN:
        pos = _read_ref(buf, pos, client, clock, refs, "right origin")
    start_of_string = pos
    length, pos = _uint(buf, pos)
    if pos + length + 1 != len(buf):
        return None
    if not buf[pos : pos + length].isascii():
        try:
            length, _ = _string_utf16_length(buf, start_of_string)
        except InvalidUpdate:
            return None
    if client > MAX_CLIENT_ID or clock + length > MAX_CLOCK or length == 0:
        return None
    return UpdateShape({client: ClientRange(clock, clock + length)}, refs, {}, len(buf) - 1, 1)


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
            length, pos = _read_struct(buf, pos, client, clock, refs, skips)
            clock += length
        if clock > MAX_CLOCK:
            raise _fail(f"client {client} clock {clock} at or above 2**32")
        struct_count += n_structs
        clients[client] = (
            ClientRange(start, clock, tuple(skips)) if skips else ClientRange(start, clock)
        )
    delete_set_offset = pos
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
    if pos != len(buf):
        raise _fail(f"{len(buf) - pos} bytes after the delete set")
    return UpdateShape(clients, refs, deletes, delete_set_offset, struct_count)


def _read_struct(
    buf: bytes,
    pos: int,
    client: int,
    clock: int,
    refs: dict[int, int],
    skips: list[tuple[int, int]],
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
        length, pos = _uint(buf, pos)
        if length == 0:
            raise _fail(f"an empty struct of client {client}")
        if length > MAX_CLOCK:
            raise _fail(f"a struct length {length} at or above 2**32")
        if kind == _SKIP:
            skips.append((clock, clock + length))
        return length, pos
    if info & _HAS_ORIGIN:
        pos = _read_ref(buf, pos, client, clock, refs, "origin")
    if info & _HAS_RIGHT_ORIGIN:
        pos = _read_ref(buf, pos, client, clock, refs, "right origin")
    if not info & (_HAS_ORIGIN | _HAS_RIGHT_ORIGIN):
        parent_info, pos = _uint(buf, pos)
        if parent_info == 1:
            _, pos = _string(buf, pos)
        elif parent_info == 0:
            pos = _read_ref(buf, pos, client, clock, refs, "parent")
        else:
            raise _fail(f"parent info {parent_info} (yjs reads any value but 1 as an id)")
        if info & _HAS_PARENT_SUB:
            _, pos = _string(buf, pos)
    if kind == _CONTENT_STRING:
        length, pos = _string_utf16_length(buf, pos)
    else:
        length, pos = _read_content(buf, pos, kind)
    if length == 0:
        raise _fail(f"an empty item of client {client}")
    if length > MAX_CLOCK:
        raise _fail(f"an item length {length} at or above 2**32")
    return length, pos


def _read_ref(
    buf: bytes, pos: int, client: int, clock: int, refs: dict[int, int], what: str
) -> int:
    ref_client, pos = _uint(buf, pos)
    ref_clock, pos = _uint(buf, pos)
    if ref_client > MAX_CLIENT_ID:
        raise _fail(f"{what} client id {ref_client} above 2**53 - 1")
    if ref_clock > MAX_CLOCK:
        raise _fail(f"{what} clock {ref_clock} at or above 2**32")
    if ref_client == client and ref_clock >= clock:
        raise _fail(f"an item of client {client} at clock {clock} refers to its own future")
    if refs.get(ref_client, -1) < ref_clock:
        refs[ref_client] = ref_clock
    return pos


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
        type_ref, pos = _uint(buf, pos)
        if type_ref > _MAX_TYPE_REF:
            raise _fail(f"unknown shared type {type_ref}")
        if type_ref == _TYPE_XML_ELEMENT or type_ref == _TYPE_XML_HOOK:
            _, pos = _string(buf, pos)
        return 1, pos
    if kind == _CONTENT_FORMAT:
        _, pos = _string(buf, pos)
        return 1, _read_json(buf, pos)
    if kind == _CONTENT_EMBED:
        return 1, _read_json(buf, pos)
    if kind == _CONTENT_BINARY:
        length, pos = _uint(buf, pos)
        _, pos = _raw(buf, pos, length)
        return 1, pos
    if kind == _CONTENT_JSON:
        length, pos = _count(buf, pos, "JSON values", 1)
        for _ in range(length):
            text, pos = _string(buf, pos)
            if text != "undefined":  # yjs' own spelling of an undefined entry
                _check_json_text(text)
        return length, pos
    if kind == _CONTENT_DOC:
        _, pos = _string(buf, pos)
        return 1, _read_any(buf, pos, 0)
    raise _fail(f"unknown content kind {kind}")


def _read_json(buf: bytes, pos: int) -> int:
    text, pos = _string(buf, pos)
    _check_json_text(text)
    return pos


def _check_json_text(text: str) -> None:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise _fail("embedded JSON does not parse") from None
    _check_json_value(value, 0)


def _check_json_value(value: object, depth: int) -> None:
    if depth > MAX_ANY_DEPTH:
        raise _fail(f"JSON nested deeper than {MAX_ANY_DEPTH}")
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > MAX_SAFE_INTEGER:
            raise _fail(f"JSON integer {value} beyond 2**53 - 1")
    elif isinstance(value, list):
        for item in value:
            _check_json_value(item, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            _check_json_value(item, depth + 1)


def _read_any(buf: bytes, pos: int, depth: int) -> int:
    """Skip one lib0 `any` value, checking it; return the next position."""
    if depth > MAX_ANY_DEPTH:
        raise _fail(f"a value nested deeper than {MAX_ANY_DEPTH}")
    if pos >= len(buf):
        raise _fail("truncated: a value is cut off")
    tag = buf[pos]
    pos += 1
    if tag == 119:  # string
        _, pos = _string(buf, pos)
    elif tag in (127, 126, 121, 120):  # undefined, null, false, true
        pass
    elif tag == 125:  # var_int
        pos = _skip_var_int(buf, pos)
    elif tag == 123 or tag == 122:  # float64, bigint64
        _, pos = _raw(buf, pos, 8)
    elif tag == 124:  # float32
        _, pos = _raw(buf, pos, 4)
    elif tag == 118:  # object
        entries, pos = _count(buf, pos, "object entries", 2)
        for _ in range(entries):
            key, pos = _string(buf, pos)
            if key == "__proto__":
                raise _fail("an object key __proto__ (JavaScript reads it as the prototype)")
            pos = _read_any(buf, pos, depth + 1)
    elif tag == 117:  # array
        entries, pos = _count(buf, pos, "array entries", 1)
        for _ in range(entries):
            pos = _read_any(buf, pos, depth + 1)
    elif tag == 116:  # Uint8Array
        length, pos = _uint(buf, pos)
        _, pos = _raw(buf, pos, length)
    else:
        raise _fail(f"unknown value tag {tag}")
    return pos


def _skip_var_int(buf: bytes, pos: int) -> int:
    """lib0's signed var_int: 6 value bits and a sign in the first byte, then 7 per byte."""
    try:
        byte = buf[pos]
        pos += 1
        value = byte & 0x3F
        shift = 6
        while byte & 0x80:
            if shift > 53:
                raise _fail("an integer beyond 2**53 - 1")
            byte = buf[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
    except IndexError:
        raise _fail("truncated: an integer is cut off") from None
    if value > MAX_SAFE_INTEGER:
        raise _fail(f"integer {value} beyond 2**53 - 1")
    return pos
