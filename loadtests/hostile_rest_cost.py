"""What the work behind three REST requests costs for inputs shaped to be slow, without a
server: what a request holds the event loop (or the GIL, in a thread) for.

    python loadtests/hostile_rest_cost.py [--rounds 3] [--json FILE]

- **A note's text** (`POST …/notes` with `text`): `note_content`, which writes one
  paragraph per line, for 10,000 lines (the limit) of a few characters and 10,000 empty
  lines. Before the fix, 65,535 empty lines (a 64 KiB body) took about a minute: it is left
  out here.
- **A version diff** (`GET …/versions/{id}/diff`): `version_diff` of 6,666 distinct short
  paragraphs against the same with each neighbouring pair swapped (difflib alone rescans the
  rest of the lines for each pair), and against the same with two lines changed (the
  common case).
- **A snapshot** (`GET /api/v1/docs/…`): `document_to_json` of a note whose `meta` nests
  maps 3,000 deep (before the fix: a RecursionError, shown as "error").

Each is the median CPU time of the process (`time.process_time`) over `--rounds`. Run it
from the root of the checkout to measure: it imports `collab` from the current directory
(`git worktree add /tmp/before REV` for an earlier version).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path.cwd()))

from pycrdt import Doc, Map, XmlElement, XmlFragment, XmlText

from collab.rooms.note_fields import MAX_BODY_NODES, note_content
from collab.rooms.snapshot import document_to_json
from collab.rooms.version_diff import version_diff


def note_of(lines: list[str]) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    body = doc.get("body", type=XmlFragment)
    with doc.transaction():
        # Last first, each in front: linear in pycrdt (appending is not).
        for line in reversed(lines):
            body.children.insert(0, XmlElement("paragraph", {}, [XmlText(line)]))
    return doc


def deep_meta(depth: int) -> bytes:
    doc: Doc[Any] = Doc()
    meta = doc.get("meta", type=Map)
    with doc.transaction():
        meta["title"] = "deep"
        current = meta
        for _ in range(depth):
            current["k"] = Map()
            current = current["k"]
    return doc.get_update()


def timed(work: Callable[[], object], rounds: int) -> float | str:
    """Median milliseconds of CPU, or "error" naming what it raised."""
    samples = []
    for _ in range(rounds):
        started = time.process_time()
        try:
            work()
        except RecursionError:
            return "error: RecursionError"
        samples.append((time.process_time() - started) * 1000)
    return round(statistics.median(samples), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    lines = [f"{i:x}" for i in range(MAX_BODY_NODES // 3)]
    original = note_of(lines)
    swapped = note_of([lines[i ^ 1] for i in range(len(lines))])
    edited = list(lines)
    edited[100], edited[5000] = "changed", "also changed"
    two_changed = note_of(edited)
    deep = deep_meta(3000)
    words = "\n".join(f"line {i}" for i in range(10_000))

    cases: dict[str, Callable[[], object]] = {
        "note_content, 10,000 lines": lambda: note_content(text=words),
        "note_content, 10,000 empty lines": lambda: note_content(text="\n" * 9_999),
        f"version_diff, {len(lines):,} lines, neighbours swapped": lambda: version_diff(
            original, swapped
        ),
        f"version_diff, {len(lines):,} lines, two changed": lambda: version_diff(
            original, two_changed
        ),
        "document_to_json, meta nested 3,000 deep": lambda: document_to_json(deep),
    }
    results = {name: timed(work, args.rounds) for name, work in cases.items()}
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(f"code at {commit}, {platform.python_version()}, median of {args.rounds} rounds")
    for name, value in results.items():
        shown = f"{value:>9.1f} ms" if isinstance(value, float) else f"{value:>12}"
        print(f"  {name:<48} {shown}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "command": " ".join(sys.argv),
                    "commit": commit,
                    "python": platform.python_version(),
                    "rounds": args.rounds,
                    "cpu_ms": results,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
