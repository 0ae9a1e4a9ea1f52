"""Means of paired measurements with their standard error and 95 % interval (Student's t)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# Student's t at 97.5 % for 1-30 degrees of freedom; 1.96 beyond.
_T_975 = (
    12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23,
    2.20, 2.18, 2.16, 2.14, 2.13, 2.12, 2.11, 2.10, 2.09, 2.09,
    2.08, 2.07, 2.07, 2.06, 2.06, 2.06, 2.05, 2.05, 2.05, 2.04,
)  # fmt: skip


@dataclass(frozen=True)
class Estimate:
    mean: float
    se: float
    low: float
    high: float
    median: float
    count: int

    def describe(self, scale: float = 1.0, unit: str = "") -> str:
        """`+1.26 µs (SE 1.13, 95 % -1.11 to +3.63; median +1.89; 20 pairs)`, scaled."""
        return (
            f"{self.mean * scale:+.2f}{unit} (SE {self.se * scale:.2f}, 95 % "
            f"{self.low * scale:+.2f} to {self.high * scale:+.2f}; "
            f"median {self.median * scale:+.2f}; {self.count} pairs)"
        )


def estimate(values: Sequence[float]) -> Estimate:
    """The mean of `values` (at least two) with its standard error and 95 % interval."""
    if len(values) < 2:
        raise ValueError("an interval needs at least two values")
    mean = statistics.mean(values)
    se = statistics.stdev(values) / math.sqrt(len(values))
    degrees = len(values) - 1
    half = (_T_975[degrees - 1] if degrees <= len(_T_975) else 1.96) * se
    return Estimate(mean, se, mean - half, mean + half, statistics.median(values), len(values))
