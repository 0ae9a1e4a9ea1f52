"""What one presence change costs, by the size of its workspace: two instances, one process.

    python loadtests/presence_cost.py [--users 100,1000,5000] [--changes 200]
                                      [--stores memory,redis] [--heartbeat-rounds 20]
                                      [--subscribes 100] [--json F]

For each store and workspace size U: instance A holds U users in workspace w1 (each with a
live connection there), instance B follows w1 (a `/ws/live` subscriber), as two
`PresenceService`s in this process sharing the in-process bus and store (`memory`) or a
throwaway `redis-server` (`redis`: `RedisBus` and `RedisPresenceStore`, as N instances run).
Then `--changes` times, one after another: A sets or clears one user's status, and the
change counts once B's subscriber has the update. Heartbeats are off (one an hour) and
flushes are not spaced (`min_flush_interval_s=0`), so each change is one flush of its own,
as changes spaced by more than 50 ms are.

Prints, per change, this process's CPU (both instances: A writing, B applying, and the
bus), redis-server's CPU, and the wall time until B had it. Then, with a new pair holding
the same users and nothing changing, the CPU of one heartbeat (A renewing what it wrote, B
re-reading the workspace), over `--heartbeat-rounds` heartbeats 0.25 s apart; and the CPU
of one more `/ws/live` subscriber of the workspace on B (`subscribe` and the JSON reply the
live channel sends), over `--subscribes` of them, as after a deploy when every dashboard
subscribes again.

The same script runs against an earlier checkout (it uses only the services' constructors,
`changed`, `subscribe` and `snapshot`), which is how a before/after is measured:
`git worktree add`, then run it there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.machine import machine_facts
from harness.procs import SERVER_CPU
from harness.services import RedisService

from collab.bus.memory import MemoryBroker, MemoryBus
from collab.presence.memory import MemoryPresenceBroker, MemoryPresenceStore
from collab.presence.registry import LocalPresence
from collab.presence.service import PresenceService

HOUR_S = 3600.0
HEARTBEAT_S = 0.25
WORKSPACE = "w1"
STATUSES: dict[str, str | None] = {}
"""Each user's status as last set (asking `LocalPresence` would cost a pass over them)."""


class Side:
    """One instance: its registry, service and bus."""

    def __init__(self, local: LocalPresence, service: PresenceService, bus: Any) -> None:
        self.local = local
        self.service = service
        self.bus = bus


async def start_pair(
    kind: str, redis_url: str | None, heartbeat_s: float = HOUR_S
) -> tuple[Side, Side, Any]:
    """A and B on one backend; B's events go to the returned queue."""
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    bus_broker, store_broker = MemoryBroker(), MemoryPresenceBroker()
    prefix = f"bench-{uuid.uuid4().hex}:"
    sides = []
    for name in ("A", "B"):
        instance_id = f"{name}-{uuid.uuid4().hex[:6]}"
        if kind == "memory":
            bus: Any = MemoryBus(bus_broker, instance_id)
            store: Any = MemoryPresenceStore(3 * HOUR_S, broker=store_broker)
        else:
            from collab.bus.redis import RedisBus
            from collab.presence.redis import RedisPresenceStore

            assert redis_url is not None
            bus = RedisBus(redis_url, instance_id=instance_id, channel_prefix=prefix)
            store = RedisPresenceStore(redis_url, ttl_s=3 * HOUR_S, key_prefix=prefix)
        local = LocalPresence()

        def on_events(workspace_id: str, batch: list[dict[str, Any]], mine: str = name) -> None:
            if mine == "B":
                for event in batch:
                    events.put_nowait(event)

        service = PresenceService(
            local,
            store,
            bus,
            instance_id=instance_id,
            heartbeat_s=heartbeat_s,
            on_events=on_events,
            min_flush_interval_s=0.0,
        )
        await bus.start()
        for _ in range(200):
            try:
                await bus.ping()
                break
            except Exception:
                await asyncio.sleep(0.05)
        await service.start()
        sides.append(Side(local, service, bus))
    return sides[0], sides[1], events


