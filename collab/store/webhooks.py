"""The `WebhookStore` interface: operators' webhook endpoints and a transactional outbox.

Part of `Database`. An **endpoint** (a URL, the event types it wants, optionally one
workspace, its signing secret) is registered by an operator. Each change worth reporting
(`EVENT_TYPES`) is written by the store, **in the transaction of the change**, as one
**delivery** row per enabled endpoint that wants it (`WebhookOutbox`): a change that rolls
back reports nothing, and one that commits is delivered at least once, even if the process
dies right after. Without an endpoint wanting an event nothing is written, and the check
costs no query while each store instance's cached routes are fresh (`WebhookRoutes`).

An endpoint's secret can be rotated (`rotate_secret`): the replaced secret keeps signing
beside the new one until a time the operator chose, so the receiver can switch without
refusing anything (Standard Webhooks' space-separated signatures).

Deliveries are sent by whichever instance claims them (`claim_deliveries`), under a lease:
an instance that dies mid-attempt loses its lease when it expires, and another sends again.
A delivery with a `subject` (a note, a member) waits while an earlier delivery of the same
subject to the same endpoint is pending, so each endpoint receives the events of one note in
the order they were committed. Delivery ids grow in commit order per subject in every
backend. Times are `format_timestamp` strings, compared as text (fixed width, UTC).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, StrEnum
from typing import Protocol

EVENT_TYPES: tuple[str, ...] = (
    "note.created",
    "note.updated",
    "note.trashed",
    "note.restored",
    "note.purged",
    "notification.created",
    "version.created",
    "member.added",
    "member.removed",
)
INDEX_EVENTS = ("note.created", "note.updated")
"""What `index_notes` may write."""
MAX_DELIVERY_PAGE = 100
MAX_ATTEMPTS_SHOWN = 20
"""The attempts a delivery lists: its latest ones."""
ROUTES_TTL_S = 0.5
"""How long a store instance trusts the endpoints it last read before reading them again
(inside the transaction of the next change that might report something)."""
MAX_ERROR_CHARS = 500
ENDPOINT_DISABLED = "its endpoint was disabled"
"""The last error of the pending deliveries an endpoint's disabling fails."""


class DeliveryState(StrEnum):
    PENDING = "pending"
    """Waiting for its (next) attempt, or being attempted under a lease."""
    DELIVERED = "delivered"
    """An attempt was answered with a 2xx status."""
    FAILED = "failed"
    """Failed for good: out of retries, or its endpoint was disabled."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    url: str
    events: tuple[str, ...]
    workspace_id: str | None
    """Only this workspace's events; None: every workspace's."""
    secret: str = field(repr=False)
    """`whsec_` and the base64 of the signing key (Standard Webhooks)."""
    created_at: str
    last_success_at: str | None = None
    """When an attempt last succeeded."""
    failing_since: str | None = None
    """Since when it has failed to take what it was sent (None: its last attempt succeeded):
    the time its first failed delivery was written, or its last success if that is later."""
    disabled_at: str | None = None
    disabled_reason: str | None = None
    previous_secret: str | None = field(default=None, repr=False)
    """The secret the last rotation replaced, still signing until `previous_secret_until`."""
    previous_secret_until: str | None = None
    """Until when (exclusive) attempts are signed with `previous_secret` too."""

    def signing_secrets(self, now: str) -> tuple[str, ...]:
        """The secrets an attempt at `now` is signed with (see `signing_secrets`)."""
        return signing_secrets(self.secret, self.previous_secret, self.previous_secret_until, now)

    def wants(self, event_type: str, workspace_id: str) -> bool:
        return (
            self.disabled_at is None
            and event_type in self.events
            and (self.workspace_id is None or self.workspace_id == workspace_id)
        )


class Keep(Enum):
    """`EndpointChange.workspace_id`'s "leave it as it is" (None means every workspace)."""

    KEEP = "keep"


KEEP = Keep.KEEP
DISABLED_BY_OPERATOR = "disabled by an operator"


