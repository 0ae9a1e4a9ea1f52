"""Run a load scenario against a fresh server and print a table of results.

    python loadtests/run.py fanout [--rooms 100 --clients 10 --rates 5,10,20,30,50 --step-s 10]
    python loadtests/run.py idle [--connections 5000 --rooms 500]
    python loadtests/run.py hotroom [--clients 200 --writers 5 --rates 10 --step-s 10]
    python loadtests/run.py bigdoc [--probes 5 --patches-per-txn 1000] [--store sqlite --restart]
    python loadtests/run.py crossinstance [--rooms 100 --clients 10 --rates 5,10,20]
    python loadtests/run.py persistence [--rates 20 --stores memory,sqlite,postgres]
    python loadtests/run.py drain [--clients 2000 --rooms 200 --drain-s 0,2,5,8 --rounds 1]
    python loadtests/run.py awareness [--clients 300 --hz 1 --step-s 20]
    python loadtests/run.py joinstorm [--doc-mb 20 --joiners 150 --window-s 1]

fanout, hotroom, idle, bigdoc, awareness and joinstorm take
`--server collab|node|pycrdt|relay` (default collab) or
`--servers a,b,...` (each in turn, then a comparison), and `--store memory|sqlite|postgres`
for collab. The server (and PostgreSQL or Redis, when used) runs pinned to CPU 0 and the Node
generator (`loadtests/gen.mjs`) to CPU 1. CPU time and RSS are read from /proc before and
after each measured phase. `--json PATH` writes the raw results. Run loadtests/setup.sh once
first. Exits 1 when the run could not be carried out (a server or the generator failed, a
connection was refused); loss is reported, not an error.
"""

from __future__ import annotations

import sys
from pathlib import Path

LOADTESTS_DIR = Path(__file__).resolve().parent
# harness/ is beside this file; collab and tests.support are in the repository root.
sys.path[:0] = [str(LOADTESTS_DIR), str(LOADTESTS_DIR.parent)]

from harness.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(description=__doc__.split("\n\n")[0]))
