"""One contract suite for every `NotificationStore` backend, plus what is specific to Postgres."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from collab.errors import StoreError
from collab.store import Database, MemoryStore, PostgresStore
from collab.store.notifications import MAX_PAGE, NewNotification, Notification
from tests.support.postgres_fixtures import gate_held, hold_trigger, open_stores, sessions_waiting
from tests.support.store_backends import Backend
from tests.support.waiting import eventually, scaled

WORKSPACE = "w1"
USER = "u1"
OTHER_USER = "u2"


def new(user_id: str = USER, kind: str = "message", **payload: Any) -> NewNotification:
    return NewNotification(user_id, WORKSPACE, kind, payload or {"title": kind})


def ids_of(notifications: list[Notification]) -> list[int]:
    return [notification.id for notification in notifications]


# --- creating and listing -----------------------------------------------------------------


async def test_created_notifications_come_back_in_input_order_with_ascending_ids(
    store: Database,
) -> None:
    """A batch for several users returns each one as given, unread, with ids ascending."""
    batch = [new(USER, "message"), new(OTHER_USER, "mention"), new(USER, "assignment")]

    created = await store.create_notifications(batch)

    assert [(n.user_id, n.workspace_id, n.kind, n.payload) for n in created] == [
        (b.user_id, b.workspace_id, b.kind, b.payload) for b in batch
    ]
    assert ids_of(created) == sorted(set(ids_of(created)))
    assert all(n.read_at is None for n in created)
    assert await store.list_notifications(USER) == [created[0], created[2]]
    assert await store.list_notifications(OTHER_USER) == [created[1]]


async def test_later_batches_get_larger_ids(store: Database) -> None:
    """Ids keep increasing from one call to the next, whichever method creates them."""
    first = await store.create_notifications([new(), new(OTHER_USER)])
    once = await store.create_notification_once("k", new())
    last = await store.create_notifications([new(OTHER_USER)])

    assert once is not None
    assert ids_of([*first, once, *last]) == sorted(set(ids_of([*first, once, *last])))


async def test_the_last_id_is_the_largest_of_any_user(store: Database) -> None:
    """What a live connection's `after` is capped at: no stored notification has more."""
    assert await store.last_notification_id() == 0
    first = await store.create_notifications([new(), new(OTHER_USER)])
    assert await store.last_notification_id() == max(ids_of(first))
    once = await store.create_notification_once("k", new(OTHER_USER))
    assert once is not None
    assert await store.last_notification_id() == once.id


async def test_empty_batch_creates_nothing(store: Database) -> None:
    """Creating an empty batch returns an empty list and stores nothing."""
    assert await store.create_notifications([]) == []
    assert await store.list_notifications(USER) == []


async def test_created_at_is_iso_utc_with_microseconds(store: Database) -> None:
    """Timestamps read `YYYY-MM-DDTHH:MM:SS.ffffff+00:00`, the same on create and list."""
    [created] = await store.create_notifications([new()])
    [listed] = await store.list_notifications(USER)

    assert listed.created_at == created.created_at
    assert len(created.created_at) == len("2024-05-01T12:00:00.000000+00:00")
    assert created.created_at[10] == "T"
    assert created.created_at.endswith("+00:00")


async def test_list_returns_only_ids_after_the_given_one(store: Database) -> None:
    """`after_id` is exclusive; the page stays ascending and holds only the user's own."""
    created = await store.create_notifications([new(), new(OTHER_USER), new(), new()])
    own = [created[0], created[2], created[3]]

    assert await store.list_notifications(USER, after_id=own[0].id) == own[1:]
    assert await store.list_notifications(USER, after_id=own[-1].id) == []
    assert await store.list_notifications(USER, after_id=0) == own


@pytest.mark.parametrize("after_id", [-5, 2**63 - 1, 2**70])
async def test_any_integer_after_id_is_a_valid_position(store: Database, after_id: int) -> None:
    """A negative `after_id` lists from the start; one beyond every id lists nothing."""
    created = await store.create_notifications([new()])

    listed = await store.list_notifications(USER, after_id=after_id)

    assert listed == (created if after_id < 0 else [])


async def test_limit_bounds_the_page_and_is_capped_at_max_page(store: Database) -> None:
    """At most `limit` notifications come back, and never more than `MAX_PAGE`."""
    created = await store.create_notifications([new(title=str(n)) for n in range(MAX_PAGE + 1)])

    assert await store.list_notifications(USER, limit=2) == created[:2]
    assert await store.list_notifications(USER, limit=MAX_PAGE + 50) == created[:MAX_PAGE]
    rest = await store.list_notifications(USER, after_id=created[MAX_PAGE - 1].id)
    assert rest == created[MAX_PAGE:]


