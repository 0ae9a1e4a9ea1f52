"""The webhook endpoints and outbox of `PostgresStore`, as statements over an asyncpg
connection.

Several instances share the database:

- **Outbox order.** A transaction writing deliveries takes the outbox lock
  (`OUTBOX_LOCK_NAMESPACE`) just before it inserts them and holds it to commit, so delivery
  ids are drawn in commit order: of two deliveries of one subject, the one committed first
  has the smaller id and goes out first. It is the last lock such a transaction takes, and
  it is held only for the insert and the commit.
- **Claims.** `claim_deliveries` is one statement reading the due rows `FOR UPDATE SKIP
  LOCKED`: of instances claiming at once, each row goes to one, and a row another instance
  leased is left alone until its lease expires (a claim that commits meanwhile is seen:
  the due condition is checked again on the row's newest version).
- **Records.** `record_attempt` writes only while the claim's lease token is the row's.

`PostgresOutbox` remembers which connections' transactions wrote deliveries; the store tells
the watchers once their transaction committed (`PostgresStore._connection`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

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

# The outbox lock, in the two-int4 advisory key space ("collab webhook outbox" as ASCII).
OUTBOX_LOCK_NAMESPACE = int.from_bytes(b"clwo", "big")
_OUTBOX_LOCK_KEY = 0
# Claims bounded per endpoint take turns under this key: each counts the leases of claims
# committed before it, which a concurrent claim's are not yet.
_CLAIM_LOCK_KEY = 1
_MAX_ID = 2**63 - 1
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


class PostgresOutbox(WebhookOutbox[Any]):
    def __init__(self) -> None:
        super().__init__()
        self._written: set[int] = set()

    def wrote(self, conn: Any) -> None:
        """Tell the watchers once `conn`'s transaction commits."""
        self._written.add(id(conn))

    def take(self, conn: Any) -> bool:
        """Whether `conn`'s transaction wrote deliveries (and forget it)."""
        if id(conn) not in self._written:
            return False
        self._written.discard(id(conn))
        return True

    async def _read_routes(self, conn: Any) -> Routes:
        rows = await conn.fetch(
            "SELECT workspace_id, events FROM webhook_endpoints WHERE disabled_at IS NULL"
        )
        return [(row["workspace_id"], list(row["events"])) for row in rows]

    async def _insert(self, conn: Any, events: Sequence[WebhookEvent]) -> None:
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1, $2)", OUTBOX_LOCK_NAMESPACE, _OUTBOX_LOCK_KEY
        )
        await conn.execute(
            "INSERT INTO webhook_deliveries (endpoint_id, message_id, event_type, subject, body, "
            "created_at, state, next_attempt_at) "
            "SELECT e.id, v.message_id, v.event_type, v.subject, v.body, $6, 'pending', $6 "
            "FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[]) "
            "WITH ORDINALITY AS v (message_id, event_type, subject, body, workspace_id, n) "
            "JOIN webhook_endpoints e ON e.disabled_at IS NULL "
            "AND (e.workspace_id IS NULL OR e.workspace_id = v.workspace_id) "
            "AND v.event_type = ANY (e.events) ORDER BY v.n, e.id",
            [e.message_id for e in events],
            [e.type for e in events],
            [e.subject for e in events],
            [e.body for e in events],
            [e.workspace_id for e in events],
            format_timestamp(),
        )
        self.wrote(conn)


async def lock_trashed(conn: Any, workspace_id: str, note_id: str) -> bool:
    """Whether the note is in the trash, its row locked until the transaction ends (so of two
    restores at once, one reports it)."""
    trashed = await conn.fetchval(
        "SELECT trashed_at IS NOT NULL FROM notes WHERE workspace_id = $1 AND note_id = $2 "
        "FOR UPDATE",
        workspace_id,
        note_id,
    )
    return bool(trashed)


