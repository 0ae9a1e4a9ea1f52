"""How much event-loop time each user's updates may take, and who is throttled.

Every update a user makes costs the event loop its apply time, which depends on the update's
shape and the document, not on its size. `ApplyBudget` keeps a token bucket of apply time
per user (COLLAB_APPLY_MS_PER_S, burst COLLAB_APPLY_BURST_MS), charged with the time each
apply took: on the event loop for small updates, in the trial worker for large ones. A user
over budget, or whose update was refused as too costly, is throttled for COLLAB_THROTTLE_S:
the connection that went over is closed (1008) and new connections and REST writes of the
user are refused (429) until then. A user with `SUSPECT_AFTER_SLOW_APPLIES` applies longer
than `SLOW_APPLY_S` within a throttle period becomes a suspect for as long: all their updates
go through the trial worker, so the event loop pays for a slow shape of update a bounded
number of times per throttle period. One slow apply is not enough: times are wall-clock, and a
garbage collection or a descheduled process makes an ordinary apply look slow now and then.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from collab.errors import PolicyViolation

# Applies are timed by the wall clock (a CPU clock costs a system call per edit): a garbage
# collection or a busy machine makes an ordinary apply take a few milliseconds now and then,
# and a fan-out under load showed that two of those within a minute must not make a user a
# suspect. Crafted updates that cost this much cost it every time.
SLOW_APPLY_S = 0.05
SUSPECT_AFTER_SLOW_APPLIES = 2
# Users are kept only while their bucket is not full or they are throttled; past this many,
# the settled ones are dropped.
MAX_TRACKED_USERS = 10_000


class ApplyBudgetExceeded(PolicyViolation):
    """A user's updates took more apply time than their budget allows, or the user is
    throttled for it (WebSocket close 1008; HTTP 429 with `Retry-After`)."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, math.ceil(retry_after_s))


@dataclass(slots=True)
class _UserBudget:
    remaining_s: float
    at: float
    throttled_until: float = 0.0
    suspect_until: float = 0.0
    slow_applies: int = 0
    last_slow_at: float = 0.0


class ApplyBudget:
    """Apply-time token buckets per user. `rate_s_per_s == 0` disables the budget (the
    trial worker's deadline still bounds each large update)."""

    def __init__(
        self,
        *,
        rate_s_per_s: float,
        burst_s: float,
        throttle_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate_s_per_s
        self._burst = burst_s
        self._throttle_s = throttle_s
        self._clock = clock
        self._users: dict[str, _UserBudget] = {}

    def charge(self, user_id: str | None, apply_s: float) -> ApplyBudgetExceeded | None:
        """Take `apply_s` from the user's bucket; return the error to raise when the user is
        now over budget (and throttle them), or None."""
        if user_id is None:
            return None  # the server's own edits
        self.note_apply(user_id, apply_s)
        if not self._rate:
            return None
        now = self._clock()
        entry = self._entry(user_id, now)
        entry.remaining_s = min(self._burst, entry.remaining_s + (now - entry.at) * self._rate)
        entry.at = now
        entry.remaining_s -= apply_s
        if entry.remaining_s >= 0:
            return None
        self.throttle(user_id)
        return ApplyBudgetExceeded(
            f"updates took more than {self._rate * 1000:.0f} ms of apply time per second "
            f"(burst {self._burst * 1000:.0f} ms): COLLAB_APPLY_MS_PER_S; "
            f"throttled for {self._throttle_s:.0f} s",
            self._throttle_s,
        )

    def note_apply(self, user_id: str | None, apply_s: float) -> None:
        """Note an apply of the user's that took `apply_s` (here or in the trial worker),
        without charging it: slow ones make the user a suspect."""
        if user_id is None or apply_s <= SLOW_APPLY_S:
            return
        now = self._clock()
        entry = self._entry(user_id, now)
        if now - entry.last_slow_at > self._throttle_s:
            entry.slow_applies = 0
        entry.slow_applies += 1
        entry.last_slow_at = now
        if entry.slow_applies >= SUSPECT_AFTER_SLOW_APPLIES:
            entry.suspect_until = now + self._throttle_s

    def throttle(self, user_id: str | None) -> None:
        """Refuse the user's new connections and REST writes for COLLAB_THROTTLE_S."""
        if user_id is None:
            return
        now = self._clock()
        entry = self._entry(user_id, now)
        entry.throttled_until = entry.suspect_until = now + self._throttle_s

    def check(self, user_id: str) -> None:
        """Raise `ApplyBudgetExceeded` while the user is throttled: for a new document
        connection or a REST write."""
        entry = self._users.get(user_id)
        if entry is None:
            return
        left_s = entry.throttled_until - self._clock()
        if left_s > 0:
            raise ApplyBudgetExceeded(
                f"user {user_id!r} is throttled for {math.ceil(left_s)} s more: their updates "
                "went over the apply-time budget or one was too costly to apply "
                "(COLLAB_APPLY_MS_PER_S, COLLAB_MAX_APPLY_MS)",
                left_s,
            )

    def is_suspect(self, user_id: str | None) -> bool:
        """Whether the user's updates must all be tried in the worker first."""
        if user_id is None:
            return False
        entry = self._users.get(user_id)
        return entry is not None and entry.suspect_until > self._clock()

    def _entry(self, user_id: str, now: float) -> _UserBudget:
        entry = self._users.get(user_id)
        if entry is None:
            if len(self._users) >= MAX_TRACKED_USERS:
                self._forget_settled(now)
            entry = self._users[user_id] = _UserBudget(self._burst, now)
        return entry

    def _forget_settled(self, now: float) -> None:
        for user_id, entry in list(self._users.items()):
            refilled = entry.remaining_s + (now - entry.at) * self._rate >= self._burst
            if refilled and entry.throttled_until <= now and entry.suspect_until <= now:
                del self._users[user_id]
