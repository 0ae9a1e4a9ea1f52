"""Deadline reminders on `collab serve` processes sharing Redis and Postgres, on the real clock
with due times a few seconds ahead (nothing asserts how soon they come): a reminder armed on
an instance that is SIGKILLed is sent once, by the other; one that falls due while every
instance is down is sent once by the next to start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from collab.store.notifications import Notification
from collab.store.postgres import PostgresStore
from tests.conftest import ProcessFactory
from tests.e2e.conftest import Pair, token
from tests.support.live import LiveClient
from tests.support.postgres_server import PostgresServer
from tests.support.redis_server import RedisServer
from tests.support.waiting import eventually

NOTES = "/api/v1/workspaces/w1/notes"
REMINDER_KINDS = ("due_soon", "overdue")


@pytest.fixture
def cluster_env(fresh_redis: RedisServer, fresh_postgres: PostgresServer) -> dict[str, str]:
    """What every instance of the deployment is started with: `due_soon` 2 s before."""
    return {
        "COLLAB_REDIS_URL": fresh_redis.url,
        "COLLAB_FLUSH_INTERVAL_MS": "50",
        "COLLAB_CATALOG_INTERVAL_MS": "100",
        "COLLAB_DUE_SOON_S": "2",
    }


@pytest.fixture
async def pair(
    server_processes: ProcessFactory, fresh_postgres: PostgresServer, cluster_env: dict[str, str]
) -> Pair:
    dsn = await fresh_postgres.create_database()
    cluster_env["COLLAB_DATABASE_URL"] = dsn
    return Pair(
        await server_processes.start(**cluster_env),
        await server_processes.start(**cluster_env),
        dsn,
    )


def due_in(seconds: int) -> tuple[str, datetime]:
    """A due time `seconds` (whole) from now, as a client writes it, and as a moment."""
    moment = (datetime.now(UTC) + timedelta(seconds=seconds + 1)).replace(microsecond=0)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ"), moment


async def stored(pair: Pair, call: str, *args: Any) -> Any:
    """What the store answers, read directly from the shared database."""
    store = PostgresStore(pair.dsn)
    await store.open()
    try:
        return await getattr(store, call)(*args)
    finally:
        await store.close()


async def reminders(pair: Pair, user: str) -> list[Notification]:
    listed = await stored(pair, "list_notifications", user)
    return [n for n in listed if n.kind in REMINDER_KINDS]


async def create(pair: Pair, note_id: str, due: str) -> None:
    status, body = await pair.call(
        pair.a,
        "POST",
        NOTES,
        json={"id": note_id, "title": "Ship it", "due": due, "assignees": ["ann"]},
    )
    assert status == 201, body

    async def armed() -> bool:
        return len(await stored(pair, "pending_reminders", f"w1/{note_id}")) == 2

    await eventually(armed, timeout=30, what="both reminders armed in the database")


async def test_a_reminder_armed_on_a_killed_instance_is_sent_once_by_the_other(
    pair: Pair,
) -> None:
    # Seen in the directory: only members are reminded.
    assert (await pair.call(pair.b, "GET", "/api/v1/notifications", user="ann"))[0] == 200
    async with LiveClient.connect(pair.b.ws, token("ann", {"w1": "editor"})) as ann:
        due, _ = due_in(4)
        await create(pair, "plan", due)
        await pair.a.kill()

        for kind in REMINDER_KINDS:
            await ann.wait_event(
                "notification", lambda e, kind=kind: e["notification"]["kind"] == kind, timeout=30
            )
        sent = await reminders(pair, "ann")
        assert sorted(n.kind for n in sent) == sorted(REMINDER_KINDS)
        assert {n.payload["note"] for n in sent} == {"plan"}
        assert await stored(pair, "pending_reminders", "w1/plan") == []
        live = [e for e in ann.of_type("notification") if e["notification"]["kind"] != "assignment"]
        assert len(live) == 2


async def test_a_reminder_due_while_every_instance_was_down_is_sent_at_the_next_start(
    pair: Pair, server_processes: ProcessFactory, cluster_env: dict[str, str]
) -> None:
    # Seen in the directory: only members are reminded.
    assert (await pair.call(pair.b, "GET", "/api/v1/notifications", user="ann"))[0] == 200
    due, moment = due_in(4)
    await create(pair, "offline", due)
    await pair.a.kill()
    await pair.b.kill()

    await eventually(lambda: datetime.now(UTC) > moment, timeout=30, what="the due time passed")
    assert "overdue" not in [n.kind for n in await reminders(pair, "ann")]
    third = await server_processes.start(**cluster_env)

    async def overdue_sent() -> bool:
        return "overdue" in [n.kind for n in await reminders(pair, "ann")]

    await eventually(overdue_sent, timeout=30, what="the overdue reminder sent at the start")
    async with LiveClient.connect(third.ws, token("ann", {"w1": "editor"})) as ann:
        await ann.wait_event("notifications.synced")
        replayed = [e["notification"]["kind"] for e in ann.of_type("notification")]
    assert await stored(pair, "pending_reminders", "w1/offline") == []
    # The due_soon fell due while every instance was down too (unless the instances sent it
    # before they were killed): with the due reached, only `overdue` is sent then.
    kinds = [n.kind for n in await reminders(pair, "ann")]
    assert kinds.count("overdue") == 1
    assert kinds.count("due_soon") <= 1
    assert [kind for kind in replayed if kind in REMINDER_KINDS] == kinds