@dataclass(frozen=True, slots=True)
class EndpointChange:
    """What `update_endpoint` changes; every field left at its default is kept."""

    url: str | None = None
    events: tuple[str, ...] | None = None
    workspace_id: str | Keep | None = KEEP
    enabled: bool | None = None
    """True: enabled again (its run of failures forgotten); False: disabled now
    (`DISABLED_BY_OPERATOR`), its pending deliveries kept for when it is enabled."""


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One change to report, as every endpoint wanting it receives it."""

    message_id: str
    """`msg_…`: the `webhook-id` of every attempt at every delivery of it."""
    type: str
    workspace_id: str
    subject: str | None
    """Deliveries of one subject to one endpoint are sent in order; None: no order."""
    body: bytes
    """The JSON payload sent, signed as it is."""


@dataclass(frozen=True, slots=True)
class Attempt:
    at: str
    status: int | None
    """The HTTP status answered; None when no answer came."""
    error: str | None
    """Why it failed (None: it did not)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    """A decimal string, growing with time; in commit order among one subject's."""
    endpoint_id: str
    message_id: str
    event_type: str
    subject: str | None
    body: bytes
    created_at: str
    state: DeliveryState
    attempt_count: int
    next_attempt_at: str | None
    """When it is attempted next (pending only)."""
    lease_until: str | None
    """While an instance attempts it: until when the others leave it alone."""
    last_status: int | None
    last_error: str | None
    finished_at: str | None
    retried_at: str | None
    """When an operator last sent it again (then it is attempted once, not retried)."""
    attempts: tuple[Attempt, ...] = ()
    """Its latest attempts (at most `MAX_ATTEMPTS_SHOWN`), oldest first; filled by the
    listings, empty in claims."""


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    delivery: Delivery
    url: str
    secrets: tuple[str, ...] = field(repr=False)
    """What its attempt is signed with: the endpoint's secret, and the one its last rotation
    replaced while that still signs at the claim's `now` (`signing_secrets`)."""
    lease: str
    """The claim's token: only its holder records the attempt."""


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """The outcome of one attempt, as `record_attempt` writes it."""

    at: str
    status: int | None
    error: str | None
    delivered: bool
    next_attempt_at: str | None
    """When to try again after a failure; None: failed for good."""
    failing_from: str
    """When the delivery began to wait: when it was written, or re-queued by an operator."""
    gone: bool = False
    """The receiver answered 410 Gone: it wants nothing more (Standard Webhooks), so the
    delivery fails for good (`next_attempt_at` None) and the endpoint is disabled."""

    def outcome(self) -> tuple[DeliveryState, str | None, str | None]:
        """The delivery's state after this attempt, its next attempt time and its finish
        time, as every backend writes them."""
        if self.delivered:
            return DeliveryState.DELIVERED, None, self.at
        if self.next_attempt_at is None:
            return DeliveryState.FAILED, None, self.at
        return DeliveryState.PENDING, self.next_attempt_at, None


OutboxListener = Callable[[], None]


