"""The values items carry, checked so that yjs and yrs read them alike: lib0 `any` values
(map and array entries, subdocument options) and JSON (embeds, format values)."""

from __future__ import annotations

import math
import re

import orjson

from collab.protocol.updates.encoding import _ANY_OBJECT, _count, _raw, _string, _uint
from collab.protocol.updates.shape import _fail

MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer a JavaScript number holds exactly (yjs reads every number as one)."""
# lib0's `any` may nest; yjs and yrs recurse, so depth is a stack-size attack.
MAX_ANY_DEPTH = 64


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
    elif tag == _ANY_OBJECT:
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


def _read_json(buf: bytes, pos: int) -> int:
    text, pos = _string(buf, pos)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise _fail("embedded JSON does not parse") from None
    if _check_json_value(value, 0):
        _check_json_floats(text)
    return pos


def _check_json_value(value: object, depth: int) -> bool:
    """Check a parsed JSON value; return whether it holds a float."""
    if depth > MAX_ANY_DEPTH:
        raise _fail(f"JSON nested deeper than {MAX_ANY_DEPTH}")
    if isinstance(value, float):
        return True
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > MAX_SAFE_INTEGER:
            raise _fail(f"JSON integer {value} beyond 2**53 - 1")
    elif isinstance(value, list):
        # lists, not generators: every item is checked, not only those up to a float
        return any([_check_json_value(item, depth + 1) for item in value])
    elif isinstance(value, dict):
        return any([_check_json_value(item, depth + 1) for item in value.values()])
    return False


# A JSON string, or a number with its integer digits, fraction digits and exponent.
_JSON_STRING_OR_NUMBER = re.compile(r'"(?:[^"\\]|\\.)*"|-?(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?')
_POW10 = tuple(float(f"1e{exponent}") for exponent in range(309))
_MAX_SERDE_SIGNIFICAND = 2**64 - 1
_MAX_EXPONENT_DIGITS = 5


def _check_json_floats(text: str) -> None:
    """yrs parses JSON with serde_json's default, best-effort float parser, which reads about
    one float in seven one unit in the last place off; JavaScript reads every one exactly.
    Refuse every number serde_json would read otherwise than JavaScript."""
    for match in _JSON_STRING_OR_NUMBER.finditer(text):
        integer, fraction, exponent = match.groups()
        if integer is None or (fraction is None and exponent is None):
            continue  # a string, or an integer (read exactly by both, checked above)
        digits = integer + (fraction or "")
        significand = int(digits)
        if significand > _MAX_SERDE_SIGNIFICAND or (
            exponent is not None and len(exponent.lstrip("+-")) > _MAX_EXPONENT_DIGITS
        ):
            raise _fail(f"JSON number {match.group()} (yrs reads it inexactly)")
        serde = _serde_float(significand, int(exponent or 0) - len(fraction or ""))
        exact = float(match.group().lstrip("-"))
        if serde != exact or math.isinf(serde):
            raise _fail(f"JSON number {match.group()}: yrs reads {serde!r}, JavaScript {exact!r}")


def _serde_float(significand: int, exponent: int) -> float:
    """What serde_json (without its float_roundtrip feature) reads for significand * 10 **
    exponent: one rounding of the significand, then one of a product or quotient."""
    value = float(significand)
    while True:
        if -len(_POW10) < exponent < len(_POW10):
            if exponent >= 0:
                return value * _POW10[exponent]
            return value / _POW10[-exponent]
        if value == 0.0:
            return value
        if exponent >= 0:
            return math.inf
        value /= 1e308
        exponent += 308
