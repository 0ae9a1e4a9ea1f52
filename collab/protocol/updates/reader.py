"""Reading an update: `read_update` asks the C reader, then the fast path (`_read_one_item`,
the updates of one item that typing, deleting and setting a map key make), then the general
path (`structs`). Also `read_text_insert` and `read_state_vector`."""

from __future__ import annotations

from collab.protocol.updates.encoding import (
    _ANY_STRING,
    _CONTENT_ANY,
    _CONTENT_STRING,
    _HAS_ORIGIN,
    _HAS_RIGHT_ORIGIN,
    _count,
    _is_utf8,
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
from collab.protocol.updates.structs import _read_any_update, _read_delete_set
from collab.protocol.updates.values import _read_any


def read_update(update: bytes) -> UpdateShape:
    """Decode and check a whole Yjs v1 update. Returns its shape; raises `InvalidUpdate`."""
    if _native_read is not None:
        shape = _native_read(update)
        if shape is not None:
            return shape
    return read_update_in_python(update)


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