@pytest.mark.parametrize("limit", [0, -1])
async def test_non_positive_limit_raises_value_error_even_on_a_closed_store(
    store: Database, limit: int
) -> None:
    """A limit below 1 raises `ValueError` before the store is consulted."""
    await store.close()

    with pytest.raises(ValueError, match="at least 1"):
        await store.list_notifications(USER, limit=limit)


async def test_unread_only_skips_read_notifications(store: Database) -> None:
    """`unread_only` lists the unread ones, still ascending and still after `after_id`."""
    created = await store.create_notifications([new(), new(), new(), new()])
    await store.mark_read(USER, [created[1].id])

    unread = await store.list_notifications(USER, unread_only=True)
    after_first = await store.list_notifications(USER, after_id=created[0].id, unread_only=True)

    assert ids_of(unread) == ids_of([created[0], created[2], created[3]])
    assert ids_of(after_first) == ids_of(created[2:])


# --- payloads -----------------------------------------------------------------------------


async def test_payload_round_trips_unicode_nesting_and_nul(store: Database) -> None:
    """A JSON payload with any Unicode, nesting and U+0000 reads back equal."""
    payload = {
        "title": "Grüße, 你好, שלום 🎉",
        "body": 'line\nbreak, "quotes", back\\slash, nul\x00here',
        "nested": {"list": [1, 2.5, None, True, "ç"], "ключ": {"deep": []}},
        "big": 2**62,
    }

    [created] = await store.create_notifications([NewNotification(USER, WORKSPACE, "x", payload)])
    [listed] = await store.list_notifications(USER)

    assert created.payload == payload
    assert listed.payload == payload


async def test_returned_payloads_are_copies(store: Database) -> None:
    """Changing a returned payload changes neither the stored one nor the caller's input."""
    payload = {"tags": ["a"]}
    [created] = await store.create_notifications([NewNotification(USER, WORKSPACE, "x", payload)])
    created.payload["tags"].append("changed")

    [listed] = await store.list_notifications(USER)

    assert listed.payload == {"tags": ["a"]}
    assert payload == {"tags": ["a"]}


@pytest.mark.parametrize(
    "payload",
    [["not", "a", "mapping"], "text", {"set": {1, 2}}, {1: "non-string key"}, {"x": object()}],
)
async def test_payload_that_is_not_a_json_object_raises_type_error_and_stores_nothing(
    store: Database, payload: Any
) -> None:
    """A payload that is not a mapping serializing to a JSON object raises `TypeError`."""
    bad = NewNotification(USER, WORKSPACE, "x", payload)

    with pytest.raises(TypeError, match="payload"):
        await store.create_notifications([new(), bad])
    with pytest.raises(TypeError, match="payload"):
        await store.create_notification_once("key", bad)

    assert await store.list_notifications(USER) == []
    assert await store.create_notification_once("key", new()) is not None


# --- once only ----------------------------------------------------------------------------


async def test_a_dedup_key_creates_one_notification_ever(store: Database) -> None:
    """The first call with a key stores and returns it; later calls return None."""
    first = await store.create_notification_once("mention:w1/n1:u1", new(kind="mention"))
    again = await store.create_notification_once("mention:w1/n1:u1", new(kind="mention"))
    other = await store.create_notification_once("mention:w1/n2:u1", new(kind="mention"))

    assert first is not None
    assert again is None
    assert other is not None
    assert await store.list_notifications(USER) == [first, other]


async def test_concurrent_callers_with_one_key_create_exactly_one(backend: Backend) -> None:
    """Of many concurrent callers with one key, over two instances, exactly one creates it."""
    first = await backend.new_store()
    second = await backend.another_store(first)

    results = await asyncio.gather(
        *(
            store.create_notification_once("assignment:w1/n1:u1", new(kind="assignment"))
            for store in [first, second] * 4
        )
    )

    created = [result for result in results if result is not None]
    assert len(created) == 1
    assert await first.list_notifications(USER) == created


# --- reading ------------------------------------------------------------------------------


async def test_mark_read_changes_own_unread_ids_only(store: Database) -> None:
    """Only the user's own unread ids are marked; others' and unknown ids are ignored."""
    own = await store.create_notifications([new(), new()])
    [foreign] = await store.create_notifications([new(OTHER_USER)])

    changed = await store.mark_read(USER, [own[1].id, foreign.id, own[1].id, 10**6, -1, 2**80])

    assert changed == [own[1].id]
    [first, second] = await store.list_notifications(USER)
    assert first.read_at is None
    assert second.read_at is not None
    assert second.read_at >= second.created_at
    assert (await store.list_notifications(OTHER_USER))[0].read_at is None


