"""The presence messages between instances: a write's changes round-trip, and anything else
is a re-read."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from collab.presence.base import PresenceEntry
from collab.presence.nudges import (
    MAX_CHANGES,
    REREAD,
    ChangesNudge,
    decode_nudge,
    encode_changes,
)

_ids = st.text(min_size=1, max_size=12)
_entries = st.builds(
    PresenceEntry,
    user_id=st.just(""),
    name=st.none() | st.text(max_size=20),
    status=st.none() | st.text(max_size=20),
    notes=st.frozensets(_ids, max_size=3),
    since=st.floats(0, 2e9),
    updated=st.floats(0, 2e9),
)


@given(
    instance_id=_ids,
    previous_seq=st.integers(0, 2**53),
    step=st.integers(1, 10),
    changes=st.dictionaries(_ids, st.none() | _entries, max_size=MAX_CHANGES),
)
def test_changes_round_trip(
    instance_id: str,
    previous_seq: int,
    step: int,
    changes: dict[str, PresenceEntry | None],
) -> None:
    """What `encode_changes` writes, `decode_nudge` reads back as it was."""
    changes = {
        user_id: None
        if entry is None
        else PresenceEntry(
            user_id, entry.name, entry.status, entry.notes, entry.since, entry.updated
        )
        for user_id, entry in changes.items()
    }
    frame = encode_changes(instance_id, previous_seq, previous_seq + step, changes)
    assert decode_nudge(frame) == ChangesNudge(
        instance_id, previous_seq, previous_seq + step, changes
    )


def test_a_write_of_too_many_users_is_a_reread() -> None:
    """A frame stays small: more than `MAX_CHANGES` users ask for a re-read instead."""
    changes: dict[str, PresenceEntry | None] = {f"u{n}": None for n in range(MAX_CHANGES + 1)}
    assert encode_changes("A", 1, 2, changes) == REREAD
    assert decode_nudge(REREAD) is None


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x03[]",
        b"\x02",
        b"\x02{not json",
        b"\x02[]",
        b'\x02["A", 1, 2]',
        b'\x02["A", 1, 2, {}, 5]',
        b"\x02[1, 1, 2, {}]",
        b'\x02["A", -1, 2, {}]',
        b'\x02["A", 1, true, {}]',
        b'\x02["A", 1.5, 2, {}]',
        b'\x02["A", 1, 2, []]',
        b'\x02["A", 1, 2, {"u1": 7}]',
        b'\x02["A", 1, 2, {"u1": {"user": "u1"}}]',
        b'\x02["A", 1, 2, {"u1": {"user": "u2", "since": 1}}]',
        b'\x02["A", 1, 2, {"u1": {"user": "u1", "since": "soon"}}]',
    ],
)
def test_a_malformed_frame_is_a_reread(frame: bytes) -> None:
    """Whatever cannot be read exactly is not applied: the receiver re-reads."""
    assert decode_nudge(frame) is None


def test_too_many_changes_in_a_frame_are_a_reread() -> None:
    records = {f"u{n}": None for n in range(MAX_CHANGES + 1)}
    assert decode_nudge(b"\x02" + orjson.dumps(["A", 1, 2, records])) is None
