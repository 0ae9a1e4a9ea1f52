"""Which entries of two sequences to keep as equal, in time linear in their lengths.

`difflib.SequenceMatcher` finds the longest matching blocks, and pays for it: two lists of a
few thousand distinct lines, each neighbouring pair swapped, cost it seconds. `equal_pairs`
takes what patience diff takes instead: the common start and end, then the longest increasing
sequence of entries that occur once on each side, and the same again between each two of
those, while a budget of work linear in the lengths lasts. What it leaves unpaired is for the
caller to show as changed (or to diff further, when small).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Hashable, Sequence


def equal_pairs(
    old: Sequence[Hashable], new: Sequence[Hashable], work_per_entry: int
) -> list[tuple[int, int]]:
    """Pairs `(i, j)` of equal entries, increasing on both sides: common prefixes and suffixes,
    and anchors that occur once on each side, searched again between anchors until the budget
    (`work_per_entry` times the lengths) is spent."""
    pairs: list[tuple[int, int]] = []
    budget = work_per_entry * (len(old) + len(new))
    ranges = [(0, len(old), 0, len(new))]
    while ranges:
        lo, hi, first, last = ranges.pop()
        while lo < hi and first < last and old[lo] == new[first]:
            pairs.append((lo, first))
            lo, first = lo + 1, first + 1
        while lo < hi and first < last and old[hi - 1] == new[last - 1]:
            hi, last = hi - 1, last - 1
            pairs.append((hi, last))
        size = hi - lo + last - first
        if lo == hi or first == last or size > budget:
            continue
        budget -= size
        anchors = _anchors(old, lo, hi, new, first, last)
        for i, j in anchors:
            ranges.append((lo, i, first, j))
            pairs.append((i, j))
            lo, first = i + 1, j + 1
        if anchors:
            ranges.append((lo, hi, first, last))
    return sorted(pairs)


def _anchors(
    old: Sequence[Hashable], lo: int, hi: int, new: Sequence[Hashable], first: int, last: int
) -> list[tuple[int, int]]:
    """The longest increasing sequence of pairs of entries that occur once on each side."""
    counts: dict[Hashable, int] = {}
    for entry in old[lo:hi]:
        counts[entry] = counts.get(entry, 0) + 1
    where: dict[Hashable, int] = {}
    for j in range(first, last):
        entry = new[j]
        if counts.get(entry) == 1:
            where[entry] = -1 if entry in where else j
    candidates = [(i, where[old[i]]) for i in range(lo, hi) if where.get(old[i], -1) >= 0]
    tails: list[int] = []
    tail_at: list[int] = []
    back = [-1] * len(candidates)
    for k, (_, j) in enumerate(candidates):
        position = bisect_left(tails, j)
        if position == len(tails):
            tails.append(j)
            tail_at.append(k)
        else:
            tails[position] = j
            tail_at[position] = k
        back[k] = tail_at[position - 1] if position else -1
    found: list[tuple[int, int]] = []
    k = tail_at[-1] if tail_at else -1
    while k >= 0:
        found.append(candidates[k])
        k = back[k]
    return found[::-1]