async def test_marking_read_again_changes_nothing_and_keeps_read_at(store: Database) -> None:
    """A read notification marked again is not reported and keeps its first `read_at`."""
    created = await store.create_notifications([new(), new()])
    assert await store.mark_read(USER, [created[0].id]) == [created[0].id]
    [before, _] = await store.list_notifications(USER)

    again = await store.mark_read(USER, ids_of(created))
    everything = await store.mark_all_read(USER)

    assert again == [created[1].id]
    assert everything == []
    [after, _] = await store.list_notifications(USER)
    assert after.read_at == before.read_at


async def test_mark_read_of_no_ids_changes_nothing(store: Database) -> None:
    """An empty id list returns no ids and leaves everything unread."""
    await store.create_notifications([new()])

    assert await store.mark_read(USER, []) == []
    assert await store.unread_count(USER) == 1


async def test_mark_all_read_marks_every_unread_of_the_user(store: Database) -> None:
    """`mark_all_read` returns the user's unread ids ascending and leaves other users alone."""
    created = await store.create_notifications([new(), new(OTHER_USER), new(), new()])
    await store.mark_read(USER, [created[2].id])

    changed = await store.mark_all_read(USER)

    assert changed == [created[0].id, created[3].id]
    assert await store.unread_count(USER) == 0
    assert await store.unread_count(OTHER_USER) == 1


async def test_unread_count_follows_creation_and_reading(store: Database) -> None:
    """The unread count starts at 0, grows with creation and shrinks with reading."""
    assert await store.unread_count(USER) == 0
    created = await store.create_notifications([new(), new(), new(OTHER_USER)])
    assert await store.unread_count(USER) == 2

    await store.mark_read(USER, [created[0].id])

    assert await store.unread_count(USER) == 1
    assert await store.unread_count(OTHER_USER) == 1


async def test_concurrent_mark_read_reports_each_id_once(backend: Backend) -> None:
    """Callers marking the same ids at once, over two instances, report each id once in all."""
    first = await backend.new_store()
    second = await backend.another_store(first)
    created = await first.create_notifications([new() for _ in range(5)])

    results = await asyncio.gather(
        *(store.mark_read(USER, ids_of(created)) for store in [first, second] * 3)
    )

    assert sorted(itertools.chain.from_iterable(results)) == ids_of(created)


# --- durability and failure ---------------------------------------------------------------


async def test_closing_and_opening_the_store_keeps_notifications(store: Database) -> None:
    """After `close` and `open` the same store lists the same notifications and keys."""
    await store.create_notifications([new(), new()])
    await store.create_notification_once("key", new())
    before = await store.list_notifications(USER)

    await store.close()
    await store.open()

    assert await store.list_notifications(USER) == before
    assert await store.create_notification_once("key", new()) is None


async def test_a_new_instance_on_the_same_database_sees_everything(
    durable_backend: Backend,
) -> None:
    """A new store on the same database keeps notifications and dedup keys, and its ids
    continue after the old ones."""
    first = await durable_backend.new_store()
    created = await first.create_notifications([new(), new()])
    await first.mark_read(USER, [created[0].id])
    await first.create_notification_once("key", new())
    before = await first.list_notifications(USER)
    await first.close()

    second = await durable_backend.another_store(first)

    assert await second.list_notifications(USER) == before
    assert await second.create_notification_once("key", new()) is None
    [later] = await second.create_notifications([new()])
    assert later.id > before[-1].id


async def test_closed_store_raises_store_error_for_every_notification_call(
    store: Database,
) -> None:
    """Every `NotificationStore` call on a closed store raises `StoreError`."""
    await store.close()

    calls = [
        store.create_notifications([new()]),
        store.create_notification_once("key", new()),
        store.list_notifications(USER),
        store.mark_read(USER, [1]),
        store.mark_all_read(USER),
        store.unread_count(USER),
    ]
    for call in calls:
        with pytest.raises(StoreError):
            await call


async def test_memory_store_fault_injection_covers_notification_calls() -> None:
    """`fail_next` fails the next notification call, changing nothing."""
    store = MemoryStore()
    await store.open()
    store.fail_next = StoreError("injected")

    with pytest.raises(StoreError, match="injected"):
        await store.create_notifications([new()])

    assert await store.list_notifications(USER) == []


# --- Postgres only: creation order across instances ---------------------------------------

GATE_LOCK_KEY = 4343
# Holds every insert of a notification of kind "held" until the test releases the gate lock:
# its transaction has drawn its id and stays uncommitted meanwhile.
HOLD_HELD_NOTIFICATIONS = hold_trigger(
    "hold_notifications", "notifications", "INSERT", "NEW.kind = 'held'", GATE_LOCK_KEY
)


