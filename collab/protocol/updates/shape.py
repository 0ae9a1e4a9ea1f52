"""What reading a Yjs update yields: its shape (`UpdateShape`), or `InvalidUpdate` naming the
rule it breaks; and the limits of the ids in it."""

from __future__ import annotations

from typing import NamedTuple

from collab.errors import ProtocolError

MAX_CLOCK = 2**32 - 1
"""The largest clock (and clock + length) an update may carry: yrs reads clocks as u32."""
MAX_CLIENT_ID = 2**53 - 1
"""The largest client id: yjs reads client ids as JavaScript numbers."""


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
      it, and with the document);
    - `values`: (client, start, end) of its items of value content (lib0 values, binary),
      which live in maps and arrays;
    - `text_neighbours`: the ids its items of text content (strings, formats, embeds) are
      placed next to (their origin and right origin)."""

    clients: dict[int, ClientRange]
    refs: dict[int, int]
    deletes: dict[int, int]
    delete_set_offset: int
    struct_count: int
    values: tuple[tuple[int, int, int], ...] = ()
    text_neighbours: tuple[tuple[int, int], ...] = ()


def _fail(rule: str) -> InvalidUpdate:
    return InvalidUpdate(f"invalid Yjs update: {rule}")
