"""`RateLimitedLog`: one warning per interval, and the count of those it held back."""

from __future__ import annotations

import logging

import pytest

from collab.observability import throttled
from collab.observability.throttled import RateLimitedLog


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_warnings_within_the_interval_are_counted_into_the_next_one(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeMonotonic()
    monkeypatch.setattr(throttled.time, "monotonic", clock)
    logger = logging.getLogger("collab.test.throttled")
    limited = RateLimitedLog(logger, interval_s=10.0)
    with caplog.at_level(logging.WARNING, logger="collab.test.throttled"):
        limited.warning("delivery %s held", "d1")
        for n in range(5):
            clock.now += 1.0
            limited.warning("delivery %s held", f"d{n + 2}")
        clock.now += 5.0
        limited.warning("delivery %s held", "d7")
        clock.now += 1.0
        limited.warning("delivery %s held", "d8")
    assert [record.getMessage() for record in caplog.records] == [
        "delivery d1 held",
        "delivery d7 held (and 5 more since the last report)",
    ]
    assert {record.name for record in caplog.records} == {"collab.test.throttled"}
