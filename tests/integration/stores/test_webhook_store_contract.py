"""One contract suite for every `WebhookStore` backend (memory, SQLite, Postgres): the outbox
written with each change it reports, and the claims, leases, retries and disabling of its
deliveries."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiosqlite
import asyncpg
import orjson
import pytest
from pycrdt import Doc, Text

from collab.errors import StoreError
from collab.store import Database, SqliteStore, postgres_webhooks
from collab.store.catalog import NoteFields, NoteReading
from collab.store.notifications import NewNotification
from collab.store.rows import format_timestamp
from collab.store.webhook_events import webhook_test_event
from collab.store.webhooks import (
    DISABLED_BY_OPERATOR,
    ENDPOINT_DISABLED,
    EVENT_TYPES,
    AttemptRecord,
    ClaimedDelivery,
    Delivery,
    DeliveryState,
    Endpoint,
    EndpointChange,
)
from tests.support.store_backends import Backend
from tests.support.waiting import eventually

WS = "w1"
OTHER_WS = "w2"
DAY_S = 86400.0


def moment(offset_s: float = 0.0) -> str:
    """Now plus `offset_s`, as the store's times are written."""
    return format_timestamp(datetime.now(UTC) + timedelta(seconds=offset_s))


def endpoint(
    endpoint_id: str = "ep_a",
    events: tuple[str, ...] = EVENT_TYPES,
    workspace_id: str | None = None,
) -> Endpoint:
    return Endpoint(
        id=endpoint_id,
        url=f"https://hooks.example.com/{endpoint_id}",
        events=events,
        workspace_id=workspace_id,
        secret="whsec_" + "A" * 44,
        created_at=moment(),
    )


async def registered(store: Database, *endpoints: Endpoint) -> None:
    for each in endpoints or (endpoint(),):
        await store.add_endpoint(each)


async def create(store: Database, note_id: str = "n1", workspace_id: str = WS) -> None:
    entry = await store.create_note(
        workspace_id, note_id, NoteFields(title=f"Title {note_id}"), actor="u1", at=moment()
    )
    assert entry is not None


async def deliveries(store: Database, endpoint_id: str = "ep_a") -> list[Delivery]:
    """The endpoint's deliveries, oldest first."""
    return list(reversed(await store.list_deliveries(endpoint_id, limit=100)))


def payload(delivery: Delivery) -> dict[str, Any]:
    body = orjson.loads(delivery.body)
    assert isinstance(body, dict)
    return body


async def claim(store: Database, *, at: float = 1.0, limit: int = 10) -> list[ClaimedDelivery]:
    return await store.claim_deliveries(
        now=moment(at), lease_until=moment(at + 60), lease=f"lease-{at}-{limit}", limit=limit
    )


def failed(at: float, next_in_s: float | None, error: str = "HTTP 500") -> AttemptRecord:
    """A failed attempt `at` seconds from now of a delivery written now."""
    next_at = None if next_in_s is None else moment(at + next_in_s)
    return AttemptRecord(moment(at), 500, error, False, next_at, failing_from=moment())


def delivered(at: float) -> AttemptRecord:
    return AttemptRecord(moment(at), 204, None, True, None, failing_from=moment())


def a_state(text: str) -> bytes:
    doc: Doc[Text] = Doc()
    doc.get("text", type=Text).insert(0, text)
    return doc.get_update()


async def run_sql(backend: Backend, store: Database, sql: str) -> None:
    """Run `sql` past the store, on its database, committed."""
    location = backend.locations[id(store)]
    if isinstance(store, SqliteStore):
        async with aiosqlite.connect(location) as conn:
            await conn.execute(sql)
            await conn.commit()
        return
    conn = await asyncpg.connect(location)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


# --- what is written --------------------------------------------------------------------


async def test_without_an_endpoint_a_change_writes_no_delivery(store: Database) -> None:
    """Changes made while no endpoint exists leave nothing to deliver, even once one is
    registered afterwards."""
    await create(store)
    await store.trash_note(WS, "n1", at=moment())
    await store.put_member(WS, "u2", role="editor", name=None, email=None, at=moment())

    await registered(store)

    assert await claim(store) == []
    assert await deliveries(store) == []