class WebhookStore(Protocol):
    """Every method raises `StoreError` (and nothing else) when the backend fails."""

    async def add_endpoint(self, endpoint: Endpoint) -> None:
        """Register an endpoint (its id unused). Returns once every store instance on the
        database writes the deliveries of changes it wants (at most `ROUTES_TTL_S` later)."""

    async def list_endpoints(self) -> list[Endpoint]:
        """Every endpoint, in id order."""

    async def get_endpoint(self, endpoint_id: str) -> Endpoint | None: ...

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        """Delete the endpoint and its deliveries; whether it existed."""

    async def add_test_delivery(self, endpoint_id: str, event: WebhookEvent) -> Delivery | None:
        """Write one pending delivery of `event`, due now, to the endpoint, whatever events it
        wants (an operator's test); the watchers are told once it commits. None when there
        is no such endpoint."""

    async def update_endpoint(
        self, endpoint_id: str, change: EndpointChange, *, at: str
    ) -> Endpoint | None:
        """Apply `change` to the endpoint, each named field alone (what an attempt records
        meanwhile is kept); `at` is when a disabling happens. Returns the endpoint as it now
        is, once every store instance writes by its new routes (as `add_endpoint`); None when
        there is no such endpoint.

        Disabling by hand keeps its pending deliveries pending (claimed again once it is
        enabled); changes made while it is disabled are not written for it. Disabling one
        that is disabled keeps its time and reason; enabling forgets its run of failures."""

    async def replace_secrets(
        self,
        endpoint_id: str,
        expected: SecretPair,
        replacement: SecretPair,
    ) -> bool:
        """Store `replacement` as the endpoint's `(secret, previous_secret)` if they are still
        `expected` (the same secrets kept another way, e.g. sealed again); whether it did.
        Nothing else changes; a rotation in between wins."""

    async def rotate_secret(
        self, endpoint_id: str, secret: str, *, previous_until: str | None
    ) -> Endpoint | None:
        """Sign the endpoint's attempts with `secret` from now on, and with the secret it
        replaces too until `previous_until` (None: not at all). A secret replaced by an
        earlier rotation stops signing now: at most two sign at once. Returns the endpoint as
        it now is; None when there is no such endpoint."""

    def watch_outbox(self, listener: OutboxListener) -> None:
        """Call `listener` after each transaction of this store instance that wrote
        deliveries commits (the delivery service wakes at once instead of at its next poll)."""

    async def claim_deliveries(
        self,
        *,
        now: str,
        lease_until: str,
        lease: str,
        limit: int,
        per_endpoint: int | None = None,
    ) -> list[ClaimedDelivery]:
        """Lease up to `limit` deliveries due at `now` (pending, next attempt at or before
        `now`, no unexpired lease, endpoint enabled, no earlier pending delivery of the same
        subject to the same endpoint), earliest due first, until `lease_until`, under the
        token `lease`. Of store instances claiming at once, each delivery goes to one.

        With `per_endpoint`, an endpoint with that many deliveries under an unexpired lease
        gets none, and one with fewer gets at most as many as make `per_endpoint`: the
        earliest due of each endpoint, then earliest due first across endpoints. (Instances
        claiming at the very same moment each count the leases committed before: together
        they may lease a few more.)"""

    async def record_attempt(
        self, delivery_id: str, lease: str, record: AttemptRecord, *, disable_after_s: float
    ) -> bool:
        """Record one attempt of a delivery claimed under `lease` and release it: delivered,
        due again at `record.next_attempt_at`, or failed for good. A success ends the
        endpoint's run of failures; a failure starts or extends it, and a run that has
        lasted `disable_after_s` disables the endpoint (`disabled_reason` names the last
        error) and fails its pending deliveries. Returns False, writing nothing, when the
        lease is not held any more (it expired and the delivery was claimed again, retried
        by an operator, or deleted with its endpoint).

        The run of failures starts at `record.failing_from`, or at the endpoint's last
        success if later: a delivery retried until `disable_after_s` after it was written
        disables its endpoint unless the endpoint took another delivery meanwhile."""

    async def postpone_delivery(self, delivery_id: str, lease: str, *, until: str) -> bool:
        """Give back a delivery claimed under `lease` without an attempt (this instance could
        not sign it), due again at `until`: nothing is recorded, the endpoint's run of
        failures is untouched. False, writing nothing, when the lease is not held any more."""

    async def list_deliveries(
        self, endpoint_id: str, *, limit: int, before: str | None = None
    ) -> list[Delivery]:
        """The endpoint's deliveries, newest first, with their latest attempts, at most
        `limit` (1 to `MAX_DELIVERY_PAGE`); with `before`, those whose id is less."""

    async def get_delivery(self, endpoint_id: str, delivery_id: str) -> Delivery | None: ...

    async def retry_delivery(
        self, endpoint_id: str, delivery_id: str, *, now: str
    ) -> Delivery | None:
        """Make the delivery pending and due at `now` (whatever its state), to be attempted
        once more, and enable its endpoint again if it was disabled. None when there is no
        such delivery; the delivery unchanged while an attempt holds its lease."""

    async def delete_finished_deliveries(self, *, finished_before: str, limit: int) -> int:
        """Delete up to `limit` deliveries delivered or failed before `finished_before`,
        with their attempts; how many."""


SecretPair = tuple[str, str | None]
"""An endpoint's `(secret, previous_secret)` as stored."""


