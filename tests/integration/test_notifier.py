"""The notifier's delivery rules, with the memory store and bus (no sockets)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from collab.bus.memory import MemoryBus
from collab.rooms import notifier as notifier_module
from collab.rooms.manager import LiveRoom, RoomLimits, RoomManager
from collab.rooms.notifier import CHECK_SPACING, Notifier, user_room
from collab.store.members import SeenMember
from collab.store.memory import MemoryStore
from collab.store.notifications import NewNotification, Notification
from collab.store.rows import format_timestamp
from tests.support.waiting import eventually


class FakeClient:
    def __init__(self, user_id: str, connection_id: str = "c1") -> None:
        self.user_id = user_id
        self.connection_id = connection_id
        self.events: list[dict[str, Any]] = []

    def send_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def ids(self) -> list[int]:
        return [e["notification"]["id"] for e in self.events if e["type"] == "notification"]


async def _setup() -> tuple[MemoryStore, Notifier, FakeClient]:
    store = MemoryStore()
    await store.open()
    bus = MemoryBus()
    await bus.start()
    notifier = Notifier(store, store, bus)
    client = FakeClient("u2")
    await notifier.attach(client, 0)
    return store, notifier, client


async def _stored(store: MemoryStore, count: int) -> list[Notification]:
    return await store.create_notifications(
        [NewNotification("u2", "w1", "message", {"n": i}) for i in range(count)]
    )


def _push(notifier: Notifier, notification: Notification) -> None:
    import orjson

    frame = orjson.dumps({"type": "notification", "notification": notification.to_json()})
    notifier._on_bus_message(user_room("u2"), frame)


async def test_pushes_arriving_out_of_order_are_all_delivered_once() -> None:
    """Two instances' pushes may cross: both are delivered, neither twice."""
    store, notifier, client = await _setup()
    first, second = await _stored(store, 2)
    _push(notifier, second)
    _push(notifier, first)
    _push(notifier, second)
    assert client.ids() == [second.id, first.id]


async def test_a_lost_push_is_recovered_by_the_resync_replay_without_duplicates() -> None:
    """When the bus reports lost messages, a replay sends exactly what the connection lacks."""
    store, notifier, client = await _setup()
    lost, pushed = await _stored(store, 2)
    _push(notifier, pushed)
    notifier._on_bus_resync(user_room("u2"))
    await eventually(
        lambda: client.events[-1]["type"] == "notifications.synced" and len(client.ids()) == 2,
        what="replayed",
    )
    await notifier.close()
    assert sorted(client.ids()) == [lost.id, pushed.id]
    assert len(client.ids()) == 2
    assert client.events[-1]["type"] == "notifications.synced"
    assert client.events[-1]["last_id"] == pushed.id


async def test_mentions_are_checked_for_changes_made_here_only() -> None:
    """A note changed on this instance is checked for mentions and its member notified; the
    same note changed on another instance (told here as a change not made here) is that
    instance's to check: nothing is notified from here."""
    from pycrdt import Doc, XmlElement, XmlFragment, XmlText

    from collab.rooms.document import DocumentRoom
    from collab.rooms.live import DocumentChange, LiveRoom

    store = MemoryStore()
    await store.open()
    bus = MemoryBus()
    await bus.start()
    notifier = Notifier(store, store, bus, check_interval_s=0.01)
    await store.record_seen(
        [
            SeenMember("w1", "u2", "U2", "editor", format_timestamp()),
            SeenMember("w1", "u3", "U3", "editor", format_timestamp()),
        ]
    )
    client = FakeClient("u2")
    await notifier.attach(client, 0)
    other = FakeClient("u3")
    await notifier.attach(other, 0)

    def note_mentioning(user: str, note_id: str) -> LiveRoom:
        doc: Doc[Any] = Doc()
        doc.get("body", type=XmlFragment).children.append(
            XmlElement("paragraph", {}, [XmlText(f"hi @{user}")])
        )
        room = DocumentRoom(f"w1/{note_id}")
        room.doc.apply_update(doc.get_update())
        return LiveRoom(room)

    notifier.document_changed(DocumentChange(note_mentioning("u3", "n2"), "u1", local=False))
    assert notifier._changed == {}  # nothing to check: no timer, no store round trip
    assert notifier._next_check is None
    notifier.document_changed(DocumentChange(note_mentioning("u2", "n1"), "u1", local=True))

    await eventually(lambda: client.ids() != [], what="the local change's mention notified")
    notified = [e["notification"] for e in client.events if e["type"] == "notification"]
    assert [(n["kind"], n["payload"]["note"]) for n in notified] == [("mention", "n1")]
    await notifier.close()
    assert await store.list_notifications("u3", after_id=0, limit=10) == []


async def _notes() -> tuple[MemoryStore, Notifier, RoomManager]:
    """A notifier checking the notes of a room manager, as the app wires them; u1, u2 and u3
    are members of w1."""
    store = MemoryStore()
    await store.open()
    bus = MemoryBus()
    await bus.start()
    notifier = Notifier(store, store, bus, check_interval_s=0.01)
    rooms = RoomManager(
        store,
        bus,
        RoomLimits(flush_interval_s=0.01),
        listeners=[notifier.document_changed],
        unload_listeners=[notifier.room_unloaded],
    )
    await rooms.start()
    await store.record_seen(
        [
            SeenMember("w1", user_id, None, "editor", format_timestamp())
            for user_id in ("u1", "u2", "u3")
        ]
    )
    return store, notifier, rooms


