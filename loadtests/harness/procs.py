"""Child processes: pinning, /proc sampling, and a launcher that waits for a "ready" line.

Only processes this harness started are ever signalled, by PID (through `Popen`).
"""

from __future__ import annotations

import os
import queue
import re
import resource
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from harness.errors import RunError

SERVER_CPU = 0
GENERATOR_CPU = 1
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
LOG_TAIL_CHARS = 2000


@dataclass(frozen=True)
class Usage:
    """CPU time used so far (of it, `system_s` in the kernel) and resident memory now, of one
    process or a group of them."""

    cpu_s: float
    rss_bytes: int
    system_s: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.cpu_s + other.cpu_s,
            self.rss_bytes + other.rss_bytes,
            self.system_s + other.system_s,
        )


def machine_busy_s() -> float:
    """CPU time all CPUs spent not idle since boot (user, nice, system, irq, softirq, steal)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS_PER_S


def _stat_fields(pid: int) -> list[str]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name, in parentheses, may hold spaces: the fields follow its last ")".
    # fields[0] is field 3 (state) of proc(5).
    return stat[stat.rindex(")") + 2 :].split()


def usage(pid: int) -> Usage:
    """CPU time (utime + stime) and RSS of one process, from /proc/PID/stat."""
    fields = _stat_fields(pid)
    # utime is field 14, stime 15, rss 24 (pages).
    system_ticks = int(fields[12])
    return Usage(
        (int(fields[11]) + system_ticks) / CLOCK_TICKS_PER_S,
        int(fields[21]) * PAGE_BYTES,
        system_ticks / CLOCK_TICKS_PER_S,
    )


def descendants(pid: int) -> Iterator[int]:
    """`pid` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int(_stat_fields(int(entry.name))[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    stack = [pid]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(children.get(current, ()))


def tree_usage(pid: int) -> Usage:
    """CPU time and RSS of `pid` and its descendants, exited ones included.

    A process's own time plus that of the children it has reaped (cutime, cstime): summed over
    the live tree this counts every process once, whether it still runs or was reaped (a
    PostgreSQL backend that exited is in its postmaster's cutime). RSS is of the live ones.
    """
    total = Usage(0.0, 0)
    for member in descendants(pid):
        try:
            fields = _stat_fields(member)
        except OSError:
            continue
        ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
        system_ticks = int(fields[12]) + int(fields[14])  # stime, cstime
        total += Usage(
            ticks / CLOCK_TICKS_PER_S,
            int(fields[21]) * PAGE_BYTES,
            system_ticks / CLOCK_TICKS_PER_S,
        )
    return total


def cpu_ns(pid: int) -> int:
    """On-CPU time of all threads of a process in ns (/proc/PID/task/*/schedstat, field 1).

    Finer than utime + stime (clock ticks, 10 ms); threads that already exited are not counted.
    """
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def tree_cpu_ns(pid: int) -> int:
    """`cpu_ns` summed over `pid` and its live descendants."""
    total = 0
    for member in descendants(pid):
        try:
            total += cpu_ns(member)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def raise_nofile_limit() -> None:
    """Raise the soft open-files limit to the hard limit (runs in each child before exec)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def can_pin(cpu: int) -> bool:
    return (os.cpu_count() or 1) > cpu


def pinned(cpu: int, argv: list[str]) -> list[str]:
    """`argv` run under `taskset -c CPU` (the PID stays the program's: taskset execs it)."""
    if shutil.which("taskset") and can_pin(cpu):
        return ["taskset", "-c", str(cpu), *argv]
    print(f"warning: not pinning {Path(argv[0]).name} to CPU {cpu} (no taskset or too few CPUs)")
    return argv


def pin_tree(pid: int, cpu: int) -> None:
    """Pin every thread of `pid` and of its descendants to `cpu`; processes they fork later
    inherit it (a service we did not exec through taskset, such as PostgreSQL's backends)."""
    if not can_pin(cpu):
        print(f"warning: not pinning PID {pid} to CPU {cpu} (too few CPUs)")
        return
    for member in descendants(pid):
        try:
            for task in Path(f"/proc/{member}/task").iterdir():
                os.sched_setaffinity(int(task.name), {cpu})
        except (FileNotFoundError, ProcessLookupError):
            continue


def pump_lines(stream: TextIO, sink: Callable[[str], None]) -> None:
    for line in stream:
        sink(line)


class ChildProcess:
    """A server process pinned to `cpu`, logging stderr to a file, that is ready once a line
    on its stdout matches `ready` (group 1: the port it listens on)."""

    def __init__(
        self,
        label: str,
        argv: list[str],
        *,
        ready: re.Pattern[str],
        log_path: Path,
        cpu: int = SERVER_CPU,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.label = label
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                pinned(cpu, argv),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                preexec_fn=raise_nofile_limit,
            )
        lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        threading.Thread(
            target=pump_lines, args=(self.process.stdout, lines.put), daemon=True
        ).start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise RunError(f"{label} did not start: {self.log_tail()}") from None
            if match := ready.search(line):
                self.port = int(match.group(1))
                break

    @property
    def pid(self) -> int:
        return self.process.pid

    def usage(self) -> Usage:
        if self.process.poll() is not None:
            raise RunError(f"{self.label} exited ({self.process.returncode}): {self.log_tail()}")
        return usage(self.process.pid)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except OSError:
            return ""

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; returns the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
