"""`WebhookService`: sends the outbox's deliveries, on every instance.

One loop claims due deliveries (`WebhookStore.claim_deliveries`, under a lease) as long as
fewer than `max_in_flight` attempts run, and each claimed delivery is attempted by a task of
its own. At most `per_endpoint` deliveries of one endpoint are under a lease at a time (on
every instance together): a receiver that hangs, with a backlog, holds that many slots until
its attempts time out, and the other endpoints' deliveries take the rest. The loop wakes
when this instance commits deliveries (`watch_outbox`), when an attempt ends, when a retry it
scheduled is due, and every `poll_s` (deliveries other instances wrote, or leases that
expired).

Each attempt is signed afresh (its own `webhook-timestamp`), sent (`WebhookClient`) and
recorded under its lease: delivered, scheduled again (`RetryPolicy`, no sooner than the
receiver's `Retry-After` asks), or failed for good (410 Gone also disables the endpoint). A
store failure while recording leaves the lease to expire: the delivery is attempted again
(at least once, never lost). Delivered and failed deliveries are deleted after `keep_s`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from collab.delivery.client import AttemptResult, WebhookClient
from collab.delivery.retries import RetryPolicy, retry_after_s
from collab.delivery.sealing import SealError, SecretSealer
from collab.delivery.signing import signed_headers
from collab.errors import ConfigError, StoreError
from collab.observability.throttled import RateLimitedLog
from collab.store.rows import format_timestamp
from collab.store.webhooks import (
    AttemptRecord,
    ClaimedDelivery,
    SecretPair,
    WebhookStore,
    secret_pair,
)
from collab.tasks import cancel_and_wait

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 16
PER_ENDPOINT = 4
"""Deliveries of one endpoint under a lease at a time: a quarter of an instance's slots."""
POLL_S = 1.0
LEASE_S = 60.0
"""Longer than any attempt (`client.TIMEOUT_S`) and its recording."""
KEEP_S = 7 * 86400.0
PRUNE_EVERY_S = 3600.0
PRUNE_BATCH = 1000
OUTCOMES = ("delivered", "retried", "failed", "lost_lease", "not_signed")
"""Attempts by what came of them: delivered; failed and scheduled again; failed for good;
recorded too late (its lease had passed to another attempt); not made, this instance lacking
the key its secret is sealed with (postponed, nothing recorded)."""
UNSIGNED_RETRY_S = 5.0
"""How soon a delivery this instance could not sign is due again, for any instance."""

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class WebhookService:
    def __init__(
        self,
        store: WebhookStore,
        client: WebhookClient,
        policy: RetryPolicy,
        *,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
        sealer: SecretSealer | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
        per_endpoint: int = PER_ENDPOINT,
        poll_s: float = POLL_S,
        lease_s: float = LEASE_S,
        keep_s: float = KEEP_S,
    ) -> None:
        self.store = store
        self.client = client
        self.policy = policy
        self.sealer = sealer or SecretSealer()
        """How secrets are kept in the store (`COLLAB_WEBHOOK_SECRET_KEYS`)."""
        self._clock = clock
        self._rng = rng or random.Random()
        self._max_in_flight = max_in_flight
        self._per_endpoint = per_endpoint
        self._poll_s = poll_s
        self._lease_s = lease_s
        self._keep_s = keep_s
        self.outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._store_failing = False
        self._not_signed_log = RateLimitedLog(log)

    async def reseal(self) -> int:
        """Keep every stored secret as `sealer` keeps new ones: sealed with its first key, or
        as it is without keys (run at start, before anything is sent). A replaced secret that
        no longer signs is dropped. Raises `ConfigError`, writing nothing, naming each
        endpoint whose secret the configured keys cannot read. Returns how many endpoints
        were written."""
        now = format_timestamp(self._clock())
        problems: list[str] = []
        replacements: list[tuple[str, SecretPair, SecretPair]] = []
        for endpoint in await self.store.list_endpoints():
            stored = (endpoint.secret, endpoint.previous_secret)
            # What still signs, as stored: a replaced secret past its time is not kept.
            signing = endpoint.signing_secrets(now)
            if secret_pair(signing) == stored and all(self.sealer.is_current(s) for s in signing):
                continue
            try:
                resealed = [
                    self.sealer.seal(self.sealer.unseal(s, endpoint.id), endpoint.id)
                    for s in signing
                ]
            except SealError as error:
                problems.append(f"COLLAB_WEBHOOK_SECRET_KEYS: webhook {endpoint.id}: {error}")
                continue
            replacements.append((endpoint.id, stored, secret_pair(resealed)))
        if problems:
            # Nothing written: keys given by mistake seal nothing the right ones cannot read.
            raise ConfigError(problems)
        written = 0
        for endpoint_id, stored, replacement in replacements:
            # Lost to a rotation or another instance's sealing meanwhile: theirs stands.
            written += await self.store.replace_secrets(endpoint_id, stored, replacement)
        if written:
            log.info(
                "webhooks: stored the secrets of %d endpoints anew (COLLAB_WEBHOOK_SECRET_KEYS)",
                written,
            )
        return written

    async def start(self) -> None:
        await self.client.start()
        self.store.watch_outbox(self.wake)
        self._tasks = [
            asyncio.create_task(self._run(), name="webhooks"),
            asyncio.create_task(self._prune_loop(), name="webhooks-prune"),
        ]
        for task in self._tasks:
            task.add_done_callback(_report_end)

    async def close(self) -> None:
        """Stop claiming, let the attempts in flight end (each bounded by the client's
        timeout), close the client."""
        await cancel_and_wait(self._tasks)
        if self._timer is not None:
            self._timer.cancel()
        if self._in_flight:
            await asyncio.wait(list(self._in_flight))
        await self.client.close()

    def wake(self) -> None:
        """Look for due deliveries now."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            free = self._max_in_flight - len(self._in_flight)
            claimed = await self._claim(free) if free > 0 else []
            for delivery in claimed:
                task = asyncio.create_task(self._attempt(delivery), name="webhook-attempt")
                self._in_flight.add(task)
                task.add_done_callback(self._attempt_done)
            if claimed and len(claimed) == free:
                continue  # more may be due: claim again once a slot frees or now
            try:
                async with asyncio.timeout(self._poll_s):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _claim(self, limit: int) -> list[ClaimedDelivery]:
        now = self._clock()
        try:
            claimed = await self.store.claim_deliveries(
                now=format_timestamp(now),
                lease_until=format_timestamp(now + timedelta(seconds=self._lease_s)),
                lease=uuid.uuid4().hex,
                limit=limit,
                per_endpoint=self._per_endpoint,
            )
        except StoreError as error:
            if not self._store_failing:
                log.warning("webhooks: claiming deliveries failed, retrying: %s", error)
            self._store_failing = True
            return []
        if self._store_failing:
            log.info("webhooks: claiming deliveries works again")
            self._store_failing = False
        return claimed

    def _attempt_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("webhooks: an attempt failed", exc_info=task.exception())
        self.wake()

    async def _attempt(self, claimed: ClaimedDelivery) -> None:
        delivery = claimed.delivery
        timestamp = int(self._clock().timestamp())
        try:
            secrets = tuple(self.sealer.unseal(s, delivery.endpoint_id) for s in claimed.secrets)
        except SealError as error:
            await self._postpone(claimed, error)
            return
        headers = signed_headers(secrets, delivery.message_id, timestamp, delivery.body)
        result = await self.client.post(claimed.url, headers, delivery.body)
        now = self._clock()
        next_at = (
            None
            if result.ok or result.gone
            else self._next_attempt(claimed, now, retry_after_s(result.retry_after, now))
        )
        record = AttemptRecord(
            at=format_timestamp(now),
            status=result.status,
            error=result.error,
            delivered=result.ok,
            next_attempt_at=None if next_at is None else format_timestamp(next_at),
            failing_from=delivery.retried_at or delivery.created_at,
            gone=result.gone,
        )
        try:
            recorded = await self.store.record_attempt(
                delivery.id, claimed.lease, record, disable_after_s=self.policy.retry_s
            )
        except StoreError as error:
            # Its lease expires and it is attempted again: delivered at least once.
            log.warning(
                "webhooks: delivery %s to %s: attempt not recorded: %s",
                delivery.id,
                delivery.endpoint_id,
                error,
            )
            return
        self._count(claimed, result, recorded, next_at, now)

    async def _postpone(self, claimed: ClaimedDelivery, error: SealError) -> None:
        """This instance lacks the key the secret was sealed with (a rollout of
        COLLAB_WEBHOOK_SECRET_KEYS under way): not the receiver's failure, so no attempt is
        recorded; the delivery is due again soon, for an instance that has the key."""
        delivery = claimed.delivery
        self.outcomes["not_signed"] += 1
        # Every delivery waiting while the rollout lasts comes here every few seconds.
        self._not_signed_log.warning(
            "webhooks: delivery %s to %s cannot be signed here, left for another instance: %s",
            delivery.id,
            delivery.endpoint_id,
            error,
        )
        until = format_timestamp(self._clock() + timedelta(seconds=UNSIGNED_RETRY_S))
        try:
            await self.store.postpone_delivery(delivery.id, claimed.lease, until=until)
        except StoreError as store_error:
            # Its lease expires instead.
            log.warning("webhooks: delivery %s: not postponed: %s", delivery.id, store_error)

    def _next_attempt(
        self, claimed: ClaimedDelivery, now: datetime, wait_s: float | None
    ) -> datetime | None:
        delivery = claimed.delivery
        if delivery.retried_at is not None:
            return None  # an operator's one more attempt
        created_at = datetime.fromisoformat(delivery.created_at)
        return self.policy.next_attempt(
            created_at, delivery.attempt_count + 1, now, self._rng, wait_s=wait_s
        )

    def _count(
        self,
        claimed: ClaimedDelivery,
        result: AttemptResult,
        recorded: bool,
        next_at: datetime | None,
        now: datetime,
    ) -> None:
        delivery = claimed.delivery
        if not recorded:
            self.outcomes["lost_lease"] += 1
            log.info(
                "webhooks: delivery %s: its lease passed on before it was recorded", delivery.id
            )
        elif result.ok:
            self.outcomes["delivered"] += 1
        elif next_at is not None:
            self.outcomes["retried"] += 1
            log.info(
                "webhooks: delivery %s (%s) to %s failed, retried at %s: %s",
                delivery.id,
                delivery.event_type,
                delivery.endpoint_id,
                format_timestamp(next_at),
                result.error,
            )
            self._wake_at(next_at, now)
        else:
            self.outcomes["failed"] += 1
            log.warning(
                "webhooks: delivery %s (%s) to %s failed for good: %s",
                delivery.id,
                delivery.event_type,
                delivery.endpoint_id,
                result.error,
            )

    def _wake_at(self, moment: datetime, now: datetime) -> None:
        delay_s = max(0.0, (moment - now).total_seconds())
        loop = asyncio.get_running_loop()
        when = loop.time() + delay_s
        if self._timer is not None and self._timer.when() <= when and not self._timer.cancelled():
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(when, self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        self.wake()

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_EVERY_S)
            cutoff = format_timestamp(self._clock() - timedelta(seconds=self._keep_s))
            try:
                while (
                    await self.store.delete_finished_deliveries(
                        finished_before=cutoff, limit=PRUNE_BATCH
                    )
                    == PRUNE_BATCH
                ):
                    pass
            except StoreError as error:
                log.warning("webhooks: deleting old deliveries failed: %s", error)


def _report_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("webhooks: %s stopped", task.get_name(), exc_info=task.exception())
