"""Fan-out results of several runs (`run.py fanout --json`), summed up with intervals.

    python loadtests/paired.py sides DIR/on-*.json -- DIR/off-*.json
    python loadtests/paired.py servers DIR/s1-*.json

`sides`: two checkouts (or two configurations) run in alternating rounds, each round's files
numbered alike (`on-7.json`, `off-7.json`). For each step, collab's CPU per delivery of the
first side against the second, paired by round: absolute, and against the relay of the same
run (which takes out what the machine did between the two runs).

`servers`: runs with collab and other servers in one invocation. For each step, collab's CPU
per delivery against each other server of the same run: the geometric mean of the ratios over
the runs, with the interval of its logarithm.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import sys
from pathlib import Path
from typing import Any

LOADTESTS_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(LOADTESTS_DIR)]

from harness.stats import estimate  # noqa: E402

US = "server_cpu_us_per_delivered"


def results_of(path: str) -> dict[str, Any]:
    results: dict[str, Any] = json.loads(Path(path).read_text())["results"]
    return results


def per_delivery(results: dict[str, Any], server: str, step: int) -> float | None:
    steps = results.get(server, {}).get("steps", [])
    return float(steps[step][US]) if step < len(steps) else None


def by_round(paths: list[str]) -> dict[int, str]:
    rounds = {}
    for path in paths:
        match = re.search(r"(\d+)\.json$", path)
        if match is None:
            raise SystemExit(f"{path}: no round number before .json")
        rounds[int(match.group(1))] = path
    return rounds


def sides(first: list[str], second: list[str]) -> None:
    a, b = by_round(first), by_round(second)
    pairs = [
        (results_of(a[number]), results_of(b[number])) for number in sorted(a.keys() & b.keys())
    ]
    steps = len(pairs[0][0]["collab"]["steps"])
    for step in range(steps):
        collab: list[tuple[float, float]] = []
        relay: list[tuple[float, float]] = []
        for ra, rb in pairs:
            ca, cb = per_delivery(ra, "collab", step), per_delivery(rb, "collab", step)
            la, lb = per_delivery(ra, "relay", step), per_delivery(rb, "relay", step)
            if ca is None or cb is None:
                continue
            collab.append((ca, cb))
            if la and lb:
                relay.append((la, lb))
        absolute = [ca / cb - 1 for ca, cb in collab]
        line = f"step {step + 1}: {len(collab)} rounds; collab {_means(collab)} µs per delivery"
        print(line + (f" (relay {_means(relay)})" if relay else ""))
        print("  absolute         ", estimate(absolute).describe(100, " %"))
        if len(relay) == len(collab) and len(relay) > 1:
            relative = [
                (ca / la) / (cb / lb) - 1 for (ca, cb), (la, lb) in zip(collab, relay, strict=True)
            ]
            print("  against the relay", estimate(relative).describe(100, " %"))


def _means(pairs: list[tuple[float, float]]) -> str:
    """`11.60 against 11.18`: the two sides' means."""
    first, second = statistics.mean(a for a, _ in pairs), statistics.mean(b for _, b in pairs)
    return f"{first:.2f} against {second:.2f}"


def servers(paths: list[str]) -> None:
    runs = [results_of(path) for path in paths]
    others = sorted({name for run in runs for name in run} - {"collab"})
    steps = len(runs[0]["collab"]["steps"])
    for step in range(steps):
        print(f"step {step + 1}: {len(runs)} runs")
        for other in others:
            logs = []
            for run in runs:
                mine, theirs = per_delivery(run, "collab", step), per_delivery(run, other, step)
                if mine and theirs:
                    logs.append(math.log(mine / theirs))
            if len(logs) < 2:
                continue
            found = estimate(logs)
            print(
                f"  collab / {other}: geometric mean {math.exp(found.mean):.3f}x "
                f"(95 % {math.exp(found.low):.3f} to {math.exp(found.high):.3f}; "
                f"each {', '.join(f'{math.exp(v):.2f}' for v in logs)})"
            )


def main() -> None:
    argv = sys.argv[1:]
    if not argv or argv[0] not in ("sides", "servers"):
        raise SystemExit(__doc__)
    mode, files = argv[0], argv[1:]
    if mode == "servers":
        if len(files) < 2:
            raise SystemExit("servers: at least two runs")
        servers(files)
        return
    if "--" not in files:
        raise SystemExit("sides: put -- between the two sides' files")
    split = files.index("--")
    first, second = files[:split], files[split + 1 :]
    if len(first) < 2 or len(second) < 2:
        raise SystemExit("sides: at least two rounds a side")
    sides(first, second)


if __name__ == "__main__":
    main()
