"""`EmailDigests` over the memory store and the memory mail sender (no sockets): retries with
backoff and giving up, failures of the store and of presence, and who is never emailed."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest

from collab.auth.unsubscribe import UnsubscribeSigner
from collab.errors import BusError, StoreError
from collab.rooms.email_digests import MAX_ATTEMPTS, EmailDigests
from collab.rooms.smtp import MemoryMailSender, SmtpError
from collab.settings import Secret
from collab.store.members import SeenMember
from collab.store.memory import MemoryStore
from collab.store.notifications import NewNotification
from tests.support.waiting import eventually

AT = "2026-12-06T10:00:00.000000+00:00"
DELAYS = (5.0, 10.0)


@dataclass
class World:
    store: MemoryStore
    sender: MemoryMailSender
    digests: EmailDigests
    now: list[float]
    online: set[str] = field(default_factory=set)
    presence_down: bool = False

    async def notify(self, user_id: str = "u2", title: str = "hi") -> None:
        (created,) = await self.store.create_notifications(
            [NewNotification(user_id, "w1", "message", {"title": title})]
        )
        self.digests.notification_created(created)
        await self.settled()

    async def settled(self) -> None:
        await eventually(self.digests.settled, what="digests settled")

    async def advance(self, seconds: float) -> None:
        self.now[0] += seconds
        self.digests.wake()
        await self.settled()


@pytest.fixture
async def world() -> AsyncIterator[World]:
    store = MemoryStore()
    await store.open()
    await store.record_seen([SeenMember("w1", "u2", "Bob", "editor", AT, "bob@example.com")])
    sender = MemoryMailSender()
    now = [1_000_000.0]
    holder: list[World] = []

    async def is_online(user_id: str, workspace_ids: Sequence[str]) -> bool:
        assert workspace_ids == ("w1",) or user_id != "u2"
        if holder[0].presence_down:
            raise BusError("presence is down")
        return user_id in holder[0].online

    digests = EmailDigests(
        store,
        sender,
        is_online=is_online,
        signer=UnsubscribeSigner.from_secret(Secret("s" * 40)),
        email_from="notes@example.com",
        public_url="https://notes.example.com",
        interval_s=600.0,
        instance_id="i1",
        clock=lambda: now[0],
        retry_delays_s=DELAYS,
    )
    holder.append(World(store, sender, digests, now))
    await digests.start()
    yield holder[0]
    await digests.close()
    await store.close()


async def test_a_failing_send_is_retried_with_backoff_then_given_up(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Each failed send waits for the next delay (the last repeated); after MAX_ATTEMPTS in a
    row the digest waits for the next notification, which sends everything unread."""
    world.sender.fail_with = SmtpError("the server is down")
    await world.notify(title="first")
    assert world.digests.failures == 1
    await world.advance(DELAYS[0] - 1)
    assert world.digests.failures == 1
    await world.advance(1)
    assert world.digests.failures == 2
    for attempt in range(3, MAX_ATTEMPTS + 1):
        await world.advance(DELAYS[-1])
        assert world.digests.failures == attempt
    assert "giving up after 10 attempts" in caplog.text
    await world.advance(3600)
    assert world.digests.failures == MAX_ATTEMPTS
    world.sender.fail_with = None
    await world.notify(title="second")
    (message,) = world.sender.messages
    assert message["Subject"] == "2 unread notifications in collab"


async def test_store_and_presence_failures_are_retried_like_send_failures(world: World) -> None:
    """A store that fails once, or presence that cannot be read, delays the digest to the
    next attempt; nothing is lost."""
    (created,) = await world.store.create_notifications(
        [NewNotification("u2", "w1", "message", {"title": "x"})]
    )
    world.store.fail_next = StoreError("the database hiccupped")
    world.digests.notification_created(created)
    await world.settled()
    assert (world.digests.failures, world.sender.messages) == (1, [])
    world.presence_down = True
    await world.advance(DELAYS[0])
    assert (world.digests.failures, world.sender.messages) == (2, [])
    world.presence_down = False
    await world.advance(DELAYS[1])
    assert len(world.sender.messages) == 1


async def test_users_online_without_an_address_or_opted_out_get_nothing(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """No email for a user who is online, whose address is unknown or not plain, or who
    opted out, and no digest claimed for them."""
    world.online.add("u2")
    await world.notify("u2")
    await world.notify("u9")  # not a member: no address
    await world.store.put_member("w1", "u3", role="editor", name=None, email="a<b>@x", at=AT)
    with caplog.at_level(logging.WARNING):
        await world.notify("u3")
    # An owner's address digests refuse is passed over like no address: nothing to report.
    assert "not a plain address" not in caplog.text
    await world.store.record_seen([SeenMember("w1", "u4", None, "editor", AT, "d@example.com")])
    await world.store.set_email_opt_out("u4", opted_out=True, at=AT)
    await world.notify("u4")
    assert world.sender.messages == []
    assert world.digests.failures == 0
    assert await world.store.digest_due_at("u2") == 0.0
    world.online.clear()
    await world.notify("u2")
    assert len(world.sender.messages) == 1


async def test_users_due_at_different_times_are_each_sent_to_when_due(world: World) -> None:
    """Users scheduled out of order go when each is due, one digest apiece: the earliest
    first, a later one only once the clock reaches it, and one scheduled again while its
    digest was held back by the interval goes at the end of the interval."""
    users = [f"r{number}" for number in range(12)]
    await world.store.record_seen(
        [SeenMember("w1", user, None, "editor", AT, f"{user}@example.com") for user in users]
    )
    for user in users:
        await world.notify(user)
    assert sorted(str(m["To"]) for m in world.sender.messages) == sorted(
        f"{user}@example.com" for user in users
    )
    # Each is now within its interval: a second notification waits for it to end.
    for user in reversed(users):
        await world.notify(user, title="again")
    assert len(world.sender.messages) == 12
    await world.advance(599)
    assert len(world.sender.messages) == 12
    await world.advance(1)
    assert len(world.sender.messages) == 24
    assert world.digests.settled()
