"""What yjs writes and reads, from `tests/support/js/updates.mjs`, beside what pycrdt reads.

`run_yjs(request)` runs one `node updates.mjs` process for one request (see the script for
the commands: `generate`, `apply`, `read`) and returns its reply. `pycrdt_apply` is the
Python twin of the script's `apply`: a fresh pycrdt document applies updates and its roots are
read in the same shape as the script's (`read_roots`), so the two compare with `==`.

The rest crafts Yjs v1 updates byte by byte (`encode_update`, `item`, `gc`, `skip`, the
`content_*` helpers, lib0's `var_uint`, `var_int`, `var_string`, `any_value`), valid or not,
for the reader's tests and the differential ones.

Errors: `RuntimeError` naming the command to run when Node.js or `tests/node_modules` is
missing; `YjsScriptError` when the script fails (with its stderr).
"""

from __future__ import annotations

import json
import math
import shutil
import struct
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from collab.protocol.updates import read_state_vector
from tests.support.node_agent import TESTS_DIR, node_unavailable_reason
from tests.support.waiting import scaled

UPDATES_SCRIPT = TESTS_DIR / "support" / "js" / "updates.mjs"
SCRIPT_TIMEOUT_S = 60.0
ROOT_TYPES: dict[str, type[Text | Map | Array | XmlFragment]] = {
    "text": Text,
    "map": Map,
    "array": Array,
    "xml": XmlFragment,
}


class YjsScriptError(Exception):
    """`updates.mjs` exited with an error."""


def run_yjs(request: Mapping[str, Any]) -> dict[str, Any]:
    """Run `updates.mjs` on one request; return its reply."""
    reason = node_unavailable_reason()
    if reason is not None:
        raise RuntimeError(reason)
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, str(UPDATES_SCRIPT)],
        input=json.dumps(request).encode(),
        capture_output=True,
        timeout=scaled(SCRIPT_TIMEOUT_S),
        cwd=TESTS_DIR,
        check=False,
    )
    if done.returncode != 0:
        raise YjsScriptError(
            f"updates.mjs exited with {done.returncode}:\n{done.stderr.decode(errors='replace')}"
        )
    reply: dict[str, Any] = json.loads(done.stdout, parse_int=_parse_int)
    return reply


def _parse_int(text: str) -> int | float:
    """An integer JavaScript wrote: beyond 2**53 it is a float's shortest spelling."""
    value = int(text)
    return value if abs(value) < 2**53 else float(text)


def yjs_sessions(seeds: Iterable[int]) -> list[dict[str, Any]]:
    """Random yjs edit sessions, one per seed (see `updates.mjs generate`)."""
    sessions: list[dict[str, Any]] = run_yjs({"cmd": "generate", "seeds": list(seeds)})["sessions"]
    return sessions


def yjs_apply(cases: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What yjs makes of each case {roots, base: [hex], updates: [hex]}."""
    results: list[dict[str, Any]] = run_yjs({"cmd": "apply", "cases": list(cases)})["results"]
    return results


def yjs_read(updates: Sequence[bytes]) -> list[dict[str, Any]]:
    """What yjs reads from each update (Y.decodeUpdate, Y.encodeStateVectorFromUpdate)."""
    reads: list[dict[str, Any]] = run_yjs(
        {"cmd": "read", "updates": [update.hex() for update in updates]}
    )["reads"]
    return reads


def normalize(value: object) -> object:
    """A value read by pycrdt, tagged as `updates.mjs` tags what JSON cannot hold."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        # pycrdt reads numbers as floats, and lib0 BigInts as int beyond 2**53 only
        return value if abs(value) < 2**53 else {"$bigint": str(value)}
    if isinstance(value, float):
        if math.isnan(value):
            return {"$float": "NaN"}
        if math.isinf(value):
            return {"$float": "Infinity" if value > 0 else "-Infinity"}
        if value == 0 and math.copysign(1.0, value) < 0:
            return {"$float": "-0"}
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, bytes | bytearray):
        return {"$bytes": bytes(value).hex()}
    if isinstance(value, Doc):
        return {"$doc": value.guid}
    if isinstance(value, Text | Map | Array | XmlFragment):
        return normalize(value.to_py())
    if isinstance(value, list | tuple):
        return [normalize(item) for item in value]
    if isinstance(value, dict):
        return {str(key): normalize(item) for key, item in value.items()}
    return {"$unknown": repr(value)}


