"""Deadline reminders on the embedded and the scaled backend, driven by an injected clock:
`due_soon` then `overdue` to the note's assignees (or its creator), among its readers and the
workspace's members, delivered live; once with two instances racing; re-armed when the due
changes, cancelled when it is removed; none for a trashed or purged note; one that fell due
while no server ran is sent when one starts; and one whose instance died sending it is not
sent twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pycrdt import Doc, Map

from collab.rooms.reminders import LEASE_S, dedup_key
from collab.store.notifications import NewNotification
from collab.store.rows import format_timestamp
from collab.web.keys import DATABASE, NOTIFIER, REMINDERS
from tests.conftest import RunningServer, StartServer, make_settings, token_for
from tests.support.live import LiveClient
from tests.support.metrics import scrape
from tests.support.rest import rest_call
from tests.support.waiting import eventually

NOTES = "/api/v1/workspaces/w1/notes"
ROLES = {"olga": "owner", "ann": "editor", "ben": "editor", "vic": "viewer", "eve": "editor"}
DUE = "2031-03-03"
DAY_BEFORE = datetime(2031, 3, 2, tzinfo=UTC)
DUE_AT = datetime(2031, 3, 3, tzinfo=UTC)


class FakeClock:
    """The reminders' clock: still until a test moves it, then every instance is woken."""

    def __init__(self) -> None:
        self.now = datetime(2031, 3, 1, 9, 0, tzinfo=UTC)
        self.servers: list[RunningServer] = []

    def __call__(self) -> datetime:
        return self.now

    def move_to(self, moment: datetime) -> None:
        self.now = moment
        for server in self.servers:
            server.app[REMINDERS].wake()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def start(start_server: StartServer, clock: FakeClock) -> StartServer:
    """Start an instance of this test's deployment on the fake clock."""

    async def started(**settings: Any) -> RunningServer:
        server = await start_server(make_settings(catalog_interval_ms=20, **settings), clock=clock)
        clock.servers.append(server)
        return server

    return started


@pytest.fixture
async def server(start: StartServer) -> RunningServer:
    server = await start()
    for user in ROLES:  # every user a member of the directory
        assert (await call(server, user, "GET", "/api/v1/notifications"))[0] == 200
    return server


def token(server: RunningServer, user: str) -> str:
    return token_for(server.settings, user, {"w1": ROLES[user]})


async def call(
    server: RunningServer, user: str, method: str, path: str, **kw: Any
) -> tuple[int, Any]:
    return await rest_call(server.http, token(server, user), method, path, **kw)


async def create(server: RunningServer, user: str, note_id: str, **fields: Any) -> None:
    status, body = await call(
        server, user, "POST", NOTES, json={"id": note_id, "title": note_id.title(), **fields}
    )
    assert status == 201, body


async def armed(server: RunningServer, note_id: str, *kinds: str, due: str = DUE) -> None:
    """Wait until the note's pending reminders are `kinds`, armed for `due`."""

    async def pending() -> bool:
        reminders = await server.app[DATABASE].pending_reminders(f"w1/{note_id}")
        return [(r.kind, r.due) for r in reminders] == [(kind, due) for kind in kinds]

    await eventually(pending, what=f"the reminders of {note_id} armed: {kinds} for {due}")


async def reminders_of(server: RunningServer, user: str) -> list[tuple[str, str, str]]:
    """The user's stored reminders, (kind, note, due), sorted (those of one moment may be
    sent in any order)."""
    stored = await server.app[DATABASE].list_notifications(user, limit=500)
    return sorted(
        (n.kind, n.payload["note"], n.payload["due"])
        for n in stored
        if n.kind in ("due_soon", "overdue")
    )


def is_reminder(event: dict[str, Any]) -> bool:
    return event["notification"]["kind"] in ("due_soon", "overdue")


async def received(server: RunningServer, user: str, *expected: tuple[str, str, str]) -> None:
    """Wait until the user's stored reminders are exactly `expected` (any order)."""

    async def stored() -> bool:
        return await reminders_of(server, user) == sorted(expected)

    await eventually(stored, what=f"{user}'s reminders: {expected}")


async def set_due(server: RunningServer, note_id: str, due: str | None) -> None:
    """An editor's edit of the note's `meta.due` (None: removed)."""
    path = f"/api/v1/docs/w1/{note_id}"
    status, state = await call(
        server, "ann", "GET", path, headers={"Accept": "application/octet-stream"}
    )
    assert status == 200
    doc: Doc[Any] = Doc()
    doc.apply_update(state)
    before = doc.get_state()
    meta = doc.get("meta", type=Map)
    if due is None:
        del meta["due"]
    else:
        meta["due"] = due
    status, body = await call(server, "ann", "POST", f"{path}/updates", data=doc.get_update(before))
    assert status == 200, body


