"""`RetryPolicy`: when a failed delivery is tried again, and when it has failed for good."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

FIRST_DELAY_S = 2.0
BACKOFF_FACTOR = 3.0
MAX_DELAY_S = 6 * 3600.0
_MAX_EXPONENT = 64


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
        self, created_at: datetime, failed_attempts: int, now: datetime, rng: random.Random
    ) -> datetime | None:
        """When to try a delivery written at `created_at` again after its `failed_attempts`-th
        failure at `now`; None when it has failed for good."""
        deadline = created_at + timedelta(seconds=self.retry_s)
        if now >= deadline:
            return None
        return min(now + timedelta(seconds=self.delay_s(failed_attempts, rng)), deadline)