@pytest.fixture
async def gate(postgres_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection holding the lock that blocks inserts of "held" notifications."""
    async with gate_held(postgres_dsn, HOLD_HELD_NOTIFICATIONS, GATE_LOCK_KEY) as conn:
        yield conn


@pytest.fixture
async def postgres_stores(postgres_dsn: str) -> AsyncIterator[list[PostgresStore]]:
    """Three open instances (three pools) on one database."""
    async with open_stores(postgres_dsn, 3) as stores:
        yield stores


async def test_replay_after_the_last_seen_id_misses_no_notification_committed_later(
    gate: asyncpg.Connection, postgres_stores: list[PostgresStore]
) -> None:
    """While a user's notification is uncommitted, a later one for that user does not become
    visible ahead of it, so a reader resuming after its last seen id misses neither; another
    user's notification is not held up meanwhile."""
    first, second, reader = postgres_stores
    held = asyncio.create_task(first.create_notifications([new(kind="held")]))
    await eventually(lambda: sessions_waiting(gate, 1), what="first creation held")
    later = asyncio.create_task(second.create_notifications([new(kind="message")]))
    # Either the later one waits behind the held one, or (the bug) it commits.
    await eventually(
        lambda: later.done() or sessions_waiting(gate, 2), what="later creation settled"
    )
    async with asyncio.timeout(scaled(10)):
        await second.create_notifications([new(OTHER_USER)])

    seen = await reader.list_notifications(USER)
    cursor = seen[-1].id if seen else 0
    await gate.execute("SELECT pg_advisory_unlock($1)", GATE_LOCK_KEY)
    [held_notification], [later_notification] = await asyncio.gather(held, later)
    seen += await reader.list_notifications(USER, after_id=cursor)

    assert held_notification.id < later_notification.id
    assert ids_of(seen) == [held_notification.id, later_notification.id]


async def test_a_reader_polling_after_its_last_id_sees_every_concurrent_creation(
    postgres_stores: list[PostgresStore],
) -> None:
    """A reader that keeps listing after its last seen id, while two instances create many
    notifications for the user at once, ends up with all of them, each once, in id order."""
    first, second, reader = postgres_stores
    done = asyncio.Event()
    seen: list[Notification] = []

    async def create_all() -> list[Notification]:
        try:
            batches = await asyncio.gather(
                *(
                    store.create_notifications([new(title=str(n)), new(OTHER_USER)][: 1 + n % 2])
                    for n, store in zip(range(60), itertools.cycle([first, second]))
                )
            )
        finally:
            done.set()
        return [n for batch in batches for n in batch if n.user_id == USER]

    async def poll() -> None:
        while True:
            finished = done.is_set()
            page = await reader.list_notifications(
                USER, after_id=seen[-1].id if seen else 0, limit=MAX_PAGE
            )
            seen.extend(page)
            if finished and not page:
                return

    created, _ = await asyncio.gather(create_all(), poll())

    assert ids_of(seen) == sorted(ids_of(created))
    assert ids_of(await reader.list_notifications(USER, limit=MAX_PAGE)) == ids_of(seen)


async def test_concurrent_batches_naming_the_same_users_in_any_order_all_commit(
    postgres_stores: list[PostgresStore],
) -> None:
    """Batches for overlapping users in opposite orders, from two instances, do not deadlock."""
    first, second, _ = postgres_stores
    users = [f"u{n}" for n in range(6)]

    batches = await asyncio.gather(
        *(
            store.create_notifications([new(user) for user in order])
            for store, order in itertools.islice(
                itertools.cycle([(first, users), (second, users[::-1])]), 20
            )
        )
    )

    assert sum(len(batch) for batch in batches) == 20 * len(users)
    assert await first.unread_count(users[0]) == 20


async def test_a_second_caller_with_the_same_key_waits_for_the_first_and_gets_none(
    gate: asyncpg.Connection, postgres_stores: list[PostgresStore]
) -> None:
    """While one instance's creation with a key is uncommitted, another instance's caller
    with that key waits for it, then gets None; exactly one notification exists."""
    first, second, reader = postgres_stores
    calls = [
        asyncio.create_task(store.create_notification_once("k", new(kind="held")))
        for store in (first, second)
    ]
    # One waits at the gate (holding the key), the other for that one's transaction.
    await eventually(lambda: sessions_waiting(gate, 2), what="both callers waiting")
    await gate.execute("SELECT pg_advisory_unlock($1)", GATE_LOCK_KEY)
    results = await asyncio.gather(*calls)

    created = [result for result in results if result is not None]
    assert len(created) == 1
    assert await reader.list_notifications(USER) == created
