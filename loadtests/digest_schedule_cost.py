"""What a wake-up of the email digests' scheduler costs with many users scheduled, without a
server or an SMTP server: the CPU of `EmailDigests` looking for who is due.

    python loadtests/digest_schedule_cost.py [--users 100000] [--wakes 200] [--json FILE]

`--users` users are scheduled for later (each had a digest within the interval and got
another notification: the common state of a big, busy deployment), then `--wakes` more users
get a notification each, as a workspace posting messages does: each wakes the scheduler,
which looks for what is due. Reported: CPU µs per wake-up (`time.process_time`, median of 3
rounds). Run it from the root of the checkout to measure: it imports `collab` from the current
directory (`git worktree add /tmp/before REV` for an earlier version).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))

from collab.auth.unsubscribe import UnsubscribeSigner
from collab.rooms.email_digests import EmailDigests
from collab.rooms.smtp import MemoryMailSender
from collab.settings import Secret
from collab.store.memory import MemoryStore
from collab.store.notifications import Notification


async def one_round(users: int, wakes: int) -> float:
    """CPU seconds per wake-up."""
    store = MemoryStore()
    await store.open()
    now = [1_000_000.0]

    async def is_online(user_id: str, workspace_ids: Sequence[str]) -> bool:
        return True  # nobody is emailed: only the scheduling is measured

    digests = EmailDigests(
        store,
        MemoryMailSender(),
        is_online=is_online,
        signer=UnsubscribeSigner.from_secret(Secret("s" * 40)),
        email_from="notes@example.com",
        public_url="https://notes.example.com",
        interval_s=600.0,
        instance_id="i1",
        clock=lambda: now[0],
    )
    for number in range(users):
        digests._schedule(f"later{number}", now[0] + 1 + number % 600)
    await digests.start()
    await asyncio.sleep(0)
    started = time.process_time()
    for number in range(wakes):
        digests.notification_created(
            Notification(number, f"now{number}", "w1", "message", {}, "", None)
        )
        # Until its turn came and went (`settled()` would look at every user itself).
        while digests._running or f"now{number}" in digests._due:  # noqa: ASYNC110
            await asyncio.sleep(0)
    elapsed = time.process_time() - started
    await digests.close()
    await store.close()
    return elapsed / wakes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--wakes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    per_wake = [asyncio.run(one_round(args.users, args.wakes)) for _ in range(args.rounds)]
    result = {
        "users_scheduled": args.users,
        "wakes": args.wakes,
        "cpu_us_per_wake_median": round(statistics.median(per_wake) * 1e6, 1),
        "cpu_us_per_wake": [round(value * 1e6, 1) for value in per_wake],
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
    }
    print(json.dumps(result, indent=1))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