async def add_endpoint(conn: Any, endpoint: Endpoint) -> None:
    await conn.execute(
        f"INSERT INTO webhook_endpoints ({_ENDPOINT_COLUMNS}) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        endpoint.id,
        endpoint.url,
        list(endpoint.events),
        endpoint.workspace_id,
        endpoint.secret,
        endpoint.created_at,
        endpoint.last_success_at,
        endpoint.failing_since,
        endpoint.disabled_at,
        endpoint.disabled_reason,
        endpoint.previous_secret,
        endpoint.previous_secret_until,
    )


async def list_endpoints(conn: Any) -> list[Endpoint]:
    rows = await conn.fetch(f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY id")
    return [_endpoint(row) for row in rows]


async def get_endpoint(conn: Any, endpoint_id: str) -> Endpoint | None:
    row = await conn.fetchrow(
        f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1", endpoint_id
    )
    return None if row is None else _endpoint(row)


async def delete_endpoint(conn: Any, endpoint_id: str) -> bool:
    # Its deliveries and their attempts go with it (ON DELETE CASCADE, migration 0010).
    deleted = await conn.fetchval(
        "DELETE FROM webhook_endpoints WHERE id = $1 RETURNING true", endpoint_id
    )
    return deleted is not None


async def add_test_delivery(
    conn: Any, outbox: PostgresOutbox, endpoint_id: str, event: WebhookEvent
) -> Delivery | None:
    now = format_timestamp()
    number = await conn.fetchval(
        "INSERT INTO webhook_deliveries (endpoint_id, message_id, event_type, subject, body, "
        "created_at, state, next_attempt_at) "
        "SELECT id, $1, $2, $3, $4, $5, 'pending', $5 FROM webhook_endpoints WHERE id = $6 "
        "RETURNING id",
        event.message_id,
        event.type,
        event.subject,
        event.body,
        now,
        endpoint_id,
    )
    if number is None:
        return None
    outbox.wrote(conn)
    return await get_delivery(conn, endpoint_id, str(number))


async def postpone_delivery(conn: Any, delivery_id: str, lease: str, until: str) -> bool:
    number = delivery_number(delivery_id)
    if number is None:
        return False
    postponed = await conn.fetchval(
        "UPDATE webhook_deliveries SET next_attempt_at = $1, lease = NULL, lease_until = NULL "
        "WHERE id = $2 AND lease = $3 AND state = 'pending' RETURNING true",
        until,
        number,
        lease,
    )
    return postponed is not None


async def update_endpoint(
    conn: Any, endpoint_id: str, change: EndpointChange, *, at: str
) -> Endpoint | None:
    # Only the fields `change` names are written: what an attempt records meanwhile stays.
    keep_workspace = change.workspace_id is KEEP
    row = await conn.fetchrow(
        "UPDATE webhook_endpoints SET url = coalesce($1, url), events = coalesce($2, events), "
        "workspace_id = CASE WHEN $3 THEN workspace_id ELSE $4 END, "
        "disabled_at = CASE $5::boolean WHEN true THEN NULL "
        "WHEN false THEN coalesce(disabled_at, $6) ELSE disabled_at END, "
        "disabled_reason = CASE $5::boolean WHEN true THEN NULL "
        "WHEN false THEN CASE WHEN disabled_at IS NULL THEN $7 ELSE disabled_reason END "
        "ELSE disabled_reason END, "
        "failing_since = CASE WHEN $5::boolean THEN NULL ELSE failing_since END "
        f"WHERE id = $8 RETURNING {_ENDPOINT_COLUMNS}",
        change.url,
        None if change.events is None else list(change.events),
        keep_workspace,
        None if keep_workspace else change.workspace_id,
        change.enabled,
        at,
        DISABLED_BY_OPERATOR,
        endpoint_id,
    )
    return None if row is None else _endpoint(row)


async def replace_secrets(
    conn: Any,
    endpoint_id: str,
    expected: SecretPair,
    replacement: SecretPair,
) -> bool:
    replaced = await conn.fetchval(
        "UPDATE webhook_endpoints SET secret = $1, previous_secret = $2 "
        "WHERE id = $3 AND secret = $4 AND previous_secret IS NOT DISTINCT FROM $5::text "
        "RETURNING true",
        *replacement,
        endpoint_id,
        *expected,
    )
    return replaced is not None


async def rotate_secret(
    conn: Any, endpoint_id: str, secret: str, *, previous_until: str | None
) -> Endpoint | None:
    # The right-hand sides read the row as it was: the replaced secret becomes the previous.
    row = await conn.fetchrow(
        "UPDATE webhook_endpoints SET secret = $1, "
        "previous_secret = CASE WHEN $2::text IS NULL THEN NULL ELSE secret END, "
        f"previous_secret_until = $2 WHERE id = $3 RETURNING {_ENDPOINT_COLUMNS}",
        secret,
        previous_until,
        endpoint_id,
    )
    return None if row is None else _endpoint(row)


_DUE = (
    "c.state = 'pending' AND c.next_attempt_at <= $3 "
    "AND (c.lease_until IS NULL OR c.lease_until <= $3) "
    "AND (c.subject IS NULL OR NOT EXISTS (SELECT 1 FROM webhook_deliveries p "
    "WHERE p.state = 'pending' AND p.endpoint_id = c.endpoint_id "
    "AND p.subject = c.subject AND p.id < c.id))"
)
_CLAIMED = (
    f"WHERE d.id = due.id RETURNING {_DELIVERY_COLUMNS}, due.url, due.secret, "
    "due.previous_secret, due.previous_secret_until"
)
_CLAIM = (
    "UPDATE webhook_deliveries d SET lease = $1, lease_until = $2 FROM ("
    "SELECT c.id, e.url, e.secret, e.previous_secret, e.previous_secret_until "
    "FROM webhook_deliveries c JOIN webhook_endpoints e ON e.id = c.endpoint_id "
    "WHERE " + _DUE + " AND e.disabled_at IS NULL "
    "ORDER BY c.next_attempt_at, c.id LIMIT $4 FOR UPDATE OF c SKIP LOCKED) AS due " + _CLAIMED
)
# The first `per_endpoint` due deliveries of each enabled endpoint (migration 0015's index),
# locked, numbered per endpoint beside the endpoint's deliveries under a lease; those that
# keep the endpoint within `per_endpoint`, earliest due first. (PostgreSQL takes no variable
# in a LIMIT, and no window function where rows are locked: hence the two levels.)
_CLAIM_PER_ENDPOINT = (
    "UPDATE webhook_deliveries d SET lease = $1, lease_until = $2 FROM ("
    "SELECT ranked.id, ranked.url, ranked.secret, ranked.previous_secret, "
    "ranked.previous_secret_until FROM (SELECT picked.id, picked.next_attempt_at, e.url, "
    "e.secret, e.previous_secret, e.previous_secret_until, row_number() OVER ("
    "PARTITION BY e.id ORDER BY picked.next_attempt_at, picked.id) AS nth, "
    "(SELECT count(*) FROM webhook_deliveries b WHERE b.endpoint_id = e.id "
    "AND b.state = 'pending' AND b.lease_until IS NOT NULL AND b.lease_until > $3) AS leased "
    "FROM webhook_endpoints e CROSS JOIN LATERAL (SELECT c.id, c.next_attempt_at "
    "FROM webhook_deliveries c WHERE c.endpoint_id = e.id AND " + _DUE + " "
    "ORDER BY c.next_attempt_at, c.id LIMIT $5 FOR UPDATE OF c SKIP LOCKED) AS picked "
    "WHERE e.disabled_at IS NULL) AS ranked WHERE ranked.nth + ranked.leased <= $5 "
    "ORDER BY ranked.next_attempt_at, ranked.id LIMIT $4) AS due " + _CLAIMED
)


async def claim_deliveries(
    conn: Any,
    *,
    now: str,
    lease_until: str,
    lease: str,
    limit: int,
    per_endpoint: int | None = None,
) -> list[ClaimedDelivery]:
    if per_endpoint is None:
        rows = await conn.fetch(_CLAIM, lease, lease_until, now, max(0, limit))
    else:
        async with conn.transaction(isolation="read_committed"):
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, $2)", OUTBOX_LOCK_NAMESPACE, _CLAIM_LOCK_KEY
            )
            # A statement of its own after the lock: its snapshot holds the leases of the
            # claim that held it before.
            rows = await conn.fetch(
                _CLAIM_PER_ENDPOINT, lease, lease_until, now, max(0, limit), max(0, per_endpoint)
            )
    claimed = [
        ClaimedDelivery(
            _delivery(row),
            str(row["url"]),
            signing_secrets(
                str(row["secret"]), row["previous_secret"], row["previous_secret_until"], now
            ),
            lease,
        )
        for row in rows
    ]
    return sorted(claimed, key=lambda c: (c.delivery.next_attempt_at or "", int(c.delivery.id)))


