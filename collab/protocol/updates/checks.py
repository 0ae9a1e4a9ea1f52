"""An update's shape against a document's clocks and value index, without the CRDT library:
what the document lacks to apply it (`admit`, `missing_dependencies`), whether it brings
anything new, whether it places text among values; and, once it is applied, its record in
them (`advance`)."""

from __future__ import annotations

import bisect

from collab.protocol.updates.native import _native_advance, _native_check
from collab.protocol.updates.shape import MAX_CLOCK, UpdateShape


def misplaced_text(shape: UpdateShape, values: dict[int, list[tuple[int, int]]]) -> str | None:
    """Which text item of an update of `shape` would sit among values (next to an item of
    value content, a document's per `values`: each client's (start, end) ranges, sorted, or
    the update's own), or None. Stock clients never do it: their arrays and maps hold values,
    their texts strings. pycrdt does not survive it: string content with a non-ASCII
    character inside an array makes every later read of that array loop forever."""
    for client, clock in shape.text_neighbours:
        ranges = values.get(client)
        if ranges:
            index = bisect.bisect_right(ranges, (clock, MAX_CLOCK + 1)) - 1
            if index >= 0 and ranges[index][0] <= clock < ranges[index][1]:
                return f"text content placed next to the value {client}:{clock}"
        for value_client, start, end in shape.values:
            if value_client == client and start <= clock < end:
                return f"text content placed next to the value {client}:{clock}"
    return None


def add_values(values: dict[int, list[tuple[int, int]]], shape: UpdateShape) -> None:
    """Record the value ranges of an applied update of `shape` in `values`. A client's
    values mostly follow its last ones (each map change of a client is its next clock):
    those extend the last range, so the list grows with runs, not with changes."""
    for client, start, end in shape.values:
        ranges = values.setdefault(client, [])
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], end)
        elif not ranges or ranges[-1][1] < start:
            ranges.append((start, end))
        else:
            bisect.insort(ranges, (start, end))


def advance(
    shape: UpdateShape, clocks: dict[int, int], values: dict[int, list[tuple[int, int]]]
) -> None:
    """Record an applied update of `shape` in a document's state vector `clocks` (each
    client's clock moves to the end of its structs) and in its value index `values`
    (`add_values`)."""
    if _native_advance is None or not _native_advance(shape, clocks, values):
        _advance_in_python(shape, clocks, values)


def _advance_in_python(
    shape: UpdateShape, clocks: dict[int, int], values: dict[int, list[tuple[int, int]]]
) -> None:
    if shape.values:
        add_values(values, shape)
    for client, structs in shape.clients.items():
        if structs.end > clocks.get(client, 0):
            clocks[client] = structs.end


def missing_dependencies(shape: UpdateShape, clocks: dict[int, int]) -> str | None:
    """What a document with state vector `clocks` lacks to apply an update of `shape`
    whole (structs before the update's first ones, items it refers to, content it deletes),
    or None if nothing. Such an update must not reach the CRDT library: it keeps the part it
    cannot place pending, and pycrdt and yjs then diverge (see the README's limits)."""
    if _native_check is not None and _native_check(shape, clocks, False) is not None:
        return None
    return _check(shape, clocks, False)[0]


def admit(shape: UpdateShape, clocks: dict[int, int]) -> tuple[str | None, bool]:
    """Why a document with state vector `clocks` cannot take an update of `shape` from a
    client as it is (`missing_dependencies`, or structs of a client that start before the
    document's clock and end after it), or None; and whether it carries new structs. One
    pass: every local edit asks this.

    The overlap: the library integrates only the part past the clock, cut out of the struct
    it came in; when the part before is not what the document has (a client re-sending other
    content under ids it already used), the cut part is placed differently than a reload of
    the same document places it. A stock client never needs to: its sync step 2 starts at
    the clock our sync step 1 names."""
    if _native_check is not None:
        new = _native_check(shape, clocks, True)
        if new is not None:
            return None, new
    return _check(shape, clocks, True)


def _check(
    shape: UpdateShape, clocks: dict[int, int], refuse_overlap: bool
) -> tuple[str | None, bool]:
    structs_of = shape.clients
    new = False
    for client, structs in structs_of.items():
        have = clocks.get(client, 0)
        if structs.start > have:
            return (
                f"client {client}'s structs start at clock {structs.start}, "
                f"the document has {have}",
                False,
            )
        if structs.end > have:
            if refuse_overlap and structs.start < have:
                return (
                    f"client {client}'s structs {structs.start}-{structs.end} overlap the "
                    f"document's, which end at {have}"
                ), False
            new = True
        for skip_start, skip_end in structs.skips:
            if have < skip_end < structs.end:
                return f"client {client}'s clocks {skip_start}-{skip_end} are missing", False
    # What a document at `clocks` has of a client once the update is in: its own clock, or
    # the end of the update's structs of that client (which start within it: checked above).
    for client, clock in shape.refs.items():
        if clock >= clocks.get(client, 0):
            carried = structs_of.get(client)
            if carried is None or clock >= carried.end:
                return f"an item refers to client {client}'s clock {clock}, which is missing", False
    for client, end in shape.deletes.items():
        if end > clocks.get(client, 0):
            carried = structs_of.get(client)
            if carried is None or end > carried.end:
                return f"deletes client {client}'s clocks up to {end}, which are missing", False
    return None, new


def carries_new_structs(shape: UpdateShape, clocks: dict[int, int]) -> bool:
    """Whether an update of `shape` has structs a document at `clocks` does not have."""
    for client, structs in shape.clients.items():
        if structs.end > clocks.get(client, 0):
            return True
    return False