async def _written_by_u1(rooms: RoomManager, write: Callable[[Doc[Any]], object]) -> LiveRoom:
    live = await rooms.acquire("w1/plan")
    author: Doc[Any] = Doc()
    write(author)
    await rooms.apply_server_update(live, author.get_update(), actor="u1")
    return live


async def _notified(store: MemoryStore, user_id: str) -> list[tuple[str, Any]]:
    return [(n.kind, n.payload["title"]) for n in await store.list_notifications(user_id)]


async def _has_notifications(store: MemoryStore, user_id: str) -> bool:
    return bool(await store.list_notifications(user_id))


async def _close(notifier: Notifier, rooms: RoomManager, live: LiveRoom) -> None:
    await notifier.close()
    rooms.release(live)
    await rooms.close()


def _mentioning_u2(doc: Doc[Any]) -> None:
    doc["body"] = XmlFragment([XmlElement("p", contents=[XmlText("ask @u2")])])


async def test_xml_among_the_assignees_does_not_stop_the_checks_of_a_note(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """XML a client put among a note's assignees (on which pycrdt's `to_py` raises) is
    ignored: the note's mentions and its other assignees are notified, nothing is logged."""
    store, notifier, rooms = await _notes()

    def write(doc: Doc[Any]) -> None:
        _mentioning_u2(doc)
        assignees = Array([XmlFragment([XmlElement("p")]), "u3"])
        doc["meta"] = Map({"title": "Plan", "assignees": assignees})

    with caplog.at_level(logging.WARNING):
        live = await _written_by_u1(rooms, write)
        await eventually(lambda: _notified(store, "u3"), what="u3 notified of the assignment")
        await _close(notifier, rooms, live)
    assert await _notified(store, "u2") == [("mention", "Plan")]
    assert await _notified(store, "u3") == [("assignment", "Plan")]
    assert caplog.records == []


async def test_a_meta_written_as_another_type_has_no_title_and_no_assignees(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A note whose `meta` a client wrote as a text reads as a map of no entries (pycrdt
    raises nothing): its mentions are notified, without a title, and nothing is logged."""
    store, notifier, rooms = await _notes()

    def write(doc: Doc[Any]) -> None:
        _mentioning_u2(doc)
        doc["meta"] = Text("u3")

    with caplog.at_level(logging.WARNING):
        live = await _written_by_u1(rooms, write)
        await eventually(lambda: _has_notifications(store, "u2"), what="u2 notified")
        await _close(notifier, rooms, live)
    assert await _notified(store, "u2") == [("mention", None)]
    assert await _notified(store, "u3") == []
    assert caplog.records == []


async def _edited_together(rooms: RoomManager, body_by_u1: str) -> LiveRoom:
    """u1 writes `body_by_u1` and u2 gives the note a title, within one check interval."""
    live = await rooms.acquire("w1/plan")
    author: Doc[Any] = Doc()
    author["body"] = XmlFragment([XmlElement("p", contents=[XmlText(body_by_u1)])])
    await rooms.apply_server_update(live, author.get_update(), actor="u1")
    titler: Doc[Any] = Doc()
    titler.apply_update(live.room.encode_state())
    before = titler.get_state()
    titler.get("meta", type=Map)["title"] = "Plan"
    await rooms.apply_server_update(live, titler.get_update(before), actor="u2")
    return live


async def test_a_mention_is_not_credited_to_whoever_edited_the_note_after_its_writer() -> None:
    """Who wrote a mention is known only when one user changed the note since the last
    check: with two, the mention names no actor, never the wrong one."""
    store, notifier, rooms = await _notes()
    live = await _edited_together(rooms, "ask @u3")
    await eventually(lambda: _has_notifications(store, "u3"), what="u3 notified")
    await _close(notifier, rooms, live)
    (mention,) = await store.list_notifications("u3")
    assert mention.kind == "mention"
    assert mention.payload["actor"] is None


async def test_a_mentioned_user_editing_right_after_the_mention_is_still_notified() -> None:
    """u1 mentions u2, and u2 edits the note before the check: u2 is notified all the same
    (only a note changed by its mentioned user alone is that user's own mention)."""
    store, notifier, rooms = await _notes()
    live = await _edited_together(rooms, "ask @u2")
    await eventually(lambda: _has_notifications(store, "u2"), what="u2 notified")
    await _close(notifier, rooms, live)
    assert await _notified(store, "u2") == [("mention", "Plan")]


def counting_checks(notifier: Notifier) -> Callable[[], int]:
    """Count the notifier's checks of changed notes from now on; returns the count's reader."""
    count = 0
    check = notifier._check_changed_notes

    def counted_check() -> None:
        nonlocal count
        count += 1
        check()

    notifier._check_changed_notes = counted_check  # type: ignore[method-assign]
    return lambda: count


async def test_a_note_whose_notifications_are_still_being_written_is_checked_after() -> None:
    """While a check's notifications wait for a slow store, later checks of the same note do
    not start more writers beside it; the note is checked again once they are done."""
    store, notifier, rooms = await _notes()
    gate = asyncio.Event()
    writes_waiting = 0
    create_once = store.create_notification_once

    async def slow_create_once(key: str, new: NewNotification) -> Notification | None:
        nonlocal writes_waiting
        writes_waiting += 1
        await gate.wait()
        return await create_once(key, new)

    store.create_notification_once = slow_create_once  # type: ignore[method-assign]
    live = await _written_by_u1(rooms, _mentioning_u2)
    await eventually(lambda: writes_waiting == 1, what="the first write waiting")
    author: Doc[Any] = Doc()
    author.apply_update(live.room.encode_state())
    before = author.get_state()
    author.get("body", type=XmlFragment).children.append(
        XmlElement("p", contents=[XmlText("and @u3")])
    )
    checks = counting_checks(notifier)
    await rooms.apply_server_update(live, author.get_update(before), actor="u1")
    await eventually(lambda: checks() >= 2, what="two checks since the second edit")
    assert writes_waiting == 1
    assert "w1/plan" in notifier._changed
    gate.set()
    await eventually(lambda: _has_notifications(store, "u3"), what="u3 notified after")
    await _close(notifier, rooms, live)
    assert await _notified(store, "u2") == [("mention", None)]


class FakeMonotonic:
    """`time.monotonic` for the notifier, moved by hand; reading a note takes `read_s`."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def _mention(live: LiveRoom, user: str) -> bytes:
    author: Doc[Any] = Doc()
    author.apply_update(live.room.encode_state())
    before = author.get_state()
    author.get("body", type=XmlFragment).children.append(
        XmlElement("p", contents=[XmlText(f"and @{user}")])
    )
    return author.get_update(before)


async def test_a_note_whose_check_was_slow_is_checked_again_only_after_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reading a big note's mentions is linear in its body: after a check that took 1 s the
    note is checked again only 20 s later (CHECK_SPACING), not at every change, and its
    mentions are notified then; and a note still waiting is checked when it unloads."""
    clock = FakeMonotonic()
    monkeypatch.setattr(notifier_module, "time", clock)
    reads = 0
    wanted = notifier_module._wanted_notifications

    def slow_read(live: LiveRoom, actor: str | None) -> list[tuple[str, str]]:
        nonlocal reads
        reads += 1
        clock.now += 1.0
        return wanted(live, actor)

    monkeypatch.setattr(notifier_module, "_wanted_notifications", slow_read)
    store, notifier, rooms = await _notes()
    live = await _written_by_u1(rooms, _mentioning_u2)
    await eventually(lambda: _has_notifications(store, "u2"), what="the first check")
    assert reads == 1
    checks = counting_checks(notifier)
    await rooms.apply_server_update(live, _mention(live, "u3"), actor="u1")
    await eventually(lambda: checks() >= 3, what="three checks since the change")
    assert reads == 1  # each found the note spaced
    assert not await _has_notifications(store, "u3")
    clock.now += CHECK_SPACING
    await eventually(lambda: _has_notifications(store, "u3"), what="checked after the spacing")
    assert reads == 2

    await rooms.apply_server_update(live, _mention(live, "u1x"), actor="u2")
    await rooms.apply_server_update(live, _mention(live, "u3"), actor="u2")
    await store.record_seen([SeenMember("w1", "u1x", None, "editor", format_timestamp())])
    rooms.release(live)
    await rooms.close()  # unloads the room: its pending check runs then
    assert reads == 3
    await eventually(lambda: _has_notifications(store, "u1x"), what="checked as it unloaded")
    await notifier.close()


async def test_a_note_unloading_while_its_notifications_are_written_waits_for_the_writer() -> None:
    """A note is checked as it unloads, even while its last check's notifications are still
    being written (a slow store): the new ones are written after those, never beside them."""
    store, notifier, rooms = await _notes()
    gate = asyncio.Event()
    writing = most_writing = 0
    create_once = store.create_notification_once

    async def slow_create_once(key: str, new: NewNotification) -> Notification | None:
        nonlocal writing, most_writing
        writing += 1
        most_writing = max(most_writing, writing)
        try:
            await gate.wait()
            return await create_once(key, new)
        finally:
            writing -= 1

    store.create_notification_once = slow_create_once  # type: ignore[method-assign]
    live = await _written_by_u1(rooms, _mentioning_u2)
    await eventually(lambda: writing == 1, what="the first write waiting")
    await rooms.apply_server_update(live, _mention(live, "u3"), actor="u1")
    rooms.release(live)
    closing = asyncio.create_task(rooms.close())  # unloads the room: it is checked then
    await eventually(lambda: live.dropped, what="the room unloaded")
    for _ in range(50):  # what a second writer beside the first needs to reach the store
        await asyncio.sleep(0)
    gate.set()
    await closing
    await eventually(lambda: _has_notifications(store, "u3"), what="u3 notified after")
    await notifier.close()
    assert most_writing == 1