async def record_attempt(
    conn: Any, delivery_id: str, lease: str, record: AttemptRecord, *, disable_after_s: float
) -> bool:
    number = delivery_number(delivery_id)
    if number is None:
        return False
    state, next_at, finished = record.outcome()
    error = clip_error(record.error)
    found = await conn.fetchrow(
        "UPDATE webhook_deliveries SET state = $1, attempt_count = attempt_count + 1, "
        "next_attempt_at = $2, lease = NULL, lease_until = NULL, last_status = $3, "
        "last_error = $4, finished_at = $5 WHERE id = $6 AND lease = $7 AND state = 'pending' "
        "RETURNING endpoint_id, attempt_count",
        state.value,
        next_at,
        record.status,
        error,
        finished,
        number,
        lease,
    )
    if found is None:
        return False
    endpoint_id = str(found["endpoint_id"])
    await conn.execute(
        "INSERT INTO webhook_attempts (delivery_id, attempt, at, status, error) "
        "VALUES ($1, $2, $3, $4, $5)",
        number,
        int(found["attempt_count"]),
        record.at,
        record.status,
        error,
    )
    if record.delivered:
        await conn.execute(
            "UPDATE webhook_endpoints SET failing_since = NULL, last_success_at = $1 WHERE id = $2",
            record.at,
            endpoint_id,
        )
        return True
    endpoint = await conn.fetchrow(
        "UPDATE webhook_endpoints SET failing_since = "
        "coalesce(failing_since, greatest($1, last_success_at)) "
        "WHERE id = $2 RETURNING failing_since, disabled_at",
        record.failing_from,
        endpoint_id,
    )
    if endpoint is None or endpoint["disabled_at"] is not None:
        return True
    since = str(endpoint["failing_since"])
    reason = disabling_reason(record, since, disable_after_s)
    if reason is not None:
        await conn.execute(
            "UPDATE webhook_endpoints SET disabled_at = $1, disabled_reason = $2 WHERE id = $3",
            record.at,
            reason,
            endpoint_id,
        )
        await conn.execute(
            "UPDATE webhook_deliveries SET state = 'failed', next_attempt_at = NULL, "
            "lease = NULL, lease_until = NULL, finished_at = $1, last_error = $2 "
            "WHERE endpoint_id = $3 AND state = 'pending'",
            record.at,
            ENDPOINT_DISABLED,
            endpoint_id,
        )
    return True