async def test_due_soon_then_overdue_reach_the_assignees_live(
    server: RunningServer, clock: FakeClock
) -> None:
    """Assignees get `due_soon` a day before a date's 00:00 UTC and `overdue` at it, each
    pushed on their live connections with the note, its title and due; nobody else."""
    async with (
        LiveClient.connect(server.ws, token(server, "ann")) as ann,
        LiveClient.connect(server.ws, token(server, "olga")) as olga,
    ):
        await create(server, "olga", "plan", due=DUE, assignees=["ann", "ben"])
        await armed(server, "plan", "due_soon", "overdue")
        assert await reminders_of(server, "ann") == []

        clock.move_to(DAY_BEFORE)
        event = await ann.wait_event(
            "notification", lambda e: e["notification"]["kind"] == "due_soon"
        )
        assert event["notification"]["payload"] == {"note": "plan", "title": "Plan", "due": DUE}
        assert event["notification"]["workspace"] == "w1"
        await received(server, "ben", ("due_soon", "plan", DUE))

        clock.move_to(DUE_AT)
        await ann.wait_event("notification", lambda e: e["notification"]["kind"] == "overdue")
        await received(server, "ann", ("due_soon", "plan", DUE), ("overdue", "plan", DUE))
        await received(server, "ben", ("due_soon", "plan", DUE), ("overdue", "plan", DUE))
        await armed(server, "plan")
        assert not olga.of_type("notification")
    assert await reminders_of(server, "olga") == []
    metrics = await scrape(server)
    assert "collab_reminders_sent_total 4.0" in metrics
    assert "collab_reminder_failures_total 0.0" in metrics


async def test_a_note_without_assignees_reminds_its_creator(
    server: RunningServer, clock: FakeClock
) -> None:
    """The creator of a note nobody is assigned to is reminded; a due already reached when
    it is set sends `overdue` at once, and no `due_soon`."""
    await create(server, "ann", "mine", due=DUE)
    await create(server, "ben", "late", due="2031-02-28T17:30:00Z")

    await received(server, "ben", ("overdue", "late", "2031-02-28T17:30:00+00:00"))
    clock.move_to(DAY_BEFORE)
    await received(server, "ann", ("due_soon", "mine", DUE))
    clock.move_to(DUE_AT)
    await received(server, "ann", ("due_soon", "mine", DUE), ("overdue", "mine", DUE))
    assert await reminders_of(server, "olga") == []


async def test_only_assignees_who_may_read_the_note_and_are_members_are_reminded(
    server: RunningServer, clock: FakeClock
) -> None:
    """A private note reminds the assignees its access lets read it; an assignee it does
    not let read it, and one removed from the directory, get nothing."""
    await create(server, "ann", "secret", due=DUE, assignees=["ben", "vic", "eve"])
    status, body = await call(
        server,
        "ann",
        "PUT",
        f"{NOTES}/secret/access",
        json={"visibility": "private", "users": {"ben": "viewer", "eve": "editor"}},
    )
    assert status == 200, body
    status, _ = await call(server, "olga", "DELETE", "/api/v1/workspaces/w1/members/eve")
    assert status == 200
    await armed(server, "secret", "due_soon", "overdue")

    clock.move_to(DAY_BEFORE)
    await received(server, "ben", ("due_soon", "secret", DUE))
    clock.move_to(DUE_AT)

    await received(server, "ben", ("due_soon", "secret", DUE), ("overdue", "secret", DUE))
    await armed(server, "secret")
    for user in ("ann", "vic", "eve"):
        assert await reminders_of(server, user) == []


async def test_two_instances_racing_send_each_reminder_once(
    start: StartServer, clock: FakeClock
) -> None:
    """Two instances woken at the same moments send every reminder of many notes once: each
    user gets one `due_soon` and one `overdue` per note, live on the other instance too."""
    a = await start()
    b = await start()
    for user in ("ann", "ben"):
        assert (await call(b, user, "GET", "/api/v1/notifications"))[0] == 200
    notes = [f"race{n}" for n in range(8)]
    async with LiveClient.connect(b.ws, token(b, "ann")) as ann:
        for note_id in notes:
            await create(a, "olga", note_id, due=DUE, assignees=["ann", "ben"])
        for note_id in notes:
            await armed(a, note_id, "due_soon", "overdue")

        due_soon = [("due_soon", note_id, DUE) for note_id in notes]
        clock.move_to(DAY_BEFORE)
        for user in ("ann", "ben"):
            await received(a, user, *due_soon)
        clock.move_to(DUE_AT)

        expected = due_soon + [("overdue", note_id, DUE) for note_id in notes]
        for user in ("ann", "ben"):
            await received(a, user, *expected)
        await ann.wait_for(
            lambda c: len([e for e in c.of_type("notification") if is_reminder(e)]) == 16
        )
        for note_id in notes:
            await armed(a, note_id)
    for user in ("ann", "ben"):
        assert await reminders_of(b, user) == sorted(expected)