async def test_each_change_writes_its_event_for_each_endpoint_wanting_it(store: Database) -> None:
    """Every kind of change writes its event, with its data, once per endpoint whose events
    and workspace match, in the order of the changes; one event has one message id."""
    await registered(
        store,
        endpoint("ep_a"),
        endpoint("ep_b", events=("note.trashed",), workspace_id=WS),
        endpoint("ep_c", workspace_id=OTHER_WS),
    )
    at = moment()
    await create(store)
    await store.index_notes([NoteReading(WS, "n2", NoteFields(title="Indexed"), 5, "u1", at)])
    await store.index_notes([NoteReading(WS, "n2", NoteFields(title="Renamed"), 6, "u2", moment())])
    await store.trash_note(WS, "n1", at=at)
    await store.restore_note(WS, "n1")
    await store.trash_note(WS, "n2", at=at)
    await store.purge_note(WS, "n2", at=at)
    [notification] = await store.create_notifications(
        [NewNotification("u2", WS, "message", {"title": "hi"})]
    )
    await store.create_notification_once("k1", NewNotification("u3", WS, "mention"))
    version = await store.add_version(
        f"{WS}/n1", a_state("x"), kind="named", name="v1", created_by="u1", at=at
    )
    await store.put_member(WS, "u4", role="viewer", name="Four", email="4@x.io", at=at)
    await store.remove_member(WS, "u4", at=at)

    sent = await deliveries(store, "ep_a")

    assert [d.event_type for d in sent] == [
        "note.created",
        "note.created",
        "note.updated",
        "note.trashed",
        "note.restored",
        "note.trashed",
        "note.purged",
        "notification.created",
        "notification.created",
        "version.created",
        "member.added",
        "member.removed",
    ]
    bodies = [payload(d) for d in sent]
    assert [b["type"] for b in bodies] == [d.event_type for d in sent]
    assert bodies[0]["data"]["id"] == "n1"
    assert bodies[0]["data"]["title"] == "Title n1"
    assert bodies[2]["data"]["title"] == "Renamed"
    assert bodies[2]["data"]["updated_by"] == "u2"
    assert bodies[3]["data"]["trashed_at"] == at
    assert bodies[4]["data"]["trashed_at"] is None
    assert bodies[6]["data"] == {"id": "n2", "workspace": WS, "purged_at": at}
    assert bodies[7]["data"] == notification.to_json()
    assert bodies[8]["data"]["user"] == "u3"
    assert version is not None
    assert bodies[9]["data"] == {"workspace": WS, "note": "n1", "version": version.to_json()}
    assert bodies[10]["data"]["user"] == "u4"
    assert bodies[10]["data"]["email"] == "4@x.io"
    assert bodies[11]["data"]["removed_at"] == at
    assert all(d.state is DeliveryState.PENDING and d.attempt_count == 0 for d in sent)
    assert all(d.message_id.startswith("msg_") for d in sent)
    assert len({d.message_id for d in sent}) == len(sent)
    only_trashes = await deliveries(store, "ep_b")
    assert [d.event_type for d in only_trashes] == ["note.trashed", "note.trashed"]
    assert [d.message_id for d in only_trashes] == [sent[3].message_id, sent[5].message_id]
    assert await deliveries(store, "ep_c") == []


async def test_changes_that_change_nothing_report_nothing(store: Database) -> None:
    """A trash of a trashed note, a restore of a note not in the trash, a member put again,
    a purge of a purged note, and a reindex that changes nothing write no event."""
    await create(store)
    await store.put_member(WS, "u2", role="editor", name=None, email=None, at=moment())
    await registered(store)

    await store.restore_note(WS, "n1")
    first = moment()
    await store.trash_note(WS, "n1", at=first)
    await store.trash_note(WS, "n1", at=moment())
    await store.put_member(WS, "u2", role="viewer", name=None, email=None, at=moment())
    entry = await store.get_note(WS, "n1")
    assert entry is not None
    reading = NoteReading(WS, "n1", entry.fields, 0, None, entry.updated_at)
    await store.index_notes([reading])
    await store.purge_note(WS, "n1", at=moment())
    await store.purge_note(WS, "n1", at=moment())

    assert [d.event_type for d in await deliveries(store)] == ["note.trashed", "note.purged"]


async def test_a_change_and_its_deliveries_commit_together(
    durable_backend: Backend,
) -> None:
    """When the deliveries cannot be written, the change they report is rolled back too."""
    store = await durable_backend.new_store()
    await create(store)
    await registered(store)
    await run_sql(durable_backend, store, "ALTER TABLE webhook_deliveries RENAME TO broken")

    with pytest.raises(StoreError):
        await store.trash_note(WS, "n1", at=moment())

    entry = await store.get_note(WS, "n1")
    assert entry is not None
    assert entry.trashed_at is None