def secret_pair(secrets: Sequence[str]) -> SecretPair:
    """The pair of what `signing_secrets` returns: the replaced secret, if it still signs,
    second."""
    return (secrets[0], secrets[1] if len(secrets) > 1 else None)


def signing_secrets(
    secret: str, previous: str | None, previous_until: str | None, now: str
) -> tuple[str, ...]:
    """`secret`, then `previous` while `now` is before `previous_until`."""
    if previous is not None and previous_until is not None and now < previous_until:
        return (secret, previous)
    return (secret,)


def failing_start(record: AttemptRecord, last_success_at: str | None) -> str:
    """When the endpoint's run of failures starts, for a failed attempt that begins one."""
    return max(record.failing_from, last_success_at or "")


def disabling_reason(
    record: AttemptRecord, failing_since: str, disable_after_s: float
) -> str | None:
    """Why the failed attempt `record` disables its endpoint, whose run of failures began at
    `failing_since`; None when it does not. Either the receiver answered 410 Gone, or the run
    has lasted `disable_after_s`."""
    if record.gone:
        return (f"the receiver answered HTTP 410 Gone at {record.at}: it takes no more deliveries")[
            :MAX_ERROR_CHARS
        ]
    elapsed = datetime.fromisoformat(record.at) - datetime.fromisoformat(failing_since)
    if elapsed.total_seconds() < disable_after_s:
        return None
    last = record.error or f"HTTP {record.status}"
    return (
        f"no delivery taken for {disable_after_s:g} s (COLLAB_WEBHOOK_RETRY_S), since "
        f"{failing_since}; the last attempt: {last}"
    )[:MAX_ERROR_CHARS]


def delivery_number(delivery_id: str) -> int | None:
    """The integer a delivery id stands for; None for a string that is none."""
    if not (0 < len(delivery_id) <= 19 and delivery_id.isascii() and delivery_id.isdigit()):
        return None
    if delivery_id[0] == "0":
        return None
    number = int(delivery_id)
    return number if number < 2**63 else None


def page_limit(limit: int) -> int:
    return max(1, min(limit, MAX_DELIVERY_PAGE))


def clip_error(error: str | None) -> str | None:
    return None if error is None else error[:MAX_ERROR_CHARS]


class WebhookRoutes:
    """Which event types of which workspaces the enabled endpoints want, as one store
    instance last read them, trusted for `ttl_s`: a change checks this before it builds or
    writes anything. A route added by another instance is read within `ttl_s`, which
    `add_endpoint` waits out; a stale route that is gone costs a statement that writes
    nothing."""

    def __init__(self, ttl_s: float = ROUTES_TTL_S, clock: Callable[[], float] = time.monotonic):
        self._ttl_s = ttl_s
        self._clock = clock
        self._read_at: float | None = None
        self._all: set[str] = set()
        self._by_workspace: set[tuple[str, str]] = set()

    @property
    def fresh(self) -> bool:
        return self._read_at is not None and self._clock() - self._read_at < self._ttl_s

    def may_want(self, event_types: Iterable[str]) -> bool:
        """False only when fresh routes want none of `event_types` in any workspace."""
        if not self.fresh:
            return True
        wanted = self._all | {event_type for _, event_type in self._by_workspace}
        return any(event_type in wanted for event_type in event_types)

    @property
    def empty(self) -> bool:
        """Whether no enabled endpoint wants anything (call while `fresh`)."""
        return not self._all and not self._by_workspace

    def wants(self, event_type: str, workspace_id: str) -> bool:
        """Whether an endpoint wants the event (call while `fresh`)."""
        return event_type in self._all or (workspace_id, event_type) in self._by_workspace

    def replace(self, routes: Iterable[tuple[str | None, Sequence[str]]]) -> None:
        """The routes read now: `(workspace_id or None, event types)` of each enabled
        endpoint."""
        self._all = set()
        self._by_workspace = set()
        for workspace_id, event_types in routes:
            if workspace_id is None:
                self._all.update(event_types)
            else:
                self._by_workspace.update((workspace_id, t) for t in event_types)
        self._read_at = self._clock()

    def forget(self) -> None:
        """Read them again at the next check (this instance changed an endpoint)."""
        self._read_at = None