async def list_deliveries(
    conn: Any, endpoint_id: str, *, limit: int, before: str | None
) -> list[Delivery]:
    bound = _MAX_ID if before is None else delivery_number(before)
    if bound is None:
        return []
    rows = await conn.fetch(
        f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d "
        "WHERE d.endpoint_id = $1 AND d.id < $2 ORDER BY d.id DESC LIMIT $3",
        endpoint_id,
        bound,
        page_limit(limit),
    )
    return await _with_attempts(conn, [_delivery(row) for row in rows])


async def get_delivery(conn: Any, endpoint_id: str, delivery_id: str) -> Delivery | None:
    number = delivery_number(delivery_id)
    if number is None:
        return None
    row = await conn.fetchrow(
        f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d "
        "WHERE d.id = $1 AND d.endpoint_id = $2",
        number,
        endpoint_id,
    )
    if row is None:
        return None
    return (await _with_attempts(conn, [_delivery(row)]))[0]


async def retry_delivery(
    conn: Any, outbox: PostgresOutbox, endpoint_id: str, delivery_id: str, now: str
) -> Delivery | None:
    number = delivery_number(delivery_id)
    if number is None:
        return None
    retried = await conn.fetchval(
        "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $1, lease = NULL, "
        "lease_until = NULL, finished_at = NULL, retried_at = $1 "
        "WHERE id = $2 AND endpoint_id = $3 AND (lease_until IS NULL OR lease_until <= $1) "
        "RETURNING true",
        now,
        number,
        endpoint_id,
    )
    if retried is not None:
        await conn.execute(
            "UPDATE webhook_endpoints SET failing_since = NULL, disabled_at = NULL, "
            "disabled_reason = NULL WHERE id = $1",
            endpoint_id,
        )
        outbox.routes.forget()
        outbox.wrote(conn)
    return await get_delivery(conn, endpoint_id, delivery_id)


