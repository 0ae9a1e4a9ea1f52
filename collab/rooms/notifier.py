"""User rooms: durable notifications, pushed live to every connection of a user.

A notification is stored first (the store assigns its id), then pushed to the user's live
connections on this instance and, through the bus room `user:{user_id}`, on every other
instance. Each connection remembers the last id it received: pushes are deduplicated by id,
and a replay ("everything after id N", after a reconnect or when the bus reports a gap)
fills any hole, so a client sees every notification exactly once.

Notes notify people too: after a local change the note's mentions and assignees are read
(at most once per `check_interval_s` per note) and each member newly mentioned or assigned
is notified once; the store's dedup key makes that once across all instances. Only active
members of the workspace's directory are notified (seen or added by an owner, not removed),
and only those the note's access lets read it (`can_read`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from pycrdt import Map

from collab.bus.base import Bus
from collab.errors import StoreError
from collab.rooms.live import DocumentChange, LiveRoom
from collab.rooms.mentions import assigned_users, mentioned_users
from collab.store.members import MemberStore
from collab.store.notifications import NewNotification, Notification, NotificationStore
from collab.tasks import cancel_and_wait

log = logging.getLogger(__name__)

REPLAY_PAGE = 200
# Beyond this many ids sent by push since the last replay, a replay moves `synced_id` up.
MAX_SENT_IDS = 10_000
MAX_CACHED_KEYS = 100_000
# Reading a note's mentions is linear in its body (about 16 ms a MB on the 2-vCPU Intel Xeon
# VM: loadtests/mention_check_cost.py, RESULTS.md): a note whose check took
# longer than this is checked again only after this many times as long, so the checks of one
# big note, edited without pause, hold the event loop at most a twentieth of the time.
SLOW_CHECK_S = 0.005
CHECK_SPACING = 20


class LiveClient(Protocol):
    """A live-channel connection, as the notifier sees it."""

    connection_id: str
    user_id: str

    def send_event(self, event: dict[str, Any]) -> None:
        """Queue one JSON event for the client; never blocks."""


@dataclass(eq=False)
class _Delivery:
    """Per-connection delivery state.

    `synced_id`: every notification of the user up to this id has been sent (a replay listed
    them; the store commits a user's notifications in id order). `sent`: ids above it sent
    since, by push. Pushes from different instances may arrive out of id order, so a set,
    not a high-water mark, decides what is a duplicate; a replay after a lost push lists
    everything above `synced_id` again and sends only what is missing.
    """

    client: LiveClient
    synced_id: int = 0
    sent: set[int] = field(default_factory=set)
    replaying: bool = False
    held: dict[int, Notification] = field(default_factory=dict)


ReadCheck = Callable[[str, str], Awaitable[bool]]
"""Whether `(room_id, user_id)`: the note's access lets the user read it. Raises `StoreError`."""


async def _everyone_reads(room_id: str, user_id: str) -> bool:
    return True


def user_room(user_id: str) -> str:
    return f"user:{user_id}"


class Notifier:
    def __init__(
        self,
        store: NotificationStore,
        members: MemberStore,
        bus: Bus,
        *,
        can_read: ReadCheck = _everyone_reads,
        check_interval_s: float = 1.0,
    ) -> None:
        self._store = store
        self._members = members
        self._can_read = can_read
        self._bus = bus
        self._check_interval_s = check_interval_s
        self._deliveries: dict[str, dict[str, _Delivery]] = {}
        # Caches of what the store already holds, insertion-ordered so that the oldest entry
        # is dropped first when one is full (`_remember`).
        self._claimed_keys: dict[str, None] = {}
        # Notes changed since the last check, with everyone who changed them since; one timer
        # checks them all, so a thousand busy notes cost one wakeup per interval.
        self._changed: dict[str, tuple[LiveRoom, set[str | None]]] = {}
        self._next_check: asyncio.TimerHandle | None = None
        # The task writing each note's notifications: one at a time per note; a later one
        # (a note checked as it unloads) waits for it.
        self._writers: dict[str, asyncio.Task[None]] = {}
        # Notes whose last check was slow: the loop time before which they wait (`SLOW_CHECK_S`).
        self._spaced: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.on_created: list[Callable[[Notification], None]] = []
        """Told of each notification created on this instance, once it is stored."""

    async def close(self) -> None:
        if self._next_check is not None:
            self._next_check.cancel()
            self._next_check = None
        self._changed.clear()
        await cancel_and_wait(self._tasks)

    # -- connections -------------------------------------------------------------------------

    async def attach(self, client: LiveClient, after_id: int) -> None:
        """Start delivering to `client`, first replaying what it missed after `after_id`.
        Raises `StoreError` if the replay cannot be read."""
        if after_id > 0:
            # An id past every stored one (a client that kept it across a restore from a
            # backup, or a made-up one) would make every push look replayed already.
            after_id = min(after_id, await self._store.last_notification_id())
        delivery = _Delivery(client, synced_id=after_id, replaying=True)
        by_connection = self._deliveries.setdefault(client.user_id, {})
        first = not by_connection
        by_connection[client.connection_id] = delivery
        if first:
            await self._bus.subscribe(
                user_room(client.user_id), self._on_bus_message, self._on_bus_resync
            )
        try:
            await self._replay(delivery)
        except StoreError:
            await self.detach(client)
            raise

    async def detach(self, client: LiveClient) -> None:
        by_connection = self._deliveries.get(client.user_id)
        if by_connection is None or by_connection.pop(client.connection_id, None) is None:
            return
        if not by_connection:
            del self._deliveries[client.user_id]
            await self._bus.unsubscribe(user_room(client.user_id))

    async def _replay(self, delivery: _Delivery) -> None:
        delivery.replaying = True
        listed_up_to = delivery.synced_id
        try:
            while True:
                page = await self._store.list_notifications(
                    delivery.client.user_id, after_id=listed_up_to, limit=REPLAY_PAGE
                )
                for notification in page:
                    self._send(delivery, notification, replayed=True)
                if page:
                    listed_up_to = page[-1].id
                if len(page) < REPLAY_PAGE:
                    break
        finally:
            delivery.replaying = False
        delivery.synced_id = max(delivery.synced_id, listed_up_to)
        delivery.sent = {i for i in delivery.sent if i > delivery.synced_id}
        for notification_id in sorted(delivery.held):
            self._send(delivery, delivery.held[notification_id])
        delivery.held.clear()
        if len(delivery.sent) > MAX_SENT_IDS:
            self._spawn(self._replay_quietly(delivery))
        unread = await self._store.unread_count(delivery.client.user_id)
        delivery.client.send_event(
            {"type": "notifications.synced", "last_id": delivery.synced_id, "unread": unread}
        )

    def _send(
        self, delivery: _Delivery, notification: Notification, replayed: bool = False
    ) -> None:
        if notification.id <= delivery.synced_id or notification.id in delivery.sent:
            return
        if delivery.replaying and not replayed:
            delivery.held[notification.id] = notification
            return
        delivery.sent.add(notification.id)
        delivery.client.send_event({"type": "notification", "notification": notification.to_json()})

    # -- creating and delivering -------------------------------------------------------------

    async def notify(self, notifications: Sequence[NewNotification]) -> list[Notification]:
        """Store and deliver. Raises `StoreError` when they cannot be stored."""
        created = await self._store.create_notifications(notifications)
        for notification in created:
            self._deliver(notification)
        return created

    async def readers_among(
        self, workspace_id: str, note_id: str, user_ids: Sequence[str], kind: str
    ) -> list[str]:
        """Those of `user_ids` who may be notified about a note: members of the workspace's
        directory (never a removed one) whom the note's access lets read it. The one place
        that decides it, for mentions, assignments and reminders; a refusal by access is
        logged at INFO. Raises `StoreError`."""
        outside = set(await self._members.non_members(workspace_id, list(user_ids)))
        readers = []
        for user_id in user_ids:
            if user_id in outside:
                continue
            if not await self._can_read(f"{workspace_id}/{note_id}", user_id):
                log.info(
                    "note %s/%s: %s of %s not notified: the note's access does not let them "
                    "read it",
                    workspace_id,
                    note_id,
                    kind,
                    user_id,
                )
                continue
            readers.append(user_id)
        return readers

    async def notify_once(
        self, dedup_key: str, notification: NewNotification
    ) -> Notification | None:
        """Store and deliver `notification` unless one with `dedup_key` was ever stored (by
        any instance); None then. Raises `StoreError` when it cannot be stored."""
        created = await self._store.create_notification_once(dedup_key, notification)
        if created is not None:
            self._deliver(created)
        return created

    def _deliver(self, notification: Notification) -> None:
        self._deliver_locally(notification)
        event = {"type": "notification", "notification": notification.to_json()}
        self._bus.publish(user_room(notification.user_id), orjson.dumps(event))
        for listener in self.on_created:
            try:
                listener(notification)
            except Exception:
                # A listener's bug must not stop the delivery to the others.
                log.exception("notification %s: a listener failed", notification.id)

    def _deliver_locally(self, notification: Notification) -> None:
        for delivery in self._deliveries.get(notification.user_id, {}).values():
            self._send(delivery, notification)

    async def mark_read(
        self,
        user_id: str,
        ids: Sequence[int] | None,
        *,
        asked_by: str | None = None,
        ref: Any = None,
    ) -> tuple[list[int], int]:
        """Mark ids (None: all) read; tell every connection of the user, the one `asked_by`
        (a connection id) with the `ref` of its request. Returns the ids that changed and
        the unread count. Raises `StoreError`."""
        if ids is None:
            changed = await self._store.mark_all_read(user_id)
        else:
            changed = await self._store.mark_read(user_id, ids)
        unread = await self._store.unread_count(user_id)
        event = {"type": "notifications.read", "ids": changed, "unread": unread}
        reply = event if ref is None else {**event, "ref": ref}
        self._send_to_user(user_id, event, asked_by, reply)
        self._bus.publish(user_room(user_id), orjson.dumps(event))
        return changed, unread

    def _send_to_user(
        self,
        user_id: str,
        event: dict[str, Any],
        asked_by: str | None = None,
        reply: dict[str, Any] | None = None,
    ) -> None:
        for connection_id, delivery in self._deliveries.get(user_id, {}).items():
            delivery.client.send_event(
                reply if reply is not None and connection_id == asked_by else event
            )

    def _on_bus_message(self, room_id: str, frame: bytes) -> None:
        user_id = room_id.removeprefix("user:")
        try:
            event = orjson.loads(frame)
            if event.get("type") == "notification":
                raw = event["notification"]
                notification = Notification(
                    id=int(raw["id"]),
                    user_id=user_id,
                    workspace_id=str(raw["workspace"]),
                    kind=str(raw["kind"]),
                    payload=dict(raw["payload"]),
                    created_at=str(raw["created_at"]),
                    read_at=raw.get("read_at"),
                )
                self._deliver_locally(notification)
            elif event.get("type") == "notifications.read":
                self._send_to_user(user_id, event)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
            log.warning("user room %s: dropped a malformed bus message: %s", room_id, error)

    def _on_bus_resync(self, room_id: str) -> None:
        """Pushes may have been lost: every local connection of the user replays."""
        for delivery in list(self._deliveries.get(room_id.removeprefix("user:"), {}).values()):
            self._spawn(self._replay_quietly(delivery))

    async def _replay_quietly(self, delivery: _Delivery) -> None:
        try:
            await self._replay(delivery)
        except StoreError as error:
            log.warning("replay for %s failed: %s", delivery.client.user_id, error)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- notes notifying people --------------------------------------------------------------

    def document_changed(self, change: DocumentChange) -> None:
        """A change of a note (a room's change listener): when it was made here, check the
        note's mentions and assignees soon (coalesced). Changes made on other instances are
        theirs to check."""
        if not change.local:
            return
        self._recheck_later(change.live, (change.actor,))

    def _check_changed_notes(self) -> None:
        self._next_check = None
        changed, self._changed = self._changed, {}
        now = time.monotonic()
        for room_id in [room for room, until in self._spaced.items() if until <= now]:
            del self._spaced[room_id]
        for room_id, (live, actors) in changed.items():
            if live.dropped:
                continue  # checked as it unloaded (`room_unloaded`)
            if room_id in self._writers or room_id in self._spaced:
                # The last check's notifications are still being written (a slow store), or
                # the last check was slow (a big note): this one waits for a later check
                # rather than piling up beside it.
                self._recheck_later(live, actors)
                continue
            self._check(live, actors)

    def room_unloaded(self, live: LiveRoom) -> None:
        """An unload listener: a note changed since its last check is checked now, whatever
        the spacing of its checks, while its document is still there."""
        entry = self._changed.get(live.room_id)
        if entry is None or entry[0] is not live:
            return
        del self._changed[live.room_id]
        self._spaced.pop(live.room_id, None)
        self._check(live, entry[1])

    def _check(self, live: LiveRoom, actors: set[str | None]) -> None:
        room_id = live.room_id
        # Who wrote a mention is known only when one user changed the note since the last
        # check; with several, it is credited to no one and nobody's is left out (the
        # mentioned user editing right after must not lose it).
        actor = next(iter(actors)) if len(actors) == 1 else None
        started = time.monotonic()
        try:
            wanted = _wanted_notifications(live, actor)
            title = _note_title(live) if wanted else None
        except Exception:
            # A bug reading one note must not stop the checks of the others.
            log.exception("note %s: mentions and assignees not checked", room_id)
            return
        finally:
            took_s = time.monotonic() - started
            if took_s > SLOW_CHECK_S:
                self._spaced[room_id] = started + took_s * CHECK_SPACING
        if wanted:
            before = self._writers.get(room_id)
            writer = asyncio.create_task(self._notify_all(room_id, actor, wanted, title, before))
            self._writers[room_id] = writer
            self._tasks.add(writer)
            writer.add_done_callback(functools.partial(self._written, room_id))

    def _written(self, room_id: str, writer: asyncio.Task[None]) -> None:
        self._tasks.discard(writer)
        if self._writers.get(room_id) is writer:
            del self._writers[room_id]

    def _recheck_later(self, live: LiveRoom, actors: Iterable[str | None]) -> None:
        """Check the note at the next check, crediting what changed to `actors` too. On the
        path of every edit: a set is made only for a note's first change in an interval."""
        entry = self._changed.get(live.room_id)
        if entry is None or entry[0] is not live:  # the room was loaded again since
            self._changed[live.room_id] = (live, set(actors))
        else:
            entry[1].update(actors)
        if self._next_check is None:
            self._next_check = asyncio.get_running_loop().call_later(
                self._check_interval_s, self._check_changed_notes
            )

    async def _notify_all(
        self,
        room_id: str,
        actor: str | None,
        wanted: list[tuple[str, str]],
        title: str | None,
        before: asyncio.Task[None] | None,
    ) -> None:
        if before is not None:
            await asyncio.wait([before])  # its own failures are its own
        workspace_id, _, note_id = room_id.partition("/")
        for kind, user_id in wanted:
            try:
                await self._notify_once(workspace_id, note_id, kind, user_id, actor, title)
            except StoreError as error:
                log.warning("note %s: %s of %s not notified: %s", room_id, kind, user_id, error)

    async def _notify_once(
        self,
        workspace_id: str,
        note_id: str,
        kind: str,
        user_id: str,
        actor: str | None,
        title: str | None,
    ) -> None:
        dedup_key = f"{kind}:{workspace_id}/{note_id}:{user_id}"
        # Every check of an edited note sees the same mentions again; once a key is known to
        # be claimed (by us or another instance), skip the two store round trips for it.
        if dedup_key in self._claimed_keys:
            return
        # Not cached as claimed when refused: given access later, the next check notifies them.
        if not await self.readers_among(workspace_id, note_id, [user_id], kind):
            return
        payload = {"note": note_id, "actor": actor, "title": title}
        created = await self._store.create_notification_once(
            dedup_key, NewNotification(user_id, workspace_id, kind, payload)
        )
        _remember(self._claimed_keys, dedup_key)
        if created is not None:
            self._deliver(created)


def _remember(cache: dict[Any, None], key: Any) -> None:
    cache[key] = None
    if len(cache) > MAX_CACHED_KEYS:
        del cache[next(iter(cache))]


def _wanted_notifications(live: LiveRoom, actor: str | None) -> list[tuple[str, str]]:
    """The (kind, user) notifications a note's content calls for, but the actor's own."""
    doc = live.room.doc
    wanted = [("mention", user) for user in sorted(mentioned_users(doc))]
    wanted += [("assignment", user) for user in sorted(assigned_users(doc))]
    return [(kind, user_id) for kind, user_id in wanted if user_id != actor]


def _note_title(live: LiveRoom) -> str | None:
    """`meta.title` if it is a string. A `meta` written as another type reads as a map of no
    entries, and an entry of any type as a value: pycrdt raises nothing on what a client
    wrote (see `collab.rooms.mentions`)."""
    doc = live.room.doc
    if "meta" not in doc.keys():
        return None
    title = doc.get("meta", type=Map).get("title")
    return title if isinstance(title, str) else None
