"""`EmailDigests`: email people who are away a digest of their unread notifications.

The notifier tells this service of each notification created on this instance
(`notification_created`). Its user is looked at soon after, in a task of their own (at most
`MAX_CONCURRENT_SENDS` at once), so nothing else ever waits for the store, presence or SMTP:

1. the recipient (`EmailStore.email_recipient`): nothing for a user with no known address or
   who opted out;
2. are they connected? (`is_online`: a connection of either kind on this instance, or an entry
   in the shared presence of any of their workspaces, written by every instance): then they
   see the notification live, and get no email;
3. claim their next digest (`EmailStore.claim_digest`): one instance wins; when it is not due
   yet (a digest went out less than `interval_s` ago), look again when it is;
4. their unread notifications not emailed yet, newest first: none (read meanwhile, or emailed
   by another instance) releases the claim; else the digest is composed and sent, and
   `finish_digest` moves the emailed marker up and the next digest `interval_s` away.

A send that fails (server down, refusing, too slow: `SmtpError`) or a store or presence
failure releases the claim until the retry and is tried again after `retry_delays_s` (the
last repeated), at most `MAX_ATTEMPTS` times in a row; then the digest waits for the user's
next notification. Times come from `clock` (Unix seconds), which tests replace, calling
`wake` after moving it.

What is scheduled lives in this instance's memory (at most `MAX_SCHEDULED_USERS` users): a
digest deferred to the end of an interval is lost if the instances that saw its notifications
restart meanwhile, and goes out with the user's next notification instead.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

from collab.auth.unsubscribe import UnsubscribeSigner
from collab.errors import BusError, StoreError
from collab.rooms.digest_message import Digest, compose, digest_items
from collab.rooms.smtp import MailSender, SmtpError
from collab.store.email import DigestClaim, EmailStore
from collab.store.notifications import Notification
from collab.store.rows import format_timestamp
from collab.tasks import cancel_and_wait

log = logging.getLogger(__name__)

MAX_CONCURRENT_SENDS = 4
MAX_SCHEDULED_USERS = 100_000
MAX_DIGEST_ITEMS = 20
"""Notifications a digest lists; it counts the others."""
MAX_ATTEMPTS = 10
RETRY_DELAYS_S: tuple[float, ...] = (5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
HOLD_S = 300.0
"""How long a claim holds: longer than a send may take (`smtp.SEND_TIMEOUT_S`)."""
RECHECK_S = 1.0
"""When a claim failed although the digest was due (another instance just held it)."""
UNSUBSCRIBE_PATH = "/api/v1/email/unsubscribe"

OnlineCheck = Callable[[str, Sequence[str]], Awaitable[bool]]
"""Whether `(user_id, workspace_ids)`: the user has a connection on some instance. Raises
`BusError` when that cannot be told."""


class EmailDigests:
    def __init__(
        self,
        store: EmailStore,
        sender: MailSender,
        *,
        is_online: OnlineCheck,
        signer: UnsubscribeSigner,
        email_from: str,
        public_url: str,
        interval_s: float,
        instance_id: str,
        is_shut_out: Callable[[str], bool] = lambda user_id: False,
        clock: Callable[[], float] = time.time,
        retry_delays_s: Sequence[float] = RETRY_DELAYS_S,
    ) -> None:
        self._store = store
        self._sender = sender
        self._is_online = is_online
        self._is_shut_out = is_shut_out
        self._signer = signer
        self._email_from = email_from
        self._public_url = public_url
        self._interval_s = interval_s
        self._instance_id = instance_id
        self.clock = clock
        """Unix seconds; tests replace it, and call `wake` after moving it."""
        self._retry_delays_s = tuple(retry_delays_s) or RETRY_DELAYS_S
        self._due: dict[str, float] = {}
        # `_due` as a heap of (time, user), for the earliest without a sort of every user: an
        # entry whose time `_due` no longer holds is stale and skipped; a user being sent to
        # is taken out and put back when done.
        self._heap: list[tuple[float, str]] = []
        self._attempts: dict[str, int] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._overflow_logged = False
        self.sent = 0
        """Digests this instance sent."""
        self.failures = 0
        """Attempts of this instance that failed (SMTP, store or presence)."""

    async def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="email-digests")

    async def close(self) -> None:
        await cancel_and_wait([self._worker, *self._running.values()])
        self._worker = None
        self._running.clear()
        self._due.clear()
        self._heap.clear()

    def unsubscribe_url(self, user_id: str) -> str:
        return f"{self._public_url}{UNSUBSCRIBE_PATH}?token={self._signer.token_for(user_id)}"

    def token_user(self, token: str) -> str | None:
        """The user an unsubscribe token names; None for one this server did not sign."""
        return self._signer.user_of(token)

    async def unsubscribe(self, token: str, *, at: str) -> bool:
        """Record that the user `token` names wants no more digests; False (nothing recorded)
        for a token this server did not sign. Raises `StoreError`."""
        user_id = self._signer.user_of(token)
        if user_id is None:
            return False
        await self._store.set_email_opt_out(user_id, opted_out=True, at=at)
        self._due.pop(user_id, None)
        log.info("email digests: %s unsubscribed", user_id)
        return True

    # -- what the notifier and tests call ------------------------------------------------------

    def notification_created(self, notification: Notification) -> None:
        """A notifier listener: look at the notification's user soon."""
        self._schedule(notification.user_id, self.clock())

    def wake(self) -> None:
        """Look at what is due by `clock` now."""
        self._wakeup.set()

    def settled(self) -> bool:
        """Nothing is being sent, and nothing is due by `clock`."""
        now = self.clock()
        return not self._running and all(at > now for at in self._due.values())

    # -- scheduling ----------------------------------------------------------------------------

    def _schedule(self, user_id: str, at: float) -> None:
        if user_id not in self._due and len(self._due) >= MAX_SCHEDULED_USERS:
            if not self._overflow_logged:
                self._overflow_logged = True
                log.warning("email digests: %d users scheduled; not more", MAX_SCHEDULED_USERS)
            return
        earlier = min(at, self._due.get(user_id, at))
        if self._due.get(user_id) != earlier:
            self._due[user_id] = earlier
            heapq.heappush(self._heap, (earlier, user_id))
            if len(self._heap) > 2 * len(self._due) + 64:
                self._heap = [(when, user) for user, when in self._due.items()]
                heapq.heapify(self._heap)
        self._wakeup.set()

    def _earliest(self) -> float | None:
        """The time of the earliest due user not being sent to; drops stale entries and those
        of users being sent to (`_finished` puts theirs back)."""
        heap = self._heap
        while heap:
            at, user_id = heap[0]
            if self._due.get(user_id) == at and user_id not in self._running:
                return at
            heapq.heappop(heap)
        return None

    async def _run(self) -> None:
        while True:
            self._start_due()
            earliest = self._earliest()
            timeout = None
            if earliest is not None and len(self._running) < MAX_CONCURRENT_SENDS:
                timeout = max(0.0, earliest - self.clock())
            try:
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
            self._wakeup.clear()

    def _start_due(self) -> None:
        now = self.clock()
        while len(self._running) < MAX_CONCURRENT_SENDS:
            at = self._earliest()
            if at is None or at > now:
                return
            _, user_id = heapq.heappop(self._heap)
            del self._due[user_id]
            task = asyncio.create_task(self._attempt(user_id), name=f"email-digest-{user_id}")
            self._running[user_id] = task
            task.add_done_callback(functools.partial(self._finished, user_id))

    def _finished(self, user_id: str, task: asyncio.Task[None]) -> None:
        self._running.pop(user_id, None)
        at = self._due.get(user_id)
        if at is not None:  # scheduled again while it was being sent to
            heapq.heappush(self._heap, (at, user_id))
        self._wakeup.set()

    # -- one user ------------------------------------------------------------------------------

    async def _attempt(self, user_id: str) -> None:
        try:
            await self._consider(user_id)
        except (SmtpError, StoreError, BusError) as error:
            self._failed(user_id, error)
        except Exception:
            # A bug with one user's digest must not stop the others'.
            log.exception("email digest of %s failed", user_id)

    async def _consider(self, user_id: str) -> None:
        if self._is_shut_out(user_id):
            # Revoked by the operator: shut out of everything, email included. What stays
            # unread is listed by the first digest after the revocation ends.
            self._attempts.pop(user_id, None)
            return
        recipient = await self._store.email_recipient(user_id)
        if recipient.email is None or recipient.opted_out:
            self._attempts.pop(user_id, None)
            return
        if await self._is_online(user_id, recipient.workspace_ids):
            self._attempts.pop(user_id, None)
            return
        now = self.clock()
        claim_id = f"{self._instance_id}:{uuid.uuid4().hex}"
        claim = await self._store.claim_digest(user_id, claim_id=claim_id, now=now, hold_s=HOLD_S)
        if claim is None:
            due_at = await self._store.digest_due_at(user_id)
            if due_at is not None:
                self._schedule(user_id, max(due_at, now + RECHECK_S))
            return
        try:
            sent = await self._send(claim, recipient.email, recipient.name)
        except (SmtpError, StoreError):
            await self._release_after_failure(claim)
            raise
        self._attempts.pop(user_id, None)
        if sent is None:
            await self._store.release_digest(claim, next_allowed_at=now)
            return
        self.sent += 1
        try:
            finished = await self._store.finish_digest(
                claim,
                emailed_up_to=sent,
                next_allowed_at=self.clock() + self._interval_s,
                at=format_timestamp(),
            )
        except StoreError as error:
            # Not retried: the digest went out. Its claim lapses by itself; what it listed
            # may be listed again by a later digest if still unread then.
            log.warning("email digest of %s: sent but not recorded: %s", user_id, error)
            return
        if not finished:
            log.warning("email digest of %s: sent after its claim lapsed", user_id)

    async def _send(self, claim: DigestClaim, address: str, name: str | None) -> int | None:
        """Send the digest of what is unread and not emailed; return the greatest id it
        covers, or None when there is nothing to send. Raises `SmtpError`, `StoreError`."""
        notifications, total = await self._store.unemailed_notifications(
            claim.user_id, after_id=claim.emailed_up_to, limit=MAX_DIGEST_ITEMS
        )
        if not notifications:
            return None
        digest = Digest(
            to_address=address,
            to_name=name,
            items=digest_items(notifications, self._public_url),
            total=total,
            public_url=self._public_url,
            unsubscribe_url=self.unsubscribe_url(claim.user_id),
        )
        try:
            message = compose(digest, sender=self._email_from)
        except ValueError as error:
            log.warning("email digest of %s not sent: %s", claim.user_id, error)
            return None
        await self._sender.send(message)
        log.info("email digest of %d notifications sent to %s", total, claim.user_id)
        return max(notification.id for notification in notifications)

    async def _release_after_failure(self, claim: DigestClaim) -> None:
        """Let the retry (of this instance, or of another once it is due) claim again."""
        retry_at = self.clock() + self._retry_delay(claim.user_id)
        try:
            await self._store.release_digest(claim, next_allowed_at=retry_at)
        except StoreError as error:
            # The claim's hold ends by itself.
            log.warning("email digest of %s: claim not released: %s", claim.user_id, error)

    def _failed(self, user_id: str, error: Exception) -> None:
        self.failures += 1
        attempts = self._attempts.get(user_id, 0) + 1
        if attempts >= MAX_ATTEMPTS:
            self._attempts.pop(user_id, None)
            log.error(
                "email digest of %s: giving up after %d attempts: %s", user_id, attempts, error
            )
            return
        delay = self._retry_delay(user_id)
        self._attempts[user_id] = attempts
        log.warning(
            "email digest of %s: attempt %d failed, retrying in %g s: %s",
            user_id,
            attempts,
            delay,
            error,
        )
        self._schedule(user_id, self.clock() + delay)

    def _retry_delay(self, user_id: str) -> float:
        attempts = self._attempts.get(user_id, 0)
        return self._retry_delays_s[min(attempts, len(self._retry_delays_s) - 1)]