def _delta(text: Text | XmlText) -> list[dict[str, object]]:
    delta: list[dict[str, object]] = []
    for insert, attributes in text.diff():
        op: dict[str, object] = {"insert": normalize(insert)}
        if attributes:
            op["attributes"] = normalize(attributes)
        delta.append(op)
    return delta


def _xml(node: XmlFragment | XmlElement | XmlText) -> dict[str, object]:
    if isinstance(node, XmlText):
        return {"delta": _delta(node)}
    children = [_xml(child) for child in node.children]
    if isinstance(node, XmlElement):
        return {
            "name": node.tag,
            "attributes": normalize(dict(node.attributes)),
            "children": children,
        }
    return {"children": children}


def read_roots(doc: Doc, roots: Mapping[str, str]) -> dict[str, object]:
    """The roots of `doc`, read as `updates.mjs` reads them; {"$error": ...} for a root
    that cannot be read."""
    out: dict[str, object] = {}
    for name, kind in roots.items():
        try:
            root = doc.get(name, type=ROOT_TYPES[kind])
            if isinstance(root, Text):
                out[name] = {"string": str(root), "delta": _delta(root)}
            elif isinstance(root, XmlFragment):
                out[name] = _xml(root)
            else:
                out[name] = normalize(root.to_py())
        except Exception as error:  # what pycrdt raises on a root it cannot read
            out[name] = {"$error": f"{type(error).__name__}: {error}"}
    return out


def pycrdt_apply(
    roots: Mapping[str, str], base: Sequence[bytes], updates: Sequence[bytes] = ()
) -> dict[str, Any]:
    """A fresh pycrdt document applies `base` then `updates`, catching what raises.
    Returns {errors, state_vector, json} like `updates.mjs apply`."""
    doc: Doc = Doc(client_id=1)
    errors: list[str | None] = []
    for update in [*base, *updates]:
        try:
            doc.apply_update(update)
            errors.append(None)
        except BaseException as error:  # a panic in yrs surfaces as a BaseException
            if isinstance(error, KeyboardInterrupt | SystemExit):
                raise
            errors.append(f"{type(error).__name__}: {error}")
    return {
        "errors": errors,
        "state_vector": read_state_vector(doc.get_state()),
        "json": read_roots(doc, roots),
    }


# ---- crafting Yjs v1 updates byte by byte ----

GC = 0
DELETED = 1
JSON = 2
BINARY = 3
STRING = 4
EMBED = 5
FORMAT = 6
TYPE = 7
ANY = 8
DOC = 9
SKIP = 10
HAS_ORIGIN = 0x80
HAS_RIGHT_ORIGIN = 0x40
HAS_PARENT_SUB = 0x20
ARRAY_TYPE, MAP_TYPE, TEXT_TYPE, XML_ELEMENT_TYPE, XML_FRAGMENT_TYPE, XML_HOOK_TYPE = range(6)
XML_TEXT_TYPE = 6

Id = tuple[int, int]


def var_uint(value: int) -> bytes:
    """lib0 var_uint: 7 bits a byte, low bits first."""
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def var_int(value: int, *, negative_zero: bool = False) -> bytes:
    """lib0 var_int: a sign bit and 6 value bits in the first byte, then 7 a byte."""
    negative = value < 0 or negative_zero
    value = abs(value)
    out = bytearray([(0x80 if value > 0x3F else 0) | (0x40 if negative else 0) | value & 0x3F])
    value >>= 6
    while value > 0:
        out.append((0x80 if value > 0x7F else 0) | value & 0x7F)
        value >>= 7
    return bytes(out)


