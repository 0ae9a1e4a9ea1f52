"""Retention of automatic versions (`versions_to_drop`), with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collab.rooms.version_retention import RetentionPolicy, versions_to_drop

NOW = datetime(2026, 12, 6, 12, 30, tzinfo=UTC)
POLICY = RetentionPolicy()


def aged(*ages: timedelta) -> list[tuple[str, datetime]]:
    return [(str(number + 1), NOW - age) for number, age in enumerate(ages)]


def test_everything_younger_than_a_day_is_kept() -> None:
    versions = aged(*(timedelta(minutes=5 * i) for i in range(280)))
    assert versions_to_drop(versions, NOW, POLICY) == []


def test_the_newest_of_each_hour_is_kept_for_a_week() -> None:
    # 10:05, 10:35 and 10:55 of two days ago: one hour, the 10:55 one stays.
    base = NOW.replace(hour=10, minute=0) - timedelta(days=2)
    versions = [("1", base + timedelta(minutes=5)), ("2", base + timedelta(minutes=35))]
    versions.append(("3", base + timedelta(minutes=55)))
    versions.append(("4", base + timedelta(hours=1, minutes=1)))  # the next hour: its own
    assert sorted(versions_to_drop(versions, NOW, POLICY)) == ["1", "2"]


def test_the_newest_of_each_day_is_kept_for_ninety_days_and_none_after() -> None:
    day = (NOW - timedelta(days=30)).replace(hour=0, minute=0)
    versions = [(str(i + 1), day + timedelta(hours=3 * i)) for i in range(8)]  # one UTC day
    versions.append(("old", NOW - timedelta(days=91)))
    dropped = versions_to_drop(versions, NOW, POLICY)
    assert sorted(dropped) == sorted([str(i + 1) for i in range(7)] + ["old"])


def test_versions_of_one_moment_keep_the_later_id() -> None:
    moment = NOW - timedelta(days=3)
    assert versions_to_drop([("9", moment), ("10", moment)], NOW, POLICY) == ["9"]


def test_windows_must_grow() -> None:
    with pytest.raises(ValueError, match="grow"):
        RetentionPolicy(keep_all_s=10, hourly_s=5, daily_s=20)


@given(st.lists(st.integers(min_value=0, max_value=200 * 86400), max_size=200))
def test_at_most_one_version_per_bucket_survives_and_recent_ones_all_do(ages: list[int]) -> None:
    versions = aged(*(timedelta(seconds=age) for age in ages))
    dropped = set(versions_to_drop(versions, NOW, POLICY))
    kept = [(vid, at) for vid, at in versions if vid not in dropped]
    buckets: list[tuple[str, int]] = []
    for _, at in kept:
        age_s = (NOW - at).total_seconds()
        assert age_s < POLICY.daily_s
        if age_s >= POLICY.keep_all_s:
            period = 3600 if age_s < POLICY.hourly_s else 86400
            buckets.append(("h" if period == 3600 else "d", int(at.timestamp()) // period))
    assert len(buckets) == len(set(buckets))
    recent = {vid for vid, at in versions if (NOW - at).total_seconds() < POLICY.keep_all_s}
    assert recent.isdisjoint(dropped)
    # Every bucket that had a version keeps one.
    had = set()
    for _, at in versions:
        age_s = (NOW - at).total_seconds()
        if POLICY.keep_all_s <= age_s < POLICY.daily_s:
            period = 3600 if age_s < POLICY.hourly_s else 86400
            had.add(("h" if period == 3600 else "d", int(at.timestamp()) // period))
    assert had == set(buckets)