async def measure(
    kind: str,
    users: int,
    changes: int,
    heartbeats: int,
    subscribes: int,
    redis: RedisService | None,
) -> dict:
    a, b, events = await start_pair(kind, redis.url if redis else None)
    STATUSES.clear()
    try:
        await populate(a, b, users)
        # The first change after subscribing may be re-read (a bus gap): not measured.
        await change_and_wait(a, events, 0, "warm")
        redis_before = redis.usage().cpu_s if redis else 0.0
        cpu_before, wall = time.process_time(), []
        for i in range(changes):
            started = time.perf_counter()
            await change_and_wait(a, events, (i * 7919) % users, "away" if i % 2 else None)
            wall.append(time.perf_counter() - started)
        cpu = time.process_time() - cpu_before
        redis_cpu = (redis.usage().cpu_s - redis_before) if redis else 0.0
    finally:
        await close_pair(a, b)
    a, b, events = await start_pair(kind, redis.url if redis else None, HEARTBEAT_S)
    try:
        await populate(a, b, users)
        await asyncio.sleep(2 * HEARTBEAT_S)
        idle_before = time.process_time()
        await asyncio.sleep(heartbeats * HEARTBEAT_S)
        per_heartbeat = (time.process_time() - idle_before) / heartbeats
        subscribe_before = time.process_time()
        for _ in range(subscribes):
            users_json = await b.service.subscribe(WORKSPACE)
            orjson.dumps({"type": "presence.snapshot", "workspace": WORKSPACE, "users": users_json})
        per_subscribe = (time.process_time() - subscribe_before) / subscribes
    finally:
        await close_pair(a, b)
    return {
        "store": kind,
        "users": users,
        "changes": changes,
        "process_cpu_us_per_change": round(cpu / changes * 1e6, 1),
        "redis_cpu_us_per_change": round(redis_cpu / changes * 1e6, 1),
        "wall_ms_median": round(statistics.median(wall) * 1e3, 3),
        "wall_ms_max": round(max(wall) * 1e3, 3),
        "heartbeats": heartbeats,
        "process_cpu_us_per_heartbeat": round(per_heartbeat * 1e6, 1),
        "subscribes": subscribes,
        "process_cpu_us_per_subscribe": round(per_subscribe * 1e6, 1),
    }


async def populate(a: Side, b: Side, users: int) -> None:
    """A's users, written; B following the workspace with all of them."""
    for n in range(users):
        a.local.connect(f"c{n}", f"u{n}", f"User {n}")
        for workspace_id in a.local.join_workspace(f"c{n}", WORKSPACE):
            a.service.changed(workspace_id)
    deadline = time.monotonic() + 60
    while len(await a.service.snapshot(WORKSPACE)) < users:
        if time.monotonic() > deadline:
            raise RuntimeError(f"A never wrote its {users} users")
        await asyncio.sleep(0.05)
    if len(await b.service.subscribe(WORKSPACE)) != users:
        raise RuntimeError(f"B does not see the {users} users")


async def close_pair(a: Side, b: Side) -> None:
    for side in (a, b):
        await side.service.close()
        await side.bus.close()


async def change_and_wait(
    a: Side, events: asyncio.Queue[dict[str, Any]], index: int, status: str | None
) -> None:
    while not events.empty():
        events.get_nowait()
    user_id = f"u{index}"
    if STATUSES.get(user_id) == status:
        status = None if status else "busy"
    STATUSES[user_id] = status
    for workspace_id in a.local.set_status(f"c{index}", WORKSPACE, status):
        a.service.changed(workspace_id)
    while True:
        event = await asyncio.wait_for(events.get(), timeout=60)
        if event.get("type") == "presence.update" and event["user"]["user"] == user_id:
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", default="100,1000,5000")
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--stores", default="memory,redis")
    parser.add_argument("--heartbeat-rounds", type=int, default=20)
    parser.add_argument("--subscribes", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sizes = [int(n) for n in args.users.split(",")]
    stores = args.stores.split(",")
    os.sched_setaffinity(0, {1 - SERVER_CPU} if os.cpu_count() and os.cpu_count() > 1 else {0})
    redis = RedisService() if "redis" in stores else None
    rows = []
    try:
        for kind in stores:
            for users in sizes:
                row = asyncio.run(
                    measure(
                        kind, users, args.changes, args.heartbeat_rounds, args.subscribes, redis
                    )
                )
                rows.append(row)
                print(
                    f"{kind:7} {users:6} users: {row['process_cpu_us_per_change']:9.1f} µs CPU"
                    f" per change (+ Redis {row['redis_cpu_us_per_change']:7.1f} µs),"
                    f" wall median {row['wall_ms_median']:.2f} ms, max {row['wall_ms_max']:.2f};"
                    f" {row['process_cpu_us_per_heartbeat']:9.1f} µs CPU per heartbeat,"
                    f" {row['process_cpu_us_per_subscribe']:9.1f} per subscriber",
                    flush=True,
                )
    finally:
        if redis is not None:
            redis.stop()
    if args.json:
        result = {
            "command": "python loadtests/presence_cost.py " + " ".join(sys.argv[1:]),
            "machine": machine_facts(),
            "rows": rows,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