def var_string(text: str | bytes) -> bytes:
    """A lib0 var_string; lone surrogates in `text` are written as the invalid UTF-8 they
    make (ED A0 80 for U+D800), which a reader must refuse."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return var_uint(len(raw)) + raw


def ident(client: int, clock: int) -> bytes:
    return var_uint(client) + var_uint(clock)


def any_value(value: object) -> bytes:
    """lib0 `any`, as yjs writes it (integers up to 2**31 as var_int, others as float64)."""
    if value is None:
        return b"\x7e"
    if value is True:
        return b"\x78"
    if value is False:
        return b"\x79"
    if isinstance(value, int) and abs(value) <= 2**31:
        return b"\x7d" + var_int(value)
    if isinstance(value, int | float):
        return b"\x7b" + struct.pack(">d", value)
    if isinstance(value, str):
        return b"\x77" + var_string(value)
    if isinstance(value, bytes):
        return b"\x74" + var_uint(len(value)) + value
    if isinstance(value, list):
        return b"\x75" + var_uint(len(value)) + b"".join(any_value(item) for item in value)
    if isinstance(value, dict):
        entries = b"".join(var_string(key) + any_value(item) for key, item in value.items())
        return b"\x76" + var_uint(len(value)) + entries
    raise TypeError(f"no lib0 any for {value!r}")


def content_string(text: str | bytes) -> tuple[int, bytes]:
    return STRING, var_string(text)


def content_any(*values: object) -> tuple[int, bytes]:
    return ANY, var_uint(len(values)) + b"".join(any_value(value) for value in values)


def content_deleted(length: int) -> tuple[int, bytes]:
    return DELETED, var_uint(length)


def content_type(type_ref: int, name: str | None = None) -> tuple[int, bytes]:
    return TYPE, var_uint(type_ref) + (b"" if name is None else var_string(name))


def content_format(key: str, value_json: str) -> tuple[int, bytes]:
    return FORMAT, var_string(key) + var_string(value_json)


def content_embed(value_json: str) -> tuple[int, bytes]:
    return EMBED, var_string(value_json)


def content_binary(payload: bytes) -> tuple[int, bytes]:
    return BINARY, var_uint(len(payload)) + payload


def content_json(*texts: str) -> tuple[int, bytes]:
    return JSON, var_uint(len(texts)) + b"".join(var_string(text) for text in texts)


def content_doc(guid: str, options: bytes = b"\x76\x00") -> tuple[int, bytes]:
    return DOC, var_string(guid) + options


def item(
    content: tuple[int, bytes],
    *,
    origin: Id | None = None,
    right: Id | None = None,
    root: str | None = None,
    parent: Id | None = None,
    sub: str | None = None,
    extra_info: int = 0,
) -> bytes:
    """One item struct; a parent (`root` name or `parent` id, and `sub`) is written only
    when the item has neither origin, as yjs writes it."""
    kind, payload = content
    info = kind | extra_info
    out = bytearray()
    if origin is not None:
        info |= HAS_ORIGIN
        out += ident(*origin)
    if right is not None:
        info |= HAS_RIGHT_ORIGIN
        out += ident(*right)
    if origin is None and right is None:
        if root is not None:
            out += var_uint(1) + var_string(root)
        else:
            assert parent is not None, "an item without origins needs a parent"
            out += var_uint(0) + ident(*parent)
        if sub is not None:
            info |= HAS_PARENT_SUB
            out += var_string(sub)
    return bytes([info]) + bytes(out) + payload


def gc(length: int, info: int = GC) -> bytes:
    return bytes([info]) + var_uint(length)


def skip(length: int, info: int = SKIP) -> bytes:
    return bytes([info]) + var_uint(length)


def encode_update(
    structs: Sequence[tuple[int, int, Sequence[bytes]]] = (),
    deletes: Mapping[int, Sequence[tuple[int, int]]] | None = None,
) -> bytes:
    """An update of `structs` [(client, first clock, [struct bytes])] and `deletes`
    {client: [(clock, length)]}."""
    out = bytearray(var_uint(len(structs)))
    for client, clock, client_structs in structs:
        out += var_uint(len(client_structs)) + var_uint(client) + var_uint(clock)
        out += b"".join(client_structs)
    deletes = deletes or {}
    out += var_uint(len(deletes))
    for client, ranges in deletes.items():
        out += var_uint(client) + var_uint(len(ranges))
        out += b"".join(var_uint(clock) + var_uint(length) for clock, length in ranges)
    return bytes(out)
