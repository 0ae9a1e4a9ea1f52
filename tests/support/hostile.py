"""Hostile Yjs updates: what an editor with a valid token can send, built with pycrdt or by
hand with lib0's var_uint. Imports nothing from `collab`: the attacks do not know the server.

Each builder returns a Yjs v1 update (wrap it with `pycrdt.create_update_message` to send it
over a socket, or POST it as is) or, where it says so, a whole WebSocket frame.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Map, Text, write_var_uint

COSTLY_INSERTS = 8000
COSTLY_CLIENTS = (1001, 1002)
COSTLY_ROOT = "t"

U32_WRAPPING_UPDATE = bytes.fromhex("010101818080801004010174016100")
"""One item of client 1 at clock 2**32 + 1 inserting "a" at the start of root "t" (15 bytes,
18 as an update frame). yrs reads the clock as a u32, so for the server it is clock 1, right
after a client-1 document's first character; every yjs client keeps it pending forever."""
U32_WRAPPING_CLIENT = 1

ALLOCATION_BOMB_COUNT = 2**40


def inserts_at_start(
    client_id: int, count: int, root: str = COSTLY_ROOT, chunk: str = "x"
) -> bytes:
    """`count` inserts of `chunk` at position 0 of text `root` by one client, as one update:
    `count` structs, each placed by its right neighbour."""
    doc: Doc[Any] = Doc(client_id=client_id)
    text = doc.get(root, type=Text)
    for _ in range(count):
        text.insert(0, chunk)
    return doc.get_update()


@functools.cache
def costly_pair() -> tuple[bytes, bytes]:
    """Two valid updates of `COSTLY_INSERTS` inserts at position 0 of text "t", by client
    1001 and then 1002 (about 55 KB each). In this order the second takes seconds to
    integrate into a document holding the first (the other way round, milliseconds)."""
    first, second = (inserts_at_start(client, COSTLY_INSERTS) for client in COSTLY_CLIENTS)
    return first, second


@functools.cache
def many_structs_update(client_id: int = 4242, structs: int = 32 * 1024) -> bytes:
    """A large update of many structs, as a big structured paste makes: `structs` runs of 64
    characters inserted at the start of text "t" (about 2.2 MiB for the default 32,768)."""
    return inserts_at_start(client_id, structs, chunk="y" * 64)


@functools.cache
def big_paste_update(client_id: int = 4343, chars: int = 2 * 1024 * 1024) -> bytes:
    """One run of `chars` characters pasted into text "t" (one struct, about 2 MiB)."""
    doc: Doc[Any] = Doc(client_id=client_id)
    doc.get(COSTLY_ROOT, type=Text).insert(0, "p" * chars)
    return doc.get_update()


@dataclass(frozen=True)
class OutOfOrder:
    """A base text and three single-letter inserts of one author (client 10) that make
    `final_text`; `author_state` is the author's whole document."""

    root: str
    base: bytes
    inserts: tuple[bytes, bytes, bytes]
    author_state: bytes
    final_text: str

    @property
    def delivery(self) -> list[bytes]:
        """The order a hostile (or broken) client sends them in: base, u2, u3, u1."""
        u1, u2, u3 = self.inserts
        return [self.base, u2, u3, u1]


def out_of_order_inserts(root: str = "text") -> OutOfOrder:
    """The text "base" (client 1), then the author's "a" at positions 1, 2 and 6: "baaasea"."""
    base_doc: Doc[Any] = Doc(client_id=1)
    base_doc.get(root, type=Text).insert(0, "base")
    base = base_doc.get_update()
    author: Doc[Any] = Doc(client_id=10)
    author.apply_update(base)
    shared = author.get(root, type=Text)
    inserts = []
    for position in (1, 2, 6):
        before = author.get_state()
        shared.insert(position, "a")
        inserts.append(author.get_update(before))
    u1, u2, u3 = inserts
    return OutOfOrder(root, base, (u1, u2, u3), author.get_update(), str(shared))


