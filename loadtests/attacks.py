"""Reproduce the hostile-update attacks against a fresh collab server, one at a time.

    python loadtests/attacks.py [--server-dir DIR] [--attacks d1,d1rest,d2,d3,d4,d4cap,d5,d9]
                                [--out FILE.json]

Each attack gets its own server (`python -m collab serve` importing DIR's collab, SQLite in a
temp dir, pinned to CPU 0), a probe in an unrelated room (a marker edit every 50 ms timed from
writer to reader, and /healthz every 50 ms on a new connection) and an attacker process
(pinned to CPU 1, niced). The table says how the attacker's connection ended, the server's CPU
and memory during the attack, what the probe saw, and what the server stored.
"""

from __future__ import annotations

import sys
from pathlib import Path

LOADTESTS_DIR = Path(__file__).resolve().parent
# harness/ is beside this file; the repository root holds collab (the harness imports it).
sys.path[:0] = [str(LOADTESTS_DIR), str(LOADTESTS_DIR.parent)]

from harness.attacks import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(description=__doc__.split("\n\n")[0]))
