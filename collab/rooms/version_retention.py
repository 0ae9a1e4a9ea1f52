"""Which automatic versions of a note retention thins out (pure: no clock, no I/O).

The rule (README, "Version history"), applied to a note's automatic versions by their age:

- younger than `keep_all_s` (24 hours): every one is kept;
- younger than `hourly_s` (7 days): the newest of each UTC hour is kept;
- younger than `daily_s` (90 days): the newest of each UTC day is kept;
- older: none.

Named and restore versions are never thinned (they go with the note when it is purged), so
they are not passed here. A bucket keeps its newest version because that is the state its
hour or day ended with, the one a user looking back at that day means.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long automatic versions are kept, at which density (seconds)."""

    keep_all_s: float = 24 * 3600
    hourly_s: float = 7 * 24 * 3600
    daily_s: float = 90 * 24 * 3600

    def __post_init__(self) -> None:
        if not 0 <= self.keep_all_s <= self.hourly_s <= self.daily_s:
            raise ValueError("retention windows must grow: keep-all <= hourly <= daily")


def versions_to_drop(
    versions: Iterable[tuple[str, datetime]], now: datetime, policy: RetentionPolicy
) -> list[str]:
    """The ids, among `(id, created_at)` of a note's automatic versions, that the policy
    drops at `now`. Ids are compared as numbers when two versions share a time (the later
    id is the newer version)."""
    kept_buckets: set[tuple[str, int]] = set()
    dropped: list[str] = []
    # Newest first, so the first version seen in a bucket is the one it keeps.
    ordered = sorted(versions, key=lambda v: (v[1], _id_order(v[0])), reverse=True)
    for version_id, created_at in ordered:
        age_s = (now - created_at).total_seconds()
        if age_s < policy.keep_all_s:
            continue
        if age_s < policy.hourly_s:
            bucket = ("hour", _floor(created_at, 3600))
        elif age_s < policy.daily_s:
            bucket = ("day", _floor(created_at, 86400))
        else:
            dropped.append(version_id)
            continue
        if bucket in kept_buckets:
            dropped.append(version_id)
        else:
            kept_buckets.add(bucket)
    return dropped


def _floor(moment: datetime, period_s: int) -> int:
    """The UTC period (hour or day) an aware moment falls in, as a number."""
    return int(moment.timestamp()) // period_s


def _id_order(version_id: str) -> int:
    return int(version_id) if version_id.isdecimal() else -1