def _uint(value: int) -> bytes:
    return bytes(write_var_uint(value))


_ITEM_IN_ROOT_T = b"\x04\x01\x01t\x01a"  # string content, parent root "t", the string "a"


def allocation_bombs() -> dict[str, bytes]:
    """Small update frames (message type 0, sync type 2) that each announce 2**40 of
    something: a reader that allocates what it is told before checking the bytes left
    asks for terabytes. Keyed by what is announced."""
    bomb = _uint(ALLOCATION_BOMB_COUNT)
    one_item = _uint(1) + _uint(1) + _uint(7) + _uint(0)
    updates = {
        "clients": bomb + _uint(1) + _uint(7) + _uint(0) + _ITEM_IN_ROOT_T + b"\x00",
        "structs": _uint(1) + bomb + _uint(7) + _uint(0) + _ITEM_IN_ROOT_T + b"\x00",
        "root name length": one_item + b"\x04\x01" + bomb + b"t\x01a\x00",
        "string length": one_item + b"\x04\x01\x01t" + bomb + b"a\x00",
        "any values": one_item + b"\x08\x01\x01t" + bomb + b"\x7f\x00",
        "deleted ranges": _uint(0) + _uint(1) + _uint(7) + bomb + _uint(0) + _uint(1),
    }
    frames = {what: b"\x00\x02" + _uint(len(update)) + update for what, update in updates.items()}
    # The frame itself announces a 2**40-byte update and carries a small valid one.
    valid = one_item + _ITEM_IN_ROOT_T + b"\x00"
    frames["message length"] = b"\x00\x02" + bomb + valid
    return frames


def trailing_skip(client_id: int, clock: int, length: int) -> bytes:
    """An update of one Skip struct of `client_id` from `clock`, `length` clocks long: it
    carries no content (Skip marks clocks an update leaves out), and any client id will do,
    another user's included."""
    return _uint(1) + _uint(1) + _uint(client_id) + _uint(clock) + b"\x0a" + _uint(length) + b"\x00"


def half_applicable_update(parent_client: int, parent_clock: int) -> bytes:
    """Two clients' structs in one update: client 6 appends "gg" to root "t" (valid), client
    5 inserts "zz" into the item at (`parent_client`, `parent_clock`) as its parent. When that
    item is not a shared type (a string item, say) yrs refuses the update after integrating
    client 6's part; yjs turns client 5's item into a GC struct."""
    valid = _uint(1) + _uint(6) + _uint(0) + b"\x04\x01\x01t\x02gg"
    # info 0x04: string content, no origins: the parent follows as an id (parent info 0).
    bad_parent = (
        _uint(1)
        + _uint(5)
        + _uint(0)
        + b"\x04\x00"
        + _uint(parent_client)
        + _uint(parent_clock)
        + b"\x02zz"
    )
    return _uint(2) + valid + bad_parent + b"\x00"


def subdocument_update(root: str = "m", key: str = "sub") -> bytes:
    """A valid update that sets `key` of map `root` to a subdocument (content kind 9), as a
    yjs client's `doc.getMap(root).set(key, new Y.Doc())` does."""
    doc: Doc[Any] = Doc()
    doc.get(root, type=Map)[key] = Doc()
    return doc.get_update()


def reference_cycle(client_a: int, clock_a: int, client_b: int) -> bytes:
    """Two items that each name the other as their origin: `client_a`'s at `clock_a` and
    `client_b`'s at clock 0. Neither can ever be integrated: yrs and yjs both keep them
    pending. `client_a` may be another user's client, at its next clock."""
    item_a = b"\x84" + _uint(client_b) + _uint(0) + b"\x01x"  # string "x", with an origin
    item_b = b"\x84" + _uint(client_a) + _uint(clock_a) + b"\x01y"
    return (
        _uint(2)
        + _uint(1) + _uint(client_a) + _uint(clock_a) + item_a
        + _uint(1) + _uint(client_b) + _uint(0) + item_b
        + b"\x00"
    )  # fmt: skip