async def test_an_instance_writes_the_events_of_an_endpoint_another_registered(
    durable_backend: Backend,
) -> None:
    """Once `add_endpoint` returned on one instance, a change made through another (which
    had read its endpoints before) writes the endpoint's deliveries."""
    first = await durable_backend.new_store()
    second = await durable_backend.another_store(first)
    await create(second, "n0")

    await registered(first)
    await create(second, "n1")

    assert [payload(d)["data"]["id"] for d in await deliveries(first)] == ["n1"]


async def test_watchers_are_told_once_deliveries_are_committed(store: Database) -> None:
    """`watch_outbox` listeners are called after a change that wrote deliveries, and not
    after one that wrote none."""
    await registered(store, endpoint(events=("note.trashed",)))
    told: list[int] = []
    store.watch_outbox(lambda: told.append(len(told)))

    await create(store)
    assert told == []
    await store.trash_note(WS, "n1", at=moment())

    assert told == [0]
    assert len(await claim(store)) == 1


# --- claims, order, leases ----------------------------------------------------------------


async def test_a_notes_deliveries_go_out_one_after_the_other(store: Database) -> None:
    """A note's next delivery to an endpoint is claimable only once the one before it was
    delivered or failed for good, even while that one waits for a retry; another note's
    goes meanwhile."""
    await registered(store, endpoint(events=("note.created", "note.trashed", "note.restored")))
    await create(store, "n1")
    await store.trash_note(WS, "n1", at=moment())
    await store.restore_note(WS, "n1")
    await create(store, "n2")

    first = await claim(store)
    assert [c.delivery.event_type for c in first] == ["note.created", "note.created"]
    n1_created, n2_created = first
    assert payload(n2_created.delivery)["data"]["id"] == "n2"
    assert await claim(store, at=2) == []
    assert await store.record_attempt(
        n2_created.delivery.id, n2_created.lease, delivered(2), disable_after_s=DAY_S
    )

    assert await store.record_attempt(
        n1_created.delivery.id, n1_created.lease, failed(1, 100), disable_after_s=DAY_S
    )
    assert await claim(store, at=3) == []
    [again] = await claim(store, at=102)
    assert again.delivery.id == n1_created.delivery.id
    assert await store.record_attempt(
        again.delivery.id, again.lease, delivered(102), disable_after_s=DAY_S
    )

    [trashed] = await claim(store, at=103)
    assert trashed.delivery.event_type == "note.trashed"
    assert await store.record_attempt(
        trashed.delivery.id, trashed.lease, failed(103, None), disable_after_s=DAY_S
    )
    [restored] = await claim(store, at=104)
    assert restored.delivery.event_type == "note.restored"


async def test_concurrent_claims_of_two_instances_share_out_every_delivery_once(
    backend: Backend,
) -> None:
    """Two store instances on one database claiming at once never get the same delivery,
    and between them get all of them."""
    first = await backend.new_store()
    second = await backend.another_store(first)
    await registered(first, endpoint(events=("note.created",)))
    for number in range(30):
        await create(first, f"n{number}")

    claimed: list[ClaimedDelivery] = []
    for round_number in range(10):
        rounds = await asyncio.gather(
            *(
                store.claim_deliveries(
                    now=moment(1),
                    lease_until=moment(61),
                    lease=f"{round_number}-{name}-{i}",
                    limit=2,
                )
                for i, (name, store) in enumerate((("a", first), ("b", second)) * 2)
            )
        )
        claimed += [c for batch in rounds for c in batch]

    ids = [c.delivery.id for c in claimed]
    assert len(ids) == len(set(ids)) == 30


async def test_an_expired_lease_lets_another_claim_and_voids_the_first(store: Database) -> None:
    """A leased delivery is not claimed again until its lease expires; then it is, and the
    first holder's record is refused while the new one's is kept."""
    await registered(store, endpoint(events=("note.created",)))
    await create(store)
    [held] = await store.claim_deliveries(
        now=moment(1), lease_until=moment(60), lease="first", limit=10
    )

    assert (
        await store.claim_deliveries(
            now=moment(30), lease_until=moment(90), lease="early", limit=10
        )
        == []
    )
    [taken] = await store.claim_deliveries(
        now=moment(61), lease_until=moment(120), lease="second", limit=10
    )

    assert taken.delivery.id == held.delivery.id
    assert not await store.record_attempt(
        held.delivery.id, "first", delivered(62), disable_after_s=DAY_S
    )
    assert await store.record_attempt(
        taken.delivery.id, "second", delivered(63), disable_after_s=DAY_S
    )
    [shown] = await deliveries(store)
    assert shown.state is DeliveryState.DELIVERED
    assert shown.attempt_count == 1


