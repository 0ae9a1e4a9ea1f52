"""The webhook endpoints and outbox of `SqliteStore`, as statements over a connection inside
its transaction (`SqliteStore._transaction`).

SQLite has one writer at a time: a delivery's id is drawn in commit order, and a claim
(`BEGIN IMMEDIATE`) excludes every other claim, of this process or another, until it commits.
`SqliteOutbox` remembers that a transaction wrote deliveries; the store tells the watchers once
it committed (`SqliteStore._transaction`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import aiosqlite
import orjson

from collab.store.rows import format_timestamp
from collab.store.webhook_outbox import Routes, WebhookOutbox
from collab.store.webhooks import (
    DISABLED_BY_OPERATOR,
    ENDPOINT_DISABLED,
    KEEP,
    MAX_ATTEMPTS_SHOWN,
    Attempt,
    AttemptRecord,
    ClaimedDelivery,
    Delivery,
    DeliveryState,
    Endpoint,
    EndpointChange,
    SecretPair,
    WebhookEvent,
    clip_error,
    delivery_number,
    disabling_reason,
    page_limit,
    signing_secrets,
)

# In the order of `Endpoint`'s and `Delivery`'s fields.
_ENDPOINT_COLUMNS = (
    "id, url, events, workspace_id, secret, created_at, last_success_at, failing_since, "
    "disabled_at, disabled_reason, previous_secret, previous_secret_until"
)
_DELIVERY_COLUMNS = (
    "d.id, d.endpoint_id, d.message_id, d.event_type, d.subject, d.body, d.created_at, "
    "d.state, d.attempt_count, d.next_attempt_at, d.lease_until, d.last_status, d.last_error, "
    "d.finished_at, d.retried_at"
)


class SqliteOutbox(WebhookOutbox[aiosqlite.Connection]):
    def __init__(self) -> None:
        super().__init__()
        self.written = False
        """Whether the transaction in progress wrote deliveries (one at a time: the lock)."""

    def committed(self) -> None:
        if self.written:
            self.written = False
            self.notify()

    async def _read_routes(self, conn: aiosqlite.Connection) -> Routes:
        rows = await conn.execute_fetchall(
            "SELECT workspace_id, events FROM webhook_endpoints WHERE disabled_at IS NULL"
        )
        return [(row[0], orjson.loads(row[1])) for row in rows]

    async def _insert(self, conn: aiosqlite.Connection, events: Sequence[WebhookEvent]) -> None:
        now = format_timestamp()
        await conn.executemany(
            "INSERT INTO webhook_deliveries (endpoint_id, message_id, event_type, subject, body, "
            "created_at, state, next_attempt_at) "
            "SELECT e.id, ?1, ?2, ?3, ?4, ?5, 'pending', ?5 FROM webhook_endpoints e "
            "WHERE e.disabled_at IS NULL AND (e.workspace_id IS NULL OR e.workspace_id = ?6) "
            "AND EXISTS (SELECT 1 FROM json_each(e.events) WHERE json_each.value = ?2) "
            "ORDER BY e.id",
            [(e.message_id, e.type, e.subject, e.body, now, e.workspace_id) for e in events],
        )
        self.written = True


async def add_endpoint(conn: aiosqlite.Connection, endpoint: Endpoint) -> None:
    await conn.execute(
        f"INSERT INTO webhook_endpoints ({_ENDPOINT_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            endpoint.id,
            endpoint.url,
            orjson.dumps(list(endpoint.events)).decode(),
            endpoint.workspace_id,
            endpoint.secret,
            endpoint.created_at,
            endpoint.last_success_at,
            endpoint.failing_since,
            endpoint.disabled_at,
            endpoint.disabled_reason,
            endpoint.previous_secret,
            endpoint.previous_secret_until,
        ),
    )


async def list_endpoints(conn: aiosqlite.Connection) -> list[Endpoint]:
    rows = await conn.execute_fetchall(
        f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY id"
    )
    return [_endpoint(row) for row in rows]


async def get_endpoint(conn: aiosqlite.Connection, endpoint_id: str) -> Endpoint | None:
    rows = await conn.execute_fetchall(
        f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?", (endpoint_id,)
    )
    return next((_endpoint(row) for row in rows), None)


async def delete_endpoint(conn: aiosqlite.Connection, endpoint_id: str) -> bool:
    rows = await conn.execute_fetchall(
        "DELETE FROM webhook_endpoints WHERE id = ? RETURNING id", (endpoint_id,)
    )
    await conn.execute(
        "DELETE FROM webhook_attempts WHERE delivery_id IN "
        "(SELECT id FROM webhook_deliveries WHERE endpoint_id = ?)",
        (endpoint_id,),
    )
    await conn.execute("DELETE FROM webhook_deliveries WHERE endpoint_id = ?", (endpoint_id,))
    return bool(rows)


async def add_test_delivery(
    conn: aiosqlite.Connection, outbox: SqliteOutbox, endpoint_id: str, event: WebhookEvent
) -> Delivery | None:
    now = format_timestamp()
    rows = await conn.execute_fetchall(
        "INSERT INTO webhook_deliveries (endpoint_id, message_id, event_type, subject, body, "
        "created_at, state, next_attempt_at) "
        "SELECT id, ?1, ?2, ?3, ?4, ?5, 'pending', ?5 FROM webhook_endpoints WHERE id = ?6 "
        "RETURNING id",
        (event.message_id, event.type, event.subject, event.body, now, endpoint_id),
    )
    found = next(iter(rows), None)
    if found is None:
        return None
    outbox.written = True
    return await get_delivery(conn, endpoint_id, str(found[0]))


async def postpone_delivery(
    conn: aiosqlite.Connection, delivery_id: str, lease: str, until: str
) -> bool:
    number = delivery_number(delivery_id)
    if number is None:
        return False
    rows = await conn.execute_fetchall(
        "UPDATE webhook_deliveries SET next_attempt_at = ?, lease = NULL, lease_until = NULL "
        "WHERE id = ? AND lease = ? AND state = 'pending' RETURNING id",
        (until, number, lease),
    )
    return bool(rows)


async def update_endpoint(
    conn: aiosqlite.Connection, endpoint_id: str, change: EndpointChange, *, at: str
) -> Endpoint | None:
    # Only the fields `change` names are written: what an attempt records meanwhile stays.
    keep_workspace = change.workspace_id is KEEP
    rows = await conn.execute_fetchall(
        "UPDATE webhook_endpoints SET url = coalesce(?1, url), events = coalesce(?2, events), "
        "workspace_id = CASE WHEN ?3 THEN workspace_id ELSE ?4 END, "
        "disabled_at = CASE ?5 WHEN 1 THEN NULL WHEN 0 THEN coalesce(disabled_at, ?6) "
        "ELSE disabled_at END, "
        "disabled_reason = CASE ?5 WHEN 1 THEN NULL "
        "WHEN 0 THEN CASE WHEN disabled_at IS NULL THEN ?7 ELSE disabled_reason END "
        "ELSE disabled_reason END, "
        "failing_since = CASE ?5 WHEN 1 THEN NULL ELSE failing_since END "
        f"WHERE id = ?8 RETURNING {_ENDPOINT_COLUMNS}",
        (
            change.url,
            None if change.events is None else orjson.dumps(list(change.events)).decode(),
            keep_workspace,
            None if keep_workspace else change.workspace_id,
            change.enabled,
            at,
            DISABLED_BY_OPERATOR,
            endpoint_id,
        ),
    )
    return next((_endpoint(row) for row in rows), None)


async def replace_secrets(
    conn: aiosqlite.Connection,
    endpoint_id: str,
    expected: SecretPair,
    replacement: SecretPair,
) -> bool:
    rows = await conn.execute_fetchall(
        "UPDATE webhook_endpoints SET secret = ?1, previous_secret = ?2 "
        "WHERE id = ?3 AND secret = ?4 AND previous_secret IS ?5 RETURNING id",
        (*replacement, endpoint_id, *expected),
    )
    return bool(rows)


async def rotate_secret(
    conn: aiosqlite.Connection, endpoint_id: str, secret: str, *, previous_until: str | None
) -> Endpoint | None:
    # The right-hand sides read the row as it was: the replaced secret becomes the previous.
    rows = await conn.execute_fetchall(
        "UPDATE webhook_endpoints SET secret = ?1, "
        "previous_secret = CASE WHEN ?2 IS NULL THEN NULL ELSE secret END, "
        f"previous_secret_until = ?2 WHERE id = ?3 RETURNING {_ENDPOINT_COLUMNS}",
        (secret, previous_until, endpoint_id),
    )
    return next((_endpoint(row) for row in rows), None)


_DUE = (
    "d.state = 'pending' AND d.next_attempt_at <= ?3 "
    "AND (d.lease_until IS NULL OR d.lease_until <= ?3) "
    "AND (d.subject IS NULL OR NOT EXISTS (SELECT 1 FROM webhook_deliveries p "
    "WHERE p.state = 'pending' AND p.endpoint_id = d.endpoint_id "
    "AND p.subject = d.subject AND p.id < d.id))"
)
# The first `per_endpoint` due deliveries of each enabled endpoint (migration 0015's index),
# numbered per endpoint, beside the endpoint's deliveries under a lease; those that keep the
# endpoint within `per_endpoint`, earliest due first.
_CLAIM_PER_ENDPOINT = (
    "UPDATE webhook_deliveries SET lease = ?1, lease_until = ?2 WHERE id IN ("
    "SELECT id FROM (SELECT d.id, d.next_attempt_at, row_number() OVER ("
    "PARTITION BY d.endpoint_id ORDER BY d.next_attempt_at, d.id) AS nth, "
    "(SELECT count(*) FROM webhook_deliveries b WHERE b.endpoint_id = e.id "
    "AND b.state = 'pending' AND b.lease_until IS NOT NULL AND b.lease_until > ?3) AS leased "
    "FROM webhook_endpoints e JOIN webhook_deliveries d ON d.id IN ("
    "SELECT d.id FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND " + _DUE + " "
    "ORDER BY d.next_attempt_at, d.id LIMIT ?5) "
    "WHERE e.disabled_at IS NULL) WHERE nth + leased <= ?5 ORDER BY next_attempt_at, id LIMIT ?4)"
)
_CLAIM = (
    "UPDATE webhook_deliveries SET lease = ?1, lease_until = ?2 WHERE id IN ("
    "SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id "
    "WHERE " + _DUE + " AND e.disabled_at IS NULL ORDER BY d.next_attempt_at, d.id LIMIT ?4)"
)


async def claim_deliveries(
    conn: aiosqlite.Connection,
    *,
    now: str,
    lease_until: str,
    lease: str,
    limit: int,
    per_endpoint: int | None = None,
) -> list[ClaimedDelivery]:
    if per_endpoint is None:
        await conn.execute(_CLAIM, (lease, lease_until, now, max(0, limit)))
    else:
        await conn.execute(
            _CLAIM_PER_ENDPOINT, (lease, lease_until, now, max(0, limit), max(0, per_endpoint))
        )
    rows = await conn.execute_fetchall(
        f"SELECT {_DELIVERY_COLUMNS}, e.url, e.secret, e.previous_secret, "
        "e.previous_secret_until FROM webhook_deliveries d "
        "JOIN webhook_endpoints e ON e.id = d.endpoint_id "
        "WHERE d.lease = ? AND d.state = 'pending' ORDER BY d.next_attempt_at, d.id",
        (lease,),
    )
    return [
        ClaimedDelivery(
            _delivery(row[:15]),
            str(row[15]),
            signing_secrets(str(row[16]), row[17], row[18], now),
            lease,
        )
        for row in rows
    ]


async def record_attempt(
    conn: aiosqlite.Connection,
    delivery_id: str,
    lease: str,
    record: AttemptRecord,
    *,
    disable_after_s: float,
) -> bool:
    number = delivery_number(delivery_id)
    if number is None:
        return False
    state, next_at, finished = record.outcome()
    error = clip_error(record.error)
    rows = await conn.execute_fetchall(
        "UPDATE webhook_deliveries SET state = ?, attempt_count = attempt_count + 1, "
        "next_attempt_at = ?, lease = NULL, lease_until = NULL, last_status = ?, "
        "last_error = ?, finished_at = ? WHERE id = ? AND lease = ? AND state = 'pending' "
        "RETURNING endpoint_id, attempt_count",
        (state.value, next_at, record.status, error, finished, number, lease),
    )
    found = next(iter(rows), None)
    if found is None:
        return False
    endpoint_id, attempt = str(found[0]), int(found[1])
    await conn.execute(
        "INSERT INTO webhook_attempts (delivery_id, attempt, at, status, error) "
        "VALUES (?, ?, ?, ?, ?)",
        (number, attempt, record.at, record.status, error),
    )
    if record.delivered:
        await conn.execute(
            "UPDATE webhook_endpoints SET failing_since = NULL, last_success_at = ? WHERE id = ?",
            (record.at, endpoint_id),
        )
        return True
    # SQLite's two-argument max() is NULL when either is: hence the coalesce.
    rows = await conn.execute_fetchall(
        "UPDATE webhook_endpoints SET failing_since = "
        "coalesce(failing_since, max(?, coalesce(last_success_at, ''))) WHERE id = ? "
        "RETURNING failing_since, disabled_at",
        (record.failing_from, endpoint_id),
    )
    endpoint = next(iter(rows), None)
    if endpoint is None or endpoint[1] is not None:
        return True
    since = str(endpoint[0])
    reason = disabling_reason(record, since, disable_after_s)
    if reason is not None:
        await conn.execute(
            "UPDATE webhook_endpoints SET disabled_at = ?, disabled_reason = ? WHERE id = ?",
            (record.at, reason, endpoint_id),
        )
        await conn.execute(
            "UPDATE webhook_deliveries SET state = 'failed', next_attempt_at = NULL, "
            "lease = NULL, lease_until = NULL, finished_at = ?, last_error = ? "
            "WHERE endpoint_id = ? AND state = 'pending'",
            (record.at, ENDPOINT_DISABLED, endpoint_id),
        )
    return True


async def list_deliveries(
    conn: aiosqlite.Connection, endpoint_id: str, *, limit: int, before: str | None
) -> list[Delivery]:
    where = "d.endpoint_id = ?"
    params: list[Any] = [endpoint_id]
    if before is not None:
        bound = delivery_number(before)
        if bound is None:
            return []
        where += " AND d.id < ?"
        params.append(bound)
    rows = await conn.execute_fetchall(
        f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE {where} "
        "ORDER BY d.id DESC LIMIT ?",
        (*params, page_limit(limit)),
    )
    return await _with_attempts(conn, [_delivery(row) for row in rows])


async def get_delivery(
    conn: aiosqlite.Connection, endpoint_id: str, delivery_id: str
) -> Delivery | None:
    number = delivery_number(delivery_id)
    if number is None:
        return None
    rows = await conn.execute_fetchall(
        f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d "
        "WHERE d.id = ? AND d.endpoint_id = ?",
        (number, endpoint_id),
    )
    found = await _with_attempts(conn, [_delivery(row) for row in rows])
    return next(iter(found), None)


async def retry_delivery(
    conn: aiosqlite.Connection, outbox: SqliteOutbox, endpoint_id: str, delivery_id: str, now: str
) -> Delivery | None:
    number = delivery_number(delivery_id)
    if number is None:
        return None
    rows = await conn.execute_fetchall(
        "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = ?1, lease = NULL, "
        "lease_until = NULL, finished_at = NULL, retried_at = ?1 "
        "WHERE id = ?2 AND endpoint_id = ?3 AND (lease_until IS NULL OR lease_until <= ?1) "
        "RETURNING id",
        (now, number, endpoint_id),
    )
    if rows:
        await conn.execute(
            "UPDATE webhook_endpoints SET failing_since = NULL, disabled_at = NULL, "
            "disabled_reason = NULL WHERE id = ?",
            (endpoint_id,),
        )
        outbox.routes.forget()
        outbox.written = True
    return await get_delivery(conn, endpoint_id, delivery_id)


async def delete_finished_deliveries(
    conn: aiosqlite.Connection, *, finished_before: str, limit: int
) -> int:
    rows = await conn.execute_fetchall(
        "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries "
        "WHERE finished_at IS NOT NULL AND finished_at < ? ORDER BY finished_at LIMIT ?) "
        "RETURNING id",
        (finished_before, max(0, limit)),
    )
    gone = [int(row[0]) for row in rows]
    if gone:
        await conn.execute(
            "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT value FROM json_each(?))",
            (orjson.dumps(gone).decode(),),
        )
    return len(gone)


async def _with_attempts(conn: aiosqlite.Connection, deliveries: list[Delivery]) -> list[Delivery]:
    if not deliveries:
        return []
    rows = await conn.execute_fetchall(
        "SELECT a.delivery_id, a.at, a.status, a.error FROM webhook_attempts a "
        "JOIN webhook_deliveries d ON d.id = a.delivery_id "
        "WHERE a.delivery_id IN (SELECT value FROM json_each(?)) "
        "AND a.attempt > d.attempt_count - ? ORDER BY a.delivery_id, a.attempt",
        (orjson.dumps([int(d.id) for d in deliveries]).decode(), MAX_ATTEMPTS_SHOWN),
    )
    attempts: dict[str, list[Attempt]] = {}
    for row in rows:
        attempts.setdefault(str(row[0]), []).append(Attempt(str(row[1]), row[2], row[3]))
    return [_attached(d, attempts.get(d.id, [])) for d in deliveries]


def _attached(delivery: Delivery, attempts: list[Attempt]) -> Delivery:
    return replace(delivery, attempts=tuple(attempts))


def _endpoint(row: Any) -> Endpoint:
    endpoint_id, url, events, workspace_id, secret, created_at, success, failing = row[:8]
    disabled_at, disabled_reason, previous_secret, previous_until = row[8:]
    return Endpoint(
        id=str(endpoint_id),
        url=str(url),
        events=tuple(orjson.loads(events)),
        workspace_id=workspace_id,
        secret=str(secret),
        created_at=str(created_at),
        last_success_at=success,
        failing_since=failing,
        disabled_at=disabled_at,
        disabled_reason=disabled_reason,
        previous_secret=previous_secret,
        previous_secret_until=previous_until,
    )


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=str(row[0]),
        endpoint_id=str(row[1]),
        message_id=str(row[2]),
        event_type=str(row[3]),
        subject=row[4],
        body=bytes(row[5]),
        created_at=str(row[6]),
        state=DeliveryState(row[7]),
        attempt_count=int(row[8]),
        next_attempt_at=row[9],
        lease_until=row[10],
        last_status=row[11],
        last_error=row[12],
        finished_at=row[13],
        retried_at=row[14],
    )
