"""When a failed webhook delivery is tried again."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from collab.delivery.retries import RetryPolicy

START = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def test_delays_grow_exponentially_with_jitter_and_a_cap() -> None:
    """The n-th delay lies between half and all of first * factor**(n-1), capped; the first
    retry comes within seconds."""
    policy = RetryPolicy(retry_s=86400, first_delay_s=2, factor=3, max_delay_s=3600)
    rng = random.Random(7)

    for failed, full in ((1, 2), (2, 6), (3, 18), (4, 54), (9, 3600), (10_000, 3600)):
        delays = [policy.delay_s(failed, rng) for _ in range(200)]
        assert all(full / 2 <= delay <= full for delay in delays)
        assert len(set(delays)) > 100


def test_no_retry_goes_past_the_window_and_the_last_comes_at_its_end() -> None:
    """A retry that would come after `retry_s` from the delivery's creation comes at that
    moment instead; a failure at or after it is final."""
    policy = RetryPolicy(retry_s=100, first_delay_s=60, factor=2)
    rng = random.Random(1)
    deadline = START + timedelta(seconds=100)

    assert policy.next_attempt(START, 3, START + timedelta(seconds=90), rng) == deadline
    assert policy.next_attempt(START, 4, deadline, rng) is None
    early = policy.next_attempt(START, 1, START, rng)
    assert early is not None
    assert START + timedelta(seconds=30) <= early <= START + timedelta(seconds=60)