async def test_a_failed_attempt_is_retried_when_due_and_each_attempt_is_listed(
    store: Database,
) -> None:
    """A failed attempt schedules the next; the delivery is not due before it; its attempts
    (time, status, error) are listed, oldest first; a final failure ends it."""
    await registered(store, endpoint(events=("note.created",)))
    await create(store)
    [claimed] = await claim(store, at=1)
    record = failed(1, 10, "HTTP 502: bad gateway")
    assert await store.record_attempt(
        claimed.delivery.id, claimed.lease, record, disable_after_s=DAY_S
    )

    [pending] = await deliveries(store)
    assert pending.state is DeliveryState.PENDING
    assert pending.next_attempt_at == record.next_attempt_at
    assert pending.last_status == 500
    assert pending.last_error == "HTTP 502: bad gateway"
    assert await claim(store, at=5) == []
    [again] = await claim(store, at=12)
    assert again.delivery.attempt_count == 1
    assert await store.record_attempt(
        again.delivery.id, again.lease, failed(12, None, "no answer"), disable_after_s=DAY_S
    )

    [done] = await deliveries(store)
    assert done.state is DeliveryState.FAILED
    assert done.next_attempt_at is None
    assert done.finished_at is not None
    assert [(a.status, a.error) for a in done.attempts] == [
        (500, "HTTP 502: bad gateway"),
        (500, "no answer"),
    ]
    assert await claim(store, at=100) == []


async def test_an_endpoint_failing_for_long_enough_is_disabled(store: Database) -> None:
    """An endpoint whose attempts all failed for `disable_after_s` is disabled, saying why;
    its pending deliveries fail; later changes write nothing for it. A success before then
    starts the count again."""
    await registered(store, endpoint(events=("note.created", "note.trashed")))
    await create(store, "n1")
    await create(store, "n2")
    n1, n2 = await claim(store, at=1)
    assert await store.record_attempt(n1.delivery.id, n1.lease, failed(1, 5), disable_after_s=100)
    assert await store.record_attempt(n2.delivery.id, n2.lease, delivered(2), disable_after_s=100)
    recovered = await store.get_endpoint("ep_a")
    assert recovered is not None
    assert recovered.failing_since is None
    [n1] = await claim(store, at=10)
    assert await store.record_attempt(n1.delivery.id, n1.lease, failed(10, 50), disable_after_s=100)
    failing = await store.get_endpoint("ep_a")
    assert failing is not None
    assert failing.failing_since is not None
    assert failing.disabled_at is None

    [n1] = await claim(store, at=111)
    last = failed(111, 50, "HTTP 503: down")
    assert await store.record_attempt(n1.delivery.id, n1.lease, last, disable_after_s=100)

    disabled = await store.get_endpoint("ep_a")
    assert disabled is not None
    assert disabled.disabled_at == last.at
    assert disabled.disabled_reason is not None
    assert "HTTP 503: down" in disabled.disabled_reason
    n1_shown, n2_shown = await deliveries(store)
    assert n1_shown.state is DeliveryState.FAILED
    assert n1_shown.last_error == ENDPOINT_DISABLED
    assert n2_shown.state is DeliveryState.DELIVERED
    await store.trash_note(WS, "n2", at=moment())
    assert len(await deliveries(store)) == 2
    assert await claim(store, at=200) == []


async def test_a_receiver_that_is_gone_disables_its_endpoint_at_once(store: Database) -> None:
    """An attempt answered 410 Gone fails its delivery for good and disables the endpoint at
    once, saying so, however short its run of failures; its other pending deliveries fail;
    an operator's retry enables it again."""
    await registered(store, endpoint(events=("note.created",)))
    await create(store, "n1")
    await create(store, "n2")
    n1, _ = await claim(store, at=1)
    gone = AttemptRecord(moment(1), 410, "HTTP 410", False, None, failing_from=moment(), gone=True)

    assert await store.record_attempt(n1.delivery.id, n1.lease, gone, disable_after_s=DAY_S)

    disabled = await store.get_endpoint("ep_a")
    assert disabled is not None
    assert disabled.disabled_at == gone.at
    assert disabled.disabled_reason is not None
    assert "410 Gone" in disabled.disabled_reason
    n1_shown, n2_shown = await deliveries(store)
    assert (n1_shown.state, n1_shown.last_status, n1_shown.attempt_count) == (
        DeliveryState.FAILED,
        410,
        1,
    )
    assert n2_shown.state is DeliveryState.FAILED
    assert n2_shown.last_error == ENDPOINT_DISABLED
    assert await claim(store, at=2) == []
    retried = await store.retry_delivery("ep_a", n1_shown.id, now=moment(3))
    assert retried is not None
    enabled = await store.get_endpoint("ep_a")
    assert enabled is not None
    assert enabled.disabled_at is None


