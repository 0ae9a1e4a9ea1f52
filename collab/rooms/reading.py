"""Where an update is read: on the event loop, or in the trial worker.

Updates up to `INLINE_MAX_UPDATE_BYTES` are read on the event loop (reading one costs at most
a few milliseconds; keystrokes and ordinary pastes are far below), and so is an insert of one
run of text of any size (reading it is a UTF-8 check; integrating it, one struct). Of those,
the ones of at most `INLINE_MAX_STRUCTS` structs are applied there too. Everything else is
read and tried in the trial worker first (measurements: loadtests/RESULTS.md, "Hostile
updates").
"""

from __future__ import annotations

import hashlib

from collab.protocol.updates import UpdateShape, read_text_insert, read_update

INLINE_MAX_UPDATE_BYTES = 16 * 1024
INLINE_MAX_STRUCTS = 16


def read_here(update: bytes) -> UpdateShape | None:
    """`read_update(update)` when reading it on the event loop costs at most a few
    milliseconds (up to INLINE_MAX_UPDATE_BYTES, or one run of text of any size); None when
    it is to be read in the trial worker. Raises `InvalidUpdate`."""
    if len(update) <= INLINE_MAX_UPDATE_BYTES:
        return read_update(update)
    return read_text_insert(update)


def digest_of(update: bytes) -> bytes:
    """What a large update is known by once a room took it whole (a re-sent copy costs
    neither a read nor a trial)."""
    return hashlib.blake2b(update, digest_size=16).digest()
