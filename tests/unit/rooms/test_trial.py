"""The trial worker: a real worker process reads and tries updates on room replicas."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Doc, Text

from collab.protocol.updates import InvalidUpdate
from collab.rooms.document import DocumentRoom
from collab.rooms.effects import ServerOrigin
from collab.rooms.trial import TrialWorker, UpdateTooCostly


def prepends(client_id: int, count: int) -> bytes:
    """`count` single-letter inserts at position 0 by one client: cheap to integrate alone,
    quadratic after the same from a lower client id."""
    doc: Doc[Any] = Doc(client_id=client_id)
    text = doc.get("t", type=Text)
    for _ in range(count):
        text.insert(0, "x")
    return doc.get_update()


async def test_an_update_is_read_and_tried_on_a_replica() -> None:
    """The worker answers the update's shape and its apply time; the room applies it after."""
    room = DocumentRoom("w/n")
    update = prepends(1001, 500)
    worker = TrialWorker()
    try:
        result = await worker.trial("w/n", room.state_since, update, deadline_s=30.0)
    finally:
        await worker.close()
    assert result.shape.struct_count == 500
    assert result.apply_s is not None
    room.apply_local_update(update, ServerOrigin(), shape=result.shape)
    assert len(room.doc.get("t", type=Text)) == 500


async def test_a_duplicate_is_read_but_not_applied_to_the_replica() -> None:
    """An update the room already has needs no trial: apply_s is None."""
    update = prepends(1001, 100)
    room = DocumentRoom("w/n")
    room.apply_local_update(update, ServerOrigin())
    worker = TrialWorker()
    try:
        result = await worker.trial("w/n", room.state_since, update, deadline_s=30.0)
    finally:
        await worker.close()
    assert result.apply_s is None


async def test_an_update_too_costly_is_refused_and_the_worker_restarts() -> None:
    """Past the deadline the worker is killed: UpdateTooCostly, then the next trial works."""
    room = DocumentRoom("w/n")
    room.apply_local_update(prepends(1001, 8000), ServerOrigin())
    worker = TrialWorker()
    try:
        with pytest.raises(UpdateTooCostly, match="COLLAB_MAX_APPLY_MS"):
            await worker.trial("w/n", room.state_since, prepends(1002, 8000), deadline_s=0.05)
        assert worker.kills == 1
        result = await worker.trial("w/n", room.state_since, prepends(3, 10), deadline_s=30.0)
    finally:
        await worker.close()
    assert result.apply_s is not None


async def test_an_invalid_update_is_refused_by_the_worker() -> None:
    """The worker reads with the same rules: an invalid update raises InvalidUpdate."""
    worker = TrialWorker()
    try:
        with pytest.raises(InvalidUpdate, match="2\\*\\*32"):
            await worker.trial(
                "w/n",
                DocumentRoom("w/n").state_since,
                bytes.fromhex("010101818080801004010174016100"),
                deadline_s=30.0,
            )
    finally:
        await worker.close()


async def test_replicas_follow_their_rooms_by_diffs() -> None:
    """A second trial in the same room sends only what changed; the replica stays in step,
    so an update that builds on the first is read as complete."""
    room = DocumentRoom("w/n")
    doc: Doc[Any] = Doc(client_id=5)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    text = doc.get("t", type=Text)
    text.insert(0, "a" * 10)
    text.insert(10, "b" * 10)
    sent: list[bytes | None] = []

    def state_since(state_vector: bytes | None) -> bytes:
        sent.append(state_vector)
        return room.state_since(state_vector)

    worker = TrialWorker()
    try:
        first = await worker.trial("w/n", state_since, updates[0], deadline_s=30.0)
        room.apply_local_update(updates[0], ServerOrigin(), shape=first.shape)
        second = await worker.trial("w/n", state_since, updates[1], deadline_s=30.0)
    finally:
        await worker.close()
    assert sent[0] is None
    assert sent[1] is not None
    assert second.apply_s is not None
