"""When a failed webhook delivery is tried again."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from collab.delivery.retries import RetryPolicy, retry_after_s

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


def test_a_receivers_wait_is_kept_when_longer_than_the_backoff_but_not_past_the_window() -> None:
    """`wait_s` (a `Retry-After`) moves the next attempt later than the backoff would, never
    earlier, and never past the window's end."""
    policy = RetryPolicy(retry_s=3600, first_delay_s=2, factor=3)
    rng = random.Random(3)

    asked = policy.next_attempt(START, 1, START, rng, wait_s=120)
    assert asked == START + timedelta(seconds=120)
    short = policy.next_attempt(START, 1, START, rng, wait_s=0)
    assert short is not None
    assert START + timedelta(seconds=1) <= short <= START + timedelta(seconds=2)
    huge = policy.next_attempt(START, 1, START, rng, wait_s=10.0**12)
    assert huge == START + timedelta(seconds=3600)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("9" * 40, 10.0**12),
        ("Sun, 06 Dec 2026 10:02:00 GMT", 120.0),
        ("Sun, 06 Dec 2026 09:00:00 GMT", 0.0),
        (None, None),
        ("", None),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("٣", None),
        ("Sun, 06 Dec 2026 10:02:00 -0000", None),
        ("Sun, 99 Foo 2026 10:02:00 GMT", None),
    ],
)
def test_retry_after_is_read_as_seconds_or_a_date_and_anything_else_is_ignored(
    value: str | None, expected: float | None
) -> None:
    """Whole seconds or an HTTP date (RFC 9110) are the wait asked for; a past date none;
    anything else (negative, fractional, non-ASCII digits, a date without a zone) is no
    answer at all."""
    assert retry_after_s(value, START) == expected
