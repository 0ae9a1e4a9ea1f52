"""What a server moved over TCP and how much memory it peaked at, read from outside it.

`tcp_bytes` sums the kernel's own counters (`ss -ti`: tcp_info's bytes_sent and
bytes_received) over the server's established connections, so it counts what every server
put on the wire, WebSocket headers included, the same way whatever it is written in.
`RssSampler` polls the resident memory of a process and its children every few tens of
milliseconds; `vm_hwm_bytes` is the kernel's peak (VmHWM), which cannot be reset.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from harness.procs import PAGE_BYTES, descendants

_SENT = re.compile(r"\bbytes_sent:(\d+)")
_RECEIVED = re.compile(r"\bbytes_received:(\d+)")
SS_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class TcpBytes:
    sent: int
    received: int
    connections: int


def tcp_bytes(port: int) -> TcpBytes | None:
    """Bytes the server listening on `port` sent and received so far over its established
    connections (None without `ss`). Connections closed meanwhile are not counted."""
    ss = shutil.which("ss")
    if ss is None:
        return None
    try:
        listing = subprocess.run(
            [ss, "-Hnti", "state", "established", f"( sport = :{port} )"],
            capture_output=True,
            text=True,
            timeout=SS_TIMEOUT_S,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    sent = sum(int(m.group(1)) for m in _SENT.finditer(listing))
    received = sum(int(m.group(1)) for m in _RECEIVED.finditer(listing))
    return TcpBytes(sent, received, len(_SENT.findall(listing)))


def tcp_delta(before: TcpBytes | None, after: TcpBytes | None) -> dict[str, int] | None:
    if before is None or after is None:
        return None
    return {"sent": after.sent - before.sent, "received": after.received - before.received}


def vm_hwm_bytes(pid: int) -> int | None:
    """The process's peak resident memory since it started (/proc/PID/status VmHWM)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def rss_bytes(pid: int) -> int:
    """Resident memory of one process now (/proc/PID/statm), 0 once it is gone."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return 0


class RssSampler:
    """Samples the RSS of `pid` (and, apart, of its children alive at the start, e.g.
    collab's trial worker) every `interval_s` in a thread, until `stop()`; keeps the peaks."""

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.children = [child for child in descendants(pid) if child != pid]
        self.peak_bytes = rss_bytes(pid)
        self.peak_children_bytes = sum(rss_bytes(child) for child in self.children)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_bytes = max(self.peak_bytes, rss_bytes(self.pid))
            if self.children:
                self.peak_children_bytes = max(
                    self.peak_children_bytes, sum(rss_bytes(child) for child in self.children)
                )
            self.samples += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
