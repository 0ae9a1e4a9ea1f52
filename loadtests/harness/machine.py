"""Facts about this machine recorded with every run, and the open-files check."""

from __future__ import annotations

import datetime
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.errors import RunError
from harness.procs import SERVER_CPU, pinned

NOFILE_MARGIN = 64

# The same few lines of Python timed back to back and after 5 ms asleep, on the server's CPU.
# At low rates a server sleeps between edits, and on some machines (virtual ones especially)
# whatever ran on the core meanwhile leaves the interpreter's code and data to be fetched
# again: this number tells how much of a low-rate CPU figure is the machine's, not the code's.
WAKEUP_PROBE = """
import time
def work():
    total = 0
    for i in range(50):
        total += i
    return total
def timed(gap_s, rounds):
    spent = 0
    for _ in range(rounds):
        if gap_s:
            time.sleep(gap_s)
        started = time.thread_time_ns()
        work()
        spent += time.thread_time_ns() - started
    return spent / rounds / 1e3
timed(0, 200)
print(timed(0, 200), timed(0.005, 200))
"""
WAKEUP_PROBE_TIMEOUT_S = 30


def machine_facts() -> dict[str, Any]:
    cpu_model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "node": node.stdout.strip(),
        "kernel": platform.release(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "nofile_hard_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        "wakeup": wakeup_cost(),
    }


def wakeup_cost() -> dict[str, float] | None:
    """µs of CPU for `WAKEUP_PROBE`'s loop warm and right after a 5 ms sleep (None if the probe
    could not run: the run goes on without it)."""
    try:
        probe = subprocess.run(
            pinned(SERVER_CPU, [sys.executable, "-c", WAKEUP_PROBE]),
            capture_output=True,
            text=True,
            timeout=WAKEUP_PROBE_TIMEOUT_S,
            check=True,
        )
        warm_us, after_idle_us = (float(value) for value in probe.stdout.split())
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return {"warm_us": round(warm_us, 2), "after_5ms_idle_us": round(after_idle_us, 2)}


def describe_wakeup(wakeup: dict[str, float] | None) -> str:
    if wakeup is None:
        return "wake-up probe did not run"
    warm, cold = wakeup["warm_us"], wakeup["after_5ms_idle_us"]
    return f"the same Python after 5 ms idle costs {cold / warm:.1f}x ({warm:.1f} -> {cold:.1f} µs)"


def check_nofile(connections: int) -> None:
    """Raises `RunError` when this many connections cannot be opened by one process."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if connections + NOFILE_MARGIN > hard:
        raise RunError(
            f"{connections} connections need more open files than the hard limit ({hard}) "
            "allows; this machine limits the run (raise the hard limit as root: ulimit -Hn)"
        )