async def delete_finished_deliveries(conn: Any, *, finished_before: str, limit: int) -> int:
    # Their attempts go with them (ON DELETE CASCADE, migration 0010).
    rows = await conn.fetch(
        "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries "
        "WHERE finished_at IS NOT NULL AND finished_at < $1 ORDER BY finished_at LIMIT $2) "
        "RETURNING id",
        finished_before,
        max(0, limit),
    )
    return len(rows)


async def _with_attempts(conn: Any, deliveries: list[Delivery]) -> list[Delivery]:
    if not deliveries:
        return []
    rows = await conn.fetch(
        "SELECT a.delivery_id, a.at, a.status, a.error FROM webhook_attempts a "
        "JOIN webhook_deliveries d ON d.id = a.delivery_id "
        "WHERE a.delivery_id = ANY ($1::bigint[]) AND a.attempt > d.attempt_count - $2 "
        "ORDER BY a.delivery_id, a.attempt",
        [int(d.id) for d in deliveries],
        MAX_ATTEMPTS_SHOWN,
    )
    attempts: dict[str, list[Attempt]] = {}
    for row in rows:
        attempt = Attempt(str(row["at"]), row["status"], row["error"])
        attempts.setdefault(str(row["delivery_id"]), []).append(attempt)
    return [replace(d, attempts=tuple(attempts.get(d.id, ()))) for d in deliveries]


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(
        id=str(row["id"]),
        url=str(row["url"]),
        events=tuple(row["events"]),
        workspace_id=row["workspace_id"],
        secret=str(row["secret"]),
        created_at=str(row["created_at"]),
        last_success_at=row["last_success_at"],
        failing_since=row["failing_since"],
        disabled_at=row["disabled_at"],
        disabled_reason=row["disabled_reason"],
        previous_secret=row["previous_secret"],
        previous_secret_until=row["previous_secret_until"],
    )


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=str(row["id"]),
        endpoint_id=str(row["endpoint_id"]),
        message_id=str(row["message_id"]),
        event_type=str(row["event_type"]),
        subject=row["subject"],
        body=bytes(row["body"]),
        created_at=str(row["created_at"]),
        state=DeliveryState(row["state"]),
        attempt_count=int(row["attempt_count"]),
        next_attempt_at=row["next_attempt_at"],
        lease_until=row["lease_until"],
        last_status=row["last_status"],
        last_error=row["last_error"],
        finished_at=row["finished_at"],
        retried_at=row["retried_at"],
    )