async def test_an_operator_retry_requeues_now_and_enables_the_endpoint(store: Database) -> None:
    """A retried delivery is pending and due at once, marked retried, whatever its state;
    its endpoint is enabled again; one under a lease is left as it is."""
    await registered(store, endpoint(events=("note.created",)))
    await create(store, "n1")
    [first] = await claim(store, at=1)
    assert await store.record_attempt(
        first.delivery.id, first.lease, failed(1, None), disable_after_s=0
    )
    disabled = await store.get_endpoint("ep_a")
    assert disabled is not None
    assert disabled.disabled_at is not None

    now = moment(2)
    retried = await store.retry_delivery("ep_a", first.delivery.id, now=now)

    assert retried is not None
    assert retried.state is DeliveryState.PENDING
    assert (retried.next_attempt_at, retried.retried_at) == (now, now)
    assert retried.finished_at is None
    enabled = await store.get_endpoint("ep_a")
    assert enabled is not None
    assert (enabled.disabled_at, enabled.failing_since) == (None, None)
    [again] = await claim(store, at=3)
    assert again.delivery.id == first.delivery.id
    assert again.delivery.retried_at == now
    in_flight = await store.retry_delivery("ep_a", first.delivery.id, now=moment(4))
    assert in_flight is not None
    assert in_flight.retried_at == now
    assert await store.retry_delivery("ep_a", "999999", now=now) is None
    assert await store.retry_delivery("ep_b", first.delivery.id, now=now) is None


# --- endpoints and listings ---------------------------------------------------------------


async def test_endpoints_are_listed_read_and_deleted_with_their_deliveries(
    store: Database,
) -> None:
    """Endpoints read back as registered, in id order; deleting one deletes its deliveries
    and leaves the others'."""
    a, b = endpoint("ep_b", workspace_id=WS), endpoint("ep_a", events=("note.created",))
    await registered(store, a, b)
    await create(store)

    assert await store.list_endpoints() == [b, a]
    assert await store.get_endpoint("ep_b") == a
    assert await store.get_endpoint("ep_zz") is None
    assert await store.delete_endpoint("ep_b")
    assert not await store.delete_endpoint("ep_b")

    assert await store.list_endpoints() == [b]
    assert await deliveries(store, "ep_b") == []
    [claimed] = await claim(store)
    assert claimed.delivery.endpoint_id == "ep_a"
    assert claimed.url == b.url
    assert claimed.secrets == (b.secret,)


async def test_an_update_changes_only_the_fields_it_names(store: Database) -> None:
    """Each field of a change is written alone: the others, the secret and what attempts
    recorded stay; new changes are written by the new routes; an unknown endpoint is None."""
    await registered(store, endpoint("ep_a", events=("note.created",), workspace_id=WS))
    before = await store.get_endpoint("ep_a")
    assert before is not None

    moved = await store.update_endpoint(
        "ep_a", EndpointChange(url="https://hooks.example.com/moved"), at=moment()
    )
    assert moved is not None
    assert moved == replace(before, url="https://hooks.example.com/moved")
    widened = await store.update_endpoint(
        "ep_a",
        EndpointChange(events=("note.created", "note.trashed"), workspace_id=None),
        at=moment(),
    )
    assert widened == replace(moved, events=("note.created", "note.trashed"), workspace_id=None)
    assert await store.get_endpoint("ep_a") == widened
    await create(store, "n1", workspace_id=OTHER_WS)
    await store.trash_note(OTHER_WS, "n1", at=moment())
    assert [d.event_type for d in await deliveries(store)] == ["note.created", "note.trashed"]
    narrowed = await store.update_endpoint(
        "ep_a", EndpointChange(events=("note.trashed",), workspace_id=WS), at=moment()
    )
    assert narrowed is not None
    assert (narrowed.events, narrowed.workspace_id) == (("note.trashed",), WS)
    await create(store, "n2", workspace_id=WS)
    await create(store, "n3", workspace_id=OTHER_WS)
    assert len(await deliveries(store)) == 2
    assert await store.update_endpoint("ep_zz", EndpointChange(enabled=False), at=moment()) is None


