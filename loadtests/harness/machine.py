"""Facts about this machine recorded with every run, and the open-files check."""

from __future__ import annotations

import datetime
import os
import platform
import resource
import subprocess
from pathlib import Path
from typing import Any

from harness.errors import RunError

NOFILE_MARGIN = 64


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
    }


def check_nofile(connections: int) -> None:
    """Raises `RunError` when this many connections cannot be opened by one process."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if connections + NOFILE_MARGIN > hard:
        raise RunError(
            f"{connections} connections need more open files than the hard limit ({hard}) "
            "allows; this machine limits the run (raise the hard limit as root: ulimit -Hn)"
        )
