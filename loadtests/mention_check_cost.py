"""What reading a note's mentions costs, by the size of its body, without a server: the work
of one check of a changed note (`collab.rooms.mentions.mentioned_users`), on the event loop.

    python loadtests/mention_check_cost.py [--paragraphs 1000,10000,50000] [--json FILE]

Each body is that many paragraphs of 18 words and one mention. Reported: the update's size
and the CPU of one read (`time.process_time`, median of 3 rounds). Run it from the root of
the checkout: it imports `collab` from the current directory.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path.cwd()))

from pycrdt import Doc, XmlElement, XmlFragment, XmlText

from collab.rooms.mentions import mentioned_users


def body_of(paragraphs: int) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    body = doc.get("body", type=XmlFragment)
    with doc.transaction():
        # Last first, each in front: linear in pycrdt (appending is not).
        for number in reversed(range(paragraphs)):
            text = "word " * 18 + f"@u{number % 50}"
            body.children.insert(0, XmlElement("paragraph", {}, [XmlText(text)]))
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paragraphs", default="1000,10000,50000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    for paragraphs in (int(n) for n in args.paragraphs.split(",")):
        doc = body_of(paragraphs)
        times = []
        for _ in range(args.rounds):
            started = time.process_time()
            mentioned_users(doc)
            times.append(time.process_time() - started)
        rows.append(
            {
                "paragraphs": paragraphs,
                "update_kib": len(doc.get_update()) // 1024,
                "cpu_ms_median": round(statistics.median(times) * 1e3, 1),
            }
        )
    result = {
        "rows": rows,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
    }
    print(json.dumps(result, indent=1))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
