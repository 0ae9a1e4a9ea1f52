"""`RetryPolicy`: when a failed delivery is tried again, and when it has failed for good;
`retry_after_s`: how long a receiver's `Retry-After` asks to wait."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

FIRST_DELAY_S = 2.0
BACKOFF_FACTOR = 3.0
MAX_DELAY_S = 6 * 3600.0
_MAX_EXPONENT = 64
MAX_DIGITS = 12


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter: after the n-th failed attempt the next waits about
    `first_delay_s * factor ** (n - 1)` (at most `max_delay_s`), between half of that and
    all of it, so the first retry comes within seconds and deliveries that failed together
    do not come back together. No retry is later than `retry_s` after the delivery was
    written: one is made then, and a failure after it is final."""

    retry_s: float
    first_delay_s: float = FIRST_DELAY_S
    factor: float = BACKOFF_FACTOR
    max_delay_s: float = MAX_DELAY_S

    def delay_s(self, failed_attempts: int, rng: random.Random) -> float:
        exponent = min(max(failed_attempts - 1, 0), _MAX_EXPONENT)
        full = min(self.first_delay_s * self.factor**exponent, self.max_delay_s)
        return full / 2 + rng.random() * full / 2

    def next_attempt(
        self,
        created_at: datetime,
        failed_attempts: int,
        now: datetime,
        rng: random.Random,
        *,
        wait_s: float | None = None,
    ) -> datetime | None:
        """When to try a delivery written at `created_at` again after its `failed_attempts`-th
        failure at `now`, not before `wait_s` (what the receiver asked for, `retry_after_s`)
        when that is later than the backoff; None when it has failed for good."""
        deadline = created_at + timedelta(seconds=self.retry_s)
        if now >= deadline:
            return None
        delay_s = self.delay_s(failed_attempts, rng)
        if wait_s is not None:
            delay_s = max(delay_s, min(wait_s, self.retry_s))
        return min(now + timedelta(seconds=delay_s), deadline)


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """The wait a `Retry-After` header value asks for (RFC 9110: whole seconds, or an HTTP
    date), in seconds from `now`; None when there is none or it is neither. A date in the past
    asks for no wait. The receiver's answer is untrusted: `RetryPolicy` never waits past its
    window for it."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        # Beyond any window either way; int() of thousands of digits would be refused.
        return float(int(value)) if len(value) <= MAX_DIGITS else float(10**MAX_DIGITS)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - now).total_seconds())
