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

The modules, each with one job:
- `reader`: `read_update` and the fast path of the common updates (after the C reader);
- `structs`: the general path, any update struct by struct, and the checks across structs;
- `values`: the rules for lib0 `any` values and JSON content;
- `encoding`: the wire numbers and the lib0 fields, read by position;
- `shape`: what reading yields, `UpdateShape` or `InvalidUpdate`, and the id limits;
- `checks`: a shape against a document's clocks (`admit`, `missing_dependencies`, `advance`);
- `native`: the C versions (`collab/protocol/_reader.c`) of the reader and the checks.
"""

from __future__ import annotations

from collab.protocol.updates.checks import (
    add_values,
    admit,
    advance,
    carries_new_structs,
    misplaced_text,
    missing_dependencies,
)
from collab.protocol.updates.reader import (
    read_state_vector,
    read_text_insert,
    read_update,
    read_update_in_python,
)
from collab.protocol.updates.shape import (
    MAX_CLIENT_ID,
    MAX_CLOCK,
    ClientRange,
    InvalidUpdate,
    UpdateShape,
)
from collab.protocol.updates.values import MAX_ANY_DEPTH

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