async def test_an_endpoint_disabled_by_hand_keeps_its_deliveries_for_when_it_is_enabled(
    store: Database,
) -> None:
    """Disabled by an operator, an endpoint says so, its pending deliveries wait (not
    claimed, not failed) and changes meanwhile are not written for it; disabling it again
    keeps the first time; enabled, its deliveries are claimed and its run of failures is
    forgotten. An endpoint the failures disabled keeps their reason when disabled by hand."""
    await registered(store, endpoint(events=("note.created",)))
    await create(store, "n1")
    [first] = await claim(store, at=1)
    assert await store.record_attempt(
        first.delivery.id, first.lease, failed(1, 5), disable_after_s=DAY_S
    )
    at = moment(2)

    paused = await store.update_endpoint("ep_a", EndpointChange(enabled=False), at=at)

    assert paused is not None
    assert (paused.disabled_at, paused.disabled_reason) == (at, DISABLED_BY_OPERATOR)
    again = await store.update_endpoint("ep_a", EndpointChange(enabled=False), at=moment(3))
    assert again == paused
    assert await claim(store, at=10) == []
    await create(store, "n2")
    [waiting] = await deliveries(store)
    assert waiting.state is DeliveryState.PENDING
    resumed = await store.update_endpoint("ep_a", EndpointChange(enabled=True), at=moment(11))
    assert resumed is not None
    assert (resumed.disabled_at, resumed.disabled_reason, resumed.failing_since) == (
        None,
        None,
        None,
    )
    [claimed] = await claim(store, at=12)
    assert claimed.delivery.id == waiting.id

    assert await store.record_attempt(
        claimed.delivery.id, claimed.lease, failed(12, 5, "HTTP 503: down"), disable_after_s=0
    )
    by_failures = await store.get_endpoint("ep_a")
    assert by_failures is not None
    assert by_failures.disabled_reason is not None
    assert "HTTP 503: down" in by_failures.disabled_reason
    assert (
        await store.update_endpoint("ep_a", EndpointChange(enabled=False), at=moment(13))
        == by_failures
    )


async def test_a_postponed_delivery_is_due_again_with_nothing_recorded(store: Database) -> None:
    """Postponing gives the claim back: due at its new time, no attempt recorded, the
    endpoint's run of failures untouched; a lease not held postpones nothing."""
    await registered(store, endpoint(events=("note.created",)))
    await create(store)
    [claimed] = await claim(store, at=1)

    until = moment(6)
    assert await store.postpone_delivery(claimed.delivery.id, claimed.lease, until=until)

    [shown] = await deliveries(store)
    assert (shown.state, shown.attempt_count, shown.last_error, shown.attempts) == (
        DeliveryState.PENDING,
        0,
        None,
        (),
    )
    assert shown.next_attempt_at == until
    assert await claim(store, at=5) == []
    [again] = await claim(store, at=7)
    assert again.delivery.id == claimed.delivery.id
    failing = await store.get_endpoint("ep_a")
    assert failing is not None
    assert failing.failing_since is None
    assert not await store.postpone_delivery(claimed.delivery.id, claimed.lease, until=moment(9))
    assert not await store.postpone_delivery("99999", again.lease, until=moment(9))


async def test_a_test_delivery_goes_to_its_endpoint_whatever_it_wants_and_wakes_the_sender(
    store: Database,
) -> None:
    """A test delivery is written for the one endpoint named, though it wants no such event,
    pending and due at once, and the watchers are told; an unknown endpoint gets none."""
    await registered(store, endpoint("ep_a", events=("note.purged",)), endpoint("ep_b"))
    woken: list[bool] = []
    store.watch_outbox(lambda: woken.append(True))
    event = webhook_test_event(endpoint("ep_a"), moment())

    delivery = await store.add_test_delivery("ep_a", event)

    assert delivery is not None
    assert (delivery.endpoint_id, delivery.event_type, delivery.message_id) == (
        "ep_a",
        "webhook.test",
        event.message_id,
    )
    assert delivery.state is DeliveryState.PENDING
    assert delivery.body == event.body
    assert await deliveries(store, "ep_a") == [delivery]
    assert await deliveries(store, "ep_b") == []
    assert woken
    [claimed] = await claim(store)
    assert claimed.delivery.id == delivery.id
    assert await store.add_test_delivery("ep_zz", event) is None


