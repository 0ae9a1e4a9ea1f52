"""The webhook endpoints and outbox of `MemoryStore`: the reference for what every backend
answers. The SQL backends are held to the same answers by the webhook contract suite."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

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
    WebhookRoutes,
    clip_error,
    delivery_number,
    disabling_reason,
    failing_start,
    page_limit,
)


@dataclass(slots=True)
class _Row:
    delivery: Delivery
    lease: str | None
    history: list[Attempt]


class MemoryWebhooks(WebhookOutbox[None]):
    """Endpoints by id; deliveries by number (dicts keep insertion order: id order)."""

    def __init__(self) -> None:
        # Read at every check: the endpoints are right here.
        super().__init__(WebhookRoutes(ttl_s=0.0))
        self._endpoints: dict[str, Endpoint] = {}
        self._rows: dict[int, _Row] = {}
        self._last_id = 0

    async def _read_routes(self, conn: None) -> Routes:
        return [
            (e.workspace_id, e.events) for e in self._endpoints.values() if e.disabled_at is None
        ]

    async def _insert(self, conn: None, events: Sequence[WebhookEvent]) -> None:
        now = format_timestamp()
        written = False
        for event in events:
            for endpoint in sorted(self._endpoints.values(), key=lambda e: e.id):
                if endpoint.wants(event.type, event.workspace_id):
                    self._add_row(endpoint.id, event, now)
                    written = True
        if written:
            self.notify()

    def add_test_delivery(self, endpoint_id: str, event: WebhookEvent) -> Delivery | None:
        if endpoint_id not in self._endpoints:
            return None
        row = self._add_row(endpoint_id, event, format_timestamp())
        self.notify()
        return row.delivery

    def _add_row(self, endpoint_id: str, event: WebhookEvent, now: str) -> _Row:
        self._last_id += 1
        row = _Row(
            Delivery(
                id=str(self._last_id),
                endpoint_id=endpoint_id,
                message_id=event.message_id,
                event_type=event.type,
                subject=event.subject,
                body=event.body,
                created_at=now,
                state=DeliveryState.PENDING,
                attempt_count=0,
                next_attempt_at=now,
                lease_until=None,
                last_status=None,
                last_error=None,
                finished_at=None,
                retried_at=None,
            ),
            None,
            [],
        )
        self._rows[self._last_id] = row
        return row

    def add_endpoint(self, endpoint: Endpoint) -> None:
        self._endpoints[endpoint.id] = endpoint

    def list_endpoints(self) -> list[Endpoint]:
        return [self._endpoints[key] for key in sorted(self._endpoints)]

    def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        return self._endpoints.get(endpoint_id)

    def delete_endpoint(self, endpoint_id: str) -> bool:
        if self._endpoints.pop(endpoint_id, None) is None:
            return False
        for number in [
            n for n, row in self._rows.items() if row.delivery.endpoint_id == endpoint_id
        ]:
            del self._rows[number]
        return True

    def update_endpoint(
        self, endpoint_id: str, change: EndpointChange, *, at: str
    ) -> Endpoint | None:
        endpoint = self._endpoints.get(endpoint_id)
        if endpoint is None:
            return None
        if change.url is not None:
            endpoint = replace(endpoint, url=change.url)
        if change.events is not None:
            endpoint = replace(endpoint, events=change.events)
        if change.workspace_id is not KEEP:
            endpoint = replace(endpoint, workspace_id=change.workspace_id)
        if change.enabled is True:
            endpoint = replace(endpoint, disabled_at=None, disabled_reason=None, failing_since=None)
        elif change.enabled is False and endpoint.disabled_at is None:
            endpoint = replace(endpoint, disabled_at=at, disabled_reason=DISABLED_BY_OPERATOR)
        self._endpoints[endpoint_id] = endpoint
        return endpoint

    def replace_secrets(
        self,
        endpoint_id: str,
        expected: SecretPair,
        replacement: SecretPair,
    ) -> bool:
        endpoint = self._endpoints.get(endpoint_id)
        if endpoint is None or (endpoint.secret, endpoint.previous_secret) != expected:
            return False
        secret, previous = replacement
        self._endpoints[endpoint_id] = replace(endpoint, secret=secret, previous_secret=previous)
        return True

    def rotate_secret(
        self, endpoint_id: str, secret: str, *, previous_until: str | None
    ) -> Endpoint | None:
        endpoint = self._endpoints.get(endpoint_id)
        if endpoint is None:
            return None
        rotated = replace(
            endpoint,
            secret=secret,
            previous_secret=None if previous_until is None else endpoint.secret,
            previous_secret_until=previous_until,
        )
        self._endpoints[endpoint_id] = rotated
        return rotated

    def claim_deliveries(
        self,
        *,
        now: str,
        lease_until: str,
        lease: str,
        limit: int,
        per_endpoint: int | None = None,
    ) -> list[ClaimedDelivery]:
        blocked: set[tuple[str, str]] = set()
        due: list[tuple[str, int]] = []
        leased: dict[str, int] = {}
        for number, row in self._rows.items():
            d = row.delivery
            if d.state is not DeliveryState.PENDING:
                continue
            if _leased(d, now):
                leased[d.endpoint_id] = leased.get(d.endpoint_id, 0) + 1
            key = (d.endpoint_id, d.subject) if d.subject is not None else None
            if key is not None and key in blocked:
                continue
            if key is not None:
                blocked.add(key)
            endpoint = self._endpoints.get(d.endpoint_id)
            if endpoint is None or endpoint.disabled_at is not None:
                continue
            if d.next_attempt_at is not None and d.next_attempt_at <= now and not _leased(d, now):
                due.append((d.next_attempt_at, number))
        claimed: list[ClaimedDelivery] = []
        for _, number in sorted(due):
            if len(claimed) >= limit:
                break
            row = self._rows[number]
            endpoint_id = row.delivery.endpoint_id
            if per_endpoint is not None:
                if leased.get(endpoint_id, 0) >= per_endpoint:
                    continue
                leased[endpoint_id] = leased.get(endpoint_id, 0) + 1
            row.delivery = replace(row.delivery, lease_until=lease_until)
            row.lease = lease
            endpoint = self._endpoints[row.delivery.endpoint_id]
            secrets = endpoint.signing_secrets(now)
            claimed.append(ClaimedDelivery(row.delivery, endpoint.url, secrets, lease))
        return claimed

    def record_attempt(
        self, delivery_id: str, lease: str, record: AttemptRecord, *, disable_after_s: float
    ) -> bool:
        number = delivery_number(delivery_id)
        row = None if number is None else self._rows.get(number)
        if row is None or row.lease != lease or row.delivery.state is not DeliveryState.PENDING:
            return False
        error = clip_error(record.error)
        state, next_at, finished = record.outcome()
        row.delivery = replace(
            row.delivery,
            state=state,
            attempt_count=row.delivery.attempt_count + 1,
            next_attempt_at=next_at,
            lease_until=None,
            last_status=record.status,
            last_error=error,
            finished_at=finished,
        )
        row.lease = None
        row.history.append(Attempt(record.at, record.status, error))
        endpoint_id = row.delivery.endpoint_id
        endpoint = self._endpoints[endpoint_id]
        if record.delivered:
            self._endpoints[endpoint_id] = replace(
                endpoint, failing_since=None, last_success_at=record.at
            )
            return True
        since = endpoint.failing_since or failing_start(record, endpoint.last_success_at)
        endpoint = replace(endpoint, failing_since=since)
        reason = disabling_reason(record, since, disable_after_s)
        if endpoint.disabled_at is None and reason is not None:
            endpoint = replace(endpoint, disabled_at=record.at, disabled_reason=reason)
            self._fail_pending(endpoint_id, record.at)
        self._endpoints[endpoint_id] = endpoint
        return True

    def list_deliveries(
        self, endpoint_id: str, *, limit: int, before: str | None
    ) -> list[Delivery]:
        bound = None if before is None else delivery_number(before)
        if before is not None and bound is None:
            return []
        found: list[Delivery] = []
        for number, row in reversed(self._rows.items()):
            if len(found) == page_limit(limit):
                break
            if row.delivery.endpoint_id == endpoint_id and (bound is None or number < bound):
                found.append(_shown(row))
        return found

    def get_delivery(self, endpoint_id: str, delivery_id: str) -> Delivery | None:
        row = self._row(endpoint_id, delivery_id)
        return None if row is None else _shown(row)

    def postpone_delivery(self, delivery_id: str, lease: str, *, until: str) -> bool:
        number = delivery_number(delivery_id)
        row = None if number is None else self._rows.get(number)
        if row is None or row.lease != lease or row.delivery.state is not DeliveryState.PENDING:
            return False
        row.delivery = replace(row.delivery, next_attempt_at=until, lease_until=None)
        row.lease = None
        return True

    def retry_delivery(self, endpoint_id: str, delivery_id: str, *, now: str) -> Delivery | None:
        row = self._row(endpoint_id, delivery_id)
        if row is None:
            return None
        if _leased(row.delivery, now):
            return _shown(row)
        row.delivery = replace(
            row.delivery,
            state=DeliveryState.PENDING,
            next_attempt_at=now,
            lease_until=None,
            finished_at=None,
            retried_at=now,
        )
        row.lease = None
        endpoint = self._endpoints[endpoint_id]
        self._endpoints[endpoint_id] = replace(
            endpoint, failing_since=None, disabled_at=None, disabled_reason=None
        )
        self.notify()
        return _shown(row)

    def delete_finished_deliveries(self, *, finished_before: str, limit: int) -> int:
        gone = [
            number
            for number, row in self._rows.items()
            if row.delivery.finished_at is not None and row.delivery.finished_at < finished_before
        ][: max(0, limit)]
        for number in gone:
            del self._rows[number]
        return len(gone)

    def _fail_pending(self, endpoint_id: str, at: str) -> None:
        for row in self._rows.values():
            d = row.delivery
            if d.endpoint_id == endpoint_id and d.state is DeliveryState.PENDING:
                row.delivery = replace(
                    d,
                    state=DeliveryState.FAILED,
                    next_attempt_at=None,
                    lease_until=None,
                    finished_at=at,
                    last_error=ENDPOINT_DISABLED,
                )
                row.lease = None

    def _row(self, endpoint_id: str, delivery_id: str) -> _Row | None:
        number = delivery_number(delivery_id)
        row = None if number is None else self._rows.get(number)
        return row if row is not None and row.delivery.endpoint_id == endpoint_id else None


def _leased(delivery: Delivery, now: str) -> bool:
    return delivery.lease_until is not None and delivery.lease_until > now


def _shown(row: _Row) -> Delivery:
    return replace(row.delivery, attempts=tuple(row.history[-MAX_ATTEMPTS_SHOWN:]))
