"""The few y-websocket frames the attack benchmark sends and reads, and lib0 var_uints.

    frame  = var_uint(0: sync) var_uint(0: step 1 | 1: step 2 | 2: update) var_bytes(payload)

Only what a client needs: no awareness, no validation beyond what the benchmark relies on
(the server is the one under test, its frames are trusted here).
"""

from __future__ import annotations

from typing import NamedTuple

MESSAGE_SYNC = 0
SYNC_STEP1 = 0
SYNC_STEP2 = 1
SYNC_UPDATE = 2


class SyncFrame(NamedTuple):
    kind: int
    payload: bytes


def var_uint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def read_var_uint(data: bytes, pos: int) -> tuple[int, int]:
    """The var_uint at `pos` and the position after it. Raises `ValueError` when truncated."""
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated var_uint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def sync_frame(kind: int, payload: bytes) -> bytes:
    return bytes((MESSAGE_SYNC, kind)) + var_uint(len(payload)) + payload


def step1(state_vector: bytes) -> bytes:
    return sync_frame(SYNC_STEP1, state_vector)


def step2(update: bytes) -> bytes:
    return sync_frame(SYNC_STEP2, update)


def update_frame(update: bytes) -> bytes:
    return sync_frame(SYNC_UPDATE, update)


def parse_sync(frame: bytes) -> SyncFrame | None:
    """The sync message in `frame`, or None for any other message (awareness, auth...)."""
    if len(frame) < 2 or frame[0] != MESSAGE_SYNC:
        return None
    length, pos = read_var_uint(frame, 2)
    return SyncFrame(frame[1], frame[pos : pos + length])


def state_vector_clocks(state_vector: bytes) -> dict[int, int]:
    """client id -> clock, from an encoded state vector."""
    count, pos = read_var_uint(state_vector, 0)
    clocks = {}
    for _ in range(count):
        client, pos = read_var_uint(state_vector, pos)
        clocks[client], pos = read_var_uint(state_vector, pos)
    return clocks
