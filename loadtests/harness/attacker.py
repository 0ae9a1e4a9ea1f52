"""The attacker process: `python -m harness.attacker CONFIG.json` (from loadtests/).

It prepares the attack the config names (builds its updates, opens its connections), prints
`ready`, waits for `go` on stdin, attacks until done or `attack_s` later, and prints
`result <json>`. Driven by `harness.attack_run.AttackerProcess`; run apart from the probe so
that its own CPU (building, sending, reading) never delays the probe's clock.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from harness import attack_kinds, attack_rest


class Attack(Protocol):
    async def prepare(self) -> None: ...

    async def run(self, deadline: float) -> dict[str, Any]: ...

    async def close(self) -> None: ...


ATTACKS: dict[str, type[Any]] = {
    "d1": attack_kinds.D1,
    "d1rest": attack_rest.D1Rest,
    "d2": attack_kinds.D2,
    "d3": attack_kinds.D3,
    "d4": attack_kinds.D4,
    "d4cap": attack_kinds.D4,
    "d5": attack_rest.D5,
    "d9": attack_kinds.D9,
}


class Reporter:
    """Prints the one `result` line: the attack's, or the error that stopped it."""

    def __init__(self) -> None:
        self.done = False

    def emit(self, result: dict[str, Any]) -> None:
        if not self.done:
            self.done = True
            print("result " + json.dumps(result), flush=True)


async def attack(config: dict[str, Any], reporter: Reporter) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        chosen: Attack = ATTACKS[config["attack"]](config, session)
        try:
            async with asyncio.timeout(config["prepare_timeout_s"]):
                await chosen.prepare()
            print("ready", flush=True)
            line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            if line.strip() != "go":
                reporter.emit({"error": f"expected go, got {line!r}"})
                return
            deadline = time.monotonic() + config["attack_s"]
            # Reported before the connections close: the attack ends here.
            reporter.emit(await chosen.run(deadline))
        finally:
            await chosen.close()


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[1]).read_text())
    reporter = Reporter()
    try:
        asyncio.run(attack(config, reporter))
    except Exception as error:  # reported to the parent, which stops the run
        reporter.emit(
            {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
