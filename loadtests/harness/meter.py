"""Samples of the processes of a run at phase boundaries, and what each used in between."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.procs import Usage, machine_busy_s


@dataclass(frozen=True)
class Snapshot:
    at_s: float
    machine_busy_s: float
    usage: dict[str, Usage]
    parts: frozenset[str]


class Meter:
    """Samples named roles ("server", "generator", "database", ...) together. Roles named in
    `parts` break another role down (instance A of "server") and are not counted twice."""

    def __init__(
        self, roles: dict[str, Callable[[], Usage]], *, parts: frozenset[str] = frozenset()
    ) -> None:
        self.roles = roles
        self.parts = parts

    def snapshot(self) -> Snapshot:
        usage = {role: sample() for role, sample in self.roles.items()}
        return Snapshot(time.monotonic(), machine_busy_s(), usage, self.parts)


def resources(before: Snapshot, after: Snapshot) -> dict[str, Any]:
    """Per role: `{role}_cpu_s`, `{role}_cpu_pct` (of one core), `{role}_system_pct` (the
    share of its CPU time spent in the kernel), `{role}_rss_bytes` (at the end);
    `server_rss_bytes_before`; and `other_cpu_pct`, everything else that ran."""
    wall_s = after.at_s - before.at_s
    result: dict[str, Any] = {"wall_s": wall_s}
    ours_s = 0.0
    for role, end in after.usage.items():
        cpu_s = end.cpu_s - before.usage[role].cpu_s
        if role not in after.parts:
            ours_s += cpu_s
        result[f"{role}_cpu_s"] = cpu_s
        result[f"{role}_cpu_pct"] = 100 * cpu_s / wall_s
        # Where the CPU went: system calls (on loopback the receiver's TCP path is in the
        # sender's) against the server's own code.
        system_s = end.system_s - before.usage[role].system_s
        result[f"{role}_system_pct"] = 100 * system_s / cpu_s if cpu_s > 0 else None
        if role == "server":
            result["server_rss_bytes_before"] = before.usage[role].rss_bytes
        result[f"{role}_rss_bytes"] = end.rss_bytes
    # Other processes on this machine, interrupts and softirqs (loopback networking is partly
    # here). Near 0 means the two cores were ours.
    result["other_cpu_pct"] = 100 * (after.machine_busy_s - before.machine_busy_s - ours_s) / wall_s
    return result


def per_delivery_us(cpu_s: float, received: int) -> float | None:
    return cpu_s * 1e6 / received if received else None