async def test_a_changed_due_rearms_and_a_removed_due_cancels(
    server: RunningServer, clock: FakeClock
) -> None:
    """A due moved later replaces the pending reminders (none for the old due is sent); a
    due removed cancels them."""
    await create(server, "olga", "moved", due=DUE, assignees=["ann"])
    await create(server, "olga", "dropped", due="2031-03-05", assignees=["ann"])
    await create(server, "olga", "marker", due="2031-03-05", assignees=["ann"])
    await armed(server, "moved", "due_soon", "overdue")

    await set_due(server, "moved", "2031-03-05")
    await set_due(server, "dropped", None)

    await armed(server, "moved", "due_soon", "overdue", due="2031-03-05")
    await armed(server, "dropped")
    assert await server.app[DATABASE].armed_due("w1/dropped") is None
    clock.move_to(DUE_AT)
    clock.move_to(datetime(2031, 3, 4, tzinfo=UTC))
    await received(server, "ann", *[("due_soon", n, "2031-03-05") for n in ("marker", "moved")])
    clock.move_to(datetime(2031, 3, 5, tzinfo=UTC))

    await received(
        server,
        "ann",
        *[(kind, n, "2031-03-05") for kind in ("due_soon", "overdue") for n in ("marker", "moved")],
    )


async def test_trashed_and_purged_notes_send_nothing(
    server: RunningServer, clock: FakeClock
) -> None:
    """A note in the trash when its reminder falls due, or purged before, reminds nobody;
    restored afterwards, it does not send the reminder it missed."""
    for note_id in ("binned", "gone", "kept"):
        await create(server, "olga", note_id, due=DUE, assignees=["ann"])
        await armed(server, note_id, "due_soon", "overdue")
    assert (await call(server, "olga", "DELETE", f"{NOTES}/binned"))[0] == 200
    purged = await call(server, "olga", "DELETE", f"{NOTES}/gone", params={"purge": "true"})
    assert purged[0] == 204

    clock.move_to(DAY_BEFORE)
    await received(server, "ann", ("due_soon", "kept", DUE))
    await armed(server, "binned", "overdue")
    await armed(server, "gone")
    assert (await call(server, "olga", "POST", f"{NOTES}/binned/restore"))[0] == 200
    clock.move_to(DUE_AT)

    await received(
        server,
        "ann",
        ("due_soon", "kept", DUE),
        ("overdue", "binned", DUE),
        ("overdue", "kept", DUE),
    )


async def test_a_reminder_due_while_no_server_ran_is_sent_at_start(
    start: StartServer, clock: FakeClock
) -> None:
    """Reminders are kept in the database: one that fell due while the only instance was
    stopped is sent by the next one, at its start."""
    first = await start()
    assert (await call(first, "ann", "GET", "/api/v1/notifications"))[0] == 200
    await create(first, "ann", "offline", due=DUE)
    await armed(first, "offline", "due_soon", "overdue")
    await first.close()
    clock.servers.remove(first)

    clock.now = DUE_AT
    second = await start()

    # Its due_soon fell due too, but with the due reached only `overdue` is sent.
    await received(second, "ann", ("overdue", "offline", DUE))
    await armed(second, "offline")


async def test_a_due_indexed_but_never_armed_is_reminded_at_the_next_start(
    start: StartServer, clock: FakeClock
) -> None:
    """The instance that indexed a note's due died before arming it (the arming follows the
    entry's write): the next start arms it, and its reminder, already due, goes out."""
    first = await start()
    assert (await call(first, "ann", "GET", "/api/v1/notifications"))[0] == 200
    await create(first, "ann", "lost", due=DUE)
    await armed(first, "lost", "due_soon", "overdue")
    # What such a death leaves: the entry with its due, and nothing armed for it.
    await first.app[DATABASE].arm_reminders("w1/lost", None, [])
    await first.close()
    clock.servers.remove(first)

    clock.now = DUE_AT + timedelta(hours=1)
    second = await start()

    await received(second, "ann", ("overdue", "lost", DUE))


async def test_a_reminder_whose_instance_died_sending_it_is_not_sent_twice(
    server: RunningServer, clock: FakeClock
) -> None:
    """An instance claimed a reminder and notified, then died before deleting it: once its
    lease ended the reminder is claimed again, and the notification's key keeps it from
    being sent twice."""
    await create(server, "olga", "crash", due=DUE, assignees=["ann"])
    await armed(server, "crash", "due_soon", "overdue")
    database = server.app[DATABASE]
    [claimed] = await database.claim_reminders(
        now=format_timestamp(DAY_BEFORE),
        lease_until=format_timestamp(DAY_BEFORE + timedelta(seconds=LEASE_S)),
        limit=1,
    )
    payload = {"note": "crash", "title": "Crash", "due": DUE}
    await server.app[NOTIFIER].notify_once(
        dedup_key(claimed, "ann"), NewNotification("ann", "w1", "due_soon", payload)
    )

    clock.move_to(DAY_BEFORE + timedelta(seconds=LEASE_S))

    await armed(server, "crash", "overdue")
    assert await reminders_of(server, "ann") == [("due_soon", "crash", DUE)]