async def test_secrets_are_replaced_only_while_they_are_what_was_read(store: Database) -> None:
    """`replace_secrets` writes the pair only if the stored pair is still the expected one
    (a rotation in between wins), and changes nothing else."""
    await registered(store)
    before = await store.get_endpoint("ep_a")
    assert before is not None
    old = (before.secret, None)

    assert await store.replace_secrets("ep_a", old, ("sealed:v1:k:AAAA", None))
    after = await store.get_endpoint("ep_a")
    assert after == replace(before, secret="sealed:v1:k:AAAA")
    assert not await store.replace_secrets("ep_a", old, ("sealed:v1:k:BBBB", None))
    rotated = await store.rotate_secret("ep_a", "whsec_" + "C" * 44, previous_until=moment(30))
    assert rotated is not None
    stale = ("sealed:v1:k:AAAA", None)
    assert not await store.replace_secrets("ep_a", stale, ("x", None))
    current = (rotated.secret, rotated.previous_secret)
    assert await store.replace_secrets("ep_a", current, ("sealed:v1:k:C", "sealed:v1:k:A"))
    assert await store.get_endpoint("ep_a") == replace(
        rotated, secret="sealed:v1:k:C", previous_secret="sealed:v1:k:A"
    )
    assert not await store.replace_secrets("ep_zz", old, ("x", None))


async def test_a_rotated_secret_signs_beside_the_new_one_until_its_time(store: Database) -> None:
    """After a rotation the endpoint reads back with the new secret and the replaced one,
    and a claim before the overlap ends carries both (the new first), one after it only the
    new. Another endpoint keeps its secret."""
    await registered(store, endpoint("ep_a"), endpoint("ep_b"))
    old = endpoint().secret
    new = "whsec_" + "B" * 44

    rotated = await store.rotate_secret("ep_a", new, previous_until=moment(30))

    assert rotated is not None
    assert (rotated.secret, rotated.previous_secret) == (new, old)
    assert await store.get_endpoint("ep_a") == rotated
    assert (await store.list_endpoints())[0] == rotated
    untouched = await store.get_endpoint("ep_b")
    assert untouched is not None
    assert (untouched.secret, untouched.previous_secret) == (old, None)
    await create(store)
    during = {c.delivery.endpoint_id: c.secrets for c in await claim(store, at=1.0)}
    assert during == {"ep_a": (new, old), "ep_b": (old,)}
    [delivery] = await deliveries(store, "ep_a")
    assert await store.record_attempt(
        delivery.id, "lease-1.0-10", failed(1.0, 60), disable_after_s=DAY_S
    )
    claimed = {c.delivery.endpoint_id: c.secrets for c in await claim(store, at=61.0)}
    assert claimed["ep_a"] == (new,)


async def test_a_rotation_without_overlap_or_twice_keeps_at_most_two_secrets(
    store: Database,
) -> None:
    """Without an overlap the replaced secret stops signing at once; a second rotation drops
    the secret the first replaced; an unknown endpoint rotates nothing."""
    await registered(store)
    first, second, third = ("whsec_" + c * 44 for c in "BCD")

    at_once = await store.rotate_secret("ep_a", first, previous_until=None)
    assert at_once is not None
    assert (at_once.secret, at_once.previous_secret, at_once.previous_secret_until) == (
        first,
        None,
        None,
    )
    await store.rotate_secret("ep_a", second, previous_until=moment(30))
    twice = await store.rotate_secret("ep_a", third, previous_until=moment(30))
    assert twice is not None
    assert (twice.secret, twice.previous_secret) == (third, second)
    await create(store)
    [claimed] = await claim(store)
    assert claimed.secrets == (third, second)
    assert await store.rotate_secret("ep_zz", first, previous_until=None) is None
    assert await store.get_endpoint("ep_zz") is None


async def test_deliveries_are_listed_newest_first_page_by_page(store: Database) -> None:
    """A listing is newest first; `before` continues after a page; ids that name no
    delivery read an empty page or nothing."""
    await registered(store, endpoint(events=("note.created",)))
    for number in range(5):
        await create(store, f"n{number}")

    page = await store.list_deliveries("ep_a", limit=2)
    rest = await store.list_deliveries("ep_a", limit=10, before=page[-1].id)

    assert [payload(d)["data"]["id"] for d in page] == ["n4", "n3"]
    assert [payload(d)["data"]["id"] for d in rest] == ["n2", "n1", "n0"]
    assert await store.list_deliveries("ep_a", limit=10, before="0") == []
    assert await store.list_deliveries("ep_a", limit=10, before="x1") == []
    assert await store.get_delivery("ep_a", page[0].id) == page[0]
    assert await store.get_delivery("ep_a", "01") is None
    assert await store.get_delivery("ep_zz", page[0].id) is None


