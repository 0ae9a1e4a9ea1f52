"""`SavedEchoes`: which echoes the store holds, released oldest first (no sockets, no store)."""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Text

from collab.protocol.messages import update_payload
from collab.rooms.saved import SavedEchoes, echo_frames


def typed(*words: str) -> list[bytes]:
    """One update per word typed at the end of a text."""
    doc: Doc[Any] = Doc()
    text = doc.get("t", type=Text)
    updates = []
    for word in words:
        before = doc.get_state()
        text.insert(len(str(text)), word)
        updates.append(doc.get_update(before))
    return updates


def text_of(updates: list[bytes]) -> str:
    doc: Doc[Any] = Doc()
    for update in updates:
        doc.apply_update(update)
    return str(doc.get("t", type=Text))


def test_echoes_are_released_once_the_log_reaches_them_and_in_order() -> None:
    """An echo waits until its log position is written; a later one never overtakes it."""
    echoes = SavedEchoes()
    a, b, c = typed("a", "b", "c")
    echoes.add("p1", a, 1)
    echoes.add("p2", b, 3)
    echoes.add("p1", c, 2)
    assert echoes.take_written(0) == []
    assert [echo.update for echo in echoes.take_written(2)] == [a]
    assert [echo.update for echo in echoes.take_written(3)] == [b, c]
    assert len(echoes) == 0


def test_an_echo_that_needs_a_snapshot_holds_back_the_later_ones() -> None:
    """After a collapse only a snapshot releases the waiting echoes, and the echoes behind
    them wait too; a snapshot releases exactly the echoes added before it started."""
    echoes = SavedEchoes()
    a, b, c = typed("a", "b", "c")
    echoes.add("p1", a, 1)
    echoes.need_snapshot()
    echoes.add("p1", b, 1)
    started_at = echoes.next_serial
    echoes.add("p1", c, 2)
    assert echoes.take_written(5) == []
    assert [echo.update for echo in echoes.take_snapshotted(started_at)] == [a, b]
    assert [echo.update for echo in echoes.take_written(2)] == [c]


def test_folding_keeps_one_echo_per_peer_that_waits_for_the_last() -> None:
    """Folded echoes hold every update of their peer and wait for the furthest position,
    or for a snapshot if any of them did."""
    echoes = SavedEchoes()
    a, c = typed("a", "c")
    b, d = typed("b", "d")
    echoes.add("p1", a, 1)
    echoes.add("p2", b, 2)
    echoes.add("p1", c, 4)
    echoes.add("p2", d, None)
    echoes.fold()
    assert len(echoes) == 2
    assert echoes.take_written(3) == []
    [p1] = echoes.take_written(4)
    assert (p1.peer_id, text_of([p1.update])) == ("p1", "ac")
    [p2] = echoes.take_snapshotted(echoes.next_serial)
    assert (p2.peer_id, text_of([p2.update])) == ("p2", "bd")


def test_updates_released_together_go_out_as_one_update_message() -> None:
    """A peer's released updates are merged into one sync Update message."""
    updates = typed("one ", "two")
    [frame] = echo_frames(updates)
    payload = update_payload(frame)
    assert payload is not None
    assert text_of([payload]) == "one two"
