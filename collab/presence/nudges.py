"""The messages instances send each other on a workspace's bus room when its presence changed.

Grammar (one bus frame):

    nudge    = reread / changes
    reread   = %x01                    ; "re-read this workspace from the store"
    changes  = %x02 json               ; one instance's write of some users, as JSON:
               [instance_id, previous_seq, seq, {user_id: record | null, ...}]

`record` is `PresenceEntry.to_record()`; null means the user left that instance. A receiver
applies `changes` to what it holds of the instance only when it holds the write numbered
`previous_seq` (`WorkspaceView.apply`); otherwise, and for `reread` or anything it cannot
parse, it re-reads the workspace. A write of more than `MAX_CHANGES` users is sent as
`reread`, which bounds a frame's size: a change costs the bus what it changed, up to that.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from collab.presence.base import Changes, PresenceEntry

REREAD = b"\x01"
_CHANGES = b"\x02"
MAX_CHANGES = 256
"""Users per `changes` frame; a write of more (a whole workspace arriving at once after a
deploy) asks the others to re-read instead, which then costs one read, not a huge frame."""


@dataclass(frozen=True, slots=True)
class ChangesNudge:
    """One instance's write, as a receiver applies it."""

    instance_id: str
    previous_seq: int
    seq: int
    changes: Changes


def encode_changes(instance_id: str, previous_seq: int, seq: int, changes: Changes) -> bytes:
    """The frame for one write: `changes`, or `reread` when there are too many."""
    if len(changes) > MAX_CHANGES:
        return REREAD
    records = {
        user_id: None if entry is None else entry.to_record() for user_id, entry in changes.items()
    }
    return _CHANGES + orjson.dumps([instance_id, previous_seq, seq, records])


def decode_nudge(frame: bytes) -> ChangesNudge | None:
    """The changes a frame carries; None for `reread` and for anything malformed (the
    receiver re-reads, which is always correct)."""
    if not frame.startswith(_CHANGES):
        return None
    try:
        parsed: Any = orjson.loads(frame[1:])
        instance_id, previous_seq, seq, records = parsed
        if not (
            isinstance(instance_id, str)
            and _is_seq(previous_seq)
            and _is_seq(seq)
            and isinstance(records, dict)
            and len(records) <= MAX_CHANGES
        ):
            return None
        changes: dict[str, PresenceEntry | None] = {}
        for user_id, record in records.items():
            if record is None:
                changes[user_id] = None
                continue
            if not isinstance(record, dict):
                return None
            entry = PresenceEntry.from_json(record)
            if entry.user_id != user_id:
                return None
            changes[user_id] = entry
    except (ValueError, KeyError, TypeError):
        return None
    return ChangesNudge(instance_id, previous_seq, seq, changes)


def _is_seq(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