async def test_finished_deliveries_are_deleted_after_their_time(store: Database) -> None:
    """Delivered and failed deliveries finished before the cutoff are deleted, pending ones
    never."""
    await registered(store, endpoint(events=("note.created",)))
    for number in range(3):
        await create(store, f"n{number}")
    one, two, _ = await claim(store)
    assert await store.record_attempt(
        one.delivery.id, one.lease, delivered(1), disable_after_s=DAY_S
    )
    assert await store.record_attempt(
        two.delivery.id, two.lease, failed(1, None), disable_after_s=DAY_S
    )

    assert await store.delete_finished_deliveries(finished_before=moment(0), limit=10) == 0
    assert await store.delete_finished_deliveries(finished_before=moment(5), limit=1) == 1
    assert await store.delete_finished_deliveries(finished_before=moment(5), limit=10) == 1

    [left] = await deliveries(store)
    assert left.state is DeliveryState.PENDING


async def test_a_claim_takes_at_most_a_few_deliveries_of_one_endpoint(store: Database) -> None:
    """With `per_endpoint`, an endpoint's deliveries under a lease count against it: one
    receiver that hangs holds a few attempts, and the other endpoints' deliveries go out."""
    await registered(store, endpoint("ep_a"), endpoint("ep_b"))
    for number in range(6):
        await create(store, f"n{number}")  # one note.created for each endpoint

    def per_endpoint(claimed: list[ClaimedDelivery]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for each in claimed:
            counts[each.delivery.endpoint_id] = counts.get(each.delivery.endpoint_id, 0) + 1
        return counts

    first = await store.claim_deliveries(
        now=moment(1), lease_until=moment(61), lease="first", limit=5, per_endpoint=2
    )
    assert per_endpoint(first) == {"ep_a": 2, "ep_b": 2}
    # The earliest due of each endpoint (written in this order: due in it).
    assert [int(c.delivery.id) for c in first] == sorted(int(c.delivery.id) for c in first)
    # Both at their bound while those leases hold.
    assert (
        await store.claim_deliveries(
            now=moment(2), lease_until=moment(62), lease="second", limit=5, per_endpoint=2
        )
        == []
    )
    # One attempt of ep_a ends: ep_a may take one more; ep_b, still at its bound, none.
    a_claim = next(c for c in first if c.delivery.endpoint_id == "ep_a")
    assert await store.record_attempt(
        a_claim.delivery.id, "first", delivered(3), disable_after_s=DAY_S
    )
    third = await store.claim_deliveries(
        now=moment(4), lease_until=moment(64), lease="third", limit=5, per_endpoint=2
    )
    assert per_endpoint(third) == {"ep_a": 1}
    # Leases that expired (their instance died) do not count.
    fourth = await store.claim_deliveries(
        now=moment(70), lease_until=moment(130), lease="fourth", limit=10, per_endpoint=2
    )
    assert per_endpoint(fourth) == {"ep_a": 2, "ep_b": 2}
    # Without `per_endpoint`, only the limit counts.
    rest = await store.claim_deliveries(
        now=moment(71), lease_until=moment(131), lease="fifth", limit=10
    )
    assert len(rest) == 12 - 1 - 4  # all but the delivered one and those leased just now


@pytest.mark.parametrize("durable_backend", ["postgres"], indirect=True)
async def test_a_claim_in_flight_on_another_instance_counts_against_the_endpoint(
    durable_backend: Backend,
) -> None:
    """Two instances claiming at once each see the other's leases only once committed; claims
    take turns, so the second sees the first's leases and `per_endpoint` holds across them.
    The first claim is held open in its transaction while the second is made."""
    store = await durable_backend.new_store()
    await registered(store, endpoint("ep_a"))
    for number in range(6):
        await create(store, f"n{number}")
    conn = await asyncpg.connect(durable_backend.locations[id(store)])
    try:
        transaction = conn.transaction()
        await transaction.start()
        first = await postgres_webhooks.claim_deliveries(
            conn, now=moment(1), lease_until=moment(61), lease="first", limit=5, per_endpoint=2
        )
        assert len(first) == 2
        second_claim = asyncio.create_task(
            store.claim_deliveries(
                now=moment(2), lease_until=moment(62), lease="second", limit=5, per_endpoint=2
            )
        )

        async def finished_or_waiting() -> bool:
            waiting = await conn.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted")
            return second_claim.done() or waiting > 0

        await eventually(finished_or_waiting, what="the second claim made or waiting")
        await transaction.commit()
        second = await second_claim
    finally:
        await conn.close()
    assert second == []
