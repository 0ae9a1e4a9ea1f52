"""`RequestRates`: a token bucket of REST requests per user or IP, bounded in memory."""

from __future__ import annotations

import pytest

from collab.web.http.request_limits import RequestRates


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_key_gets_its_burst_then_the_rate_and_is_told_when_to_retry() -> None:
    """`burst` requests pass at once; the next waits 1/per_s; time refills up to the burst."""
    clock = FakeClock()
    rates = RequestRates(2, 3, clock=clock)
    assert [rates.take("u1") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert rates.take("u1") == pytest.approx(0.5)
    clock.now += 0.5
    assert rates.take("u1") == 0.0
    assert rates.take("u1") == pytest.approx(0.5)
    clock.now += 60
    assert [rates.take("u1") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert rates.take("u1") > 0


def test_refused_requests_take_nothing_and_keys_are_independent() -> None:
    """Refused requests do not push the retry time further out; another key is unaffected."""
    clock = FakeClock()
    rates = RequestRates(1, 1, clock=clock)
    assert rates.take("a") == 0.0
    assert [rates.take("a") for _ in range(5)] == [pytest.approx(1.0)] * 5
    assert rates.take("b") == 0.0
    clock.now += 1.0
    assert rates.take("a") == 0.0


def test_full_buckets_are_forgotten_and_the_oldest_go_beyond_the_cap() -> None:
    """A bucket untouched for burst/per_s is dropped; beyond `max_keys` the least recently
    used goes (and starts full again)."""
    clock = FakeClock()
    rates = RequestRates(10, 20, max_keys=3, clock=clock)
    for key in ("a", "b", "c"):
        rates.take(key)
    assert len(rates) == 3
    rates.take("d")
    assert len(rates) == 3
    clock.now += 2.0  # burst / per_s: every bucket is full again
    rates.take("e")
    assert len(rates) == 1


def test_a_rate_of_zero_is_no_limit_and_keeps_nothing() -> None:
    """per_s 0 lets every request through and keeps no bucket."""
    rates = RequestRates(0, 1)
    assert all(rates.take("u1") == 0.0 for _ in range(100))
    assert len(rates) == 0
