"""idle: N connections over R rooms, each synced with one awareness state, held open."""

from __future__ import annotations

import argparse
import time
from typing import Any

from harness.errors import RunError
from harness.machine import check_nofile
from harness.meter import Meter
from harness.stack import Stack
from harness.tables import MIB, print_pairs


def run(args: argparse.Namespace, target: str) -> dict[str, Any]:
    check_nofile(args.connections)
    per_room = [
        args.connections // args.rooms + (1 if r < args.connections % args.rooms else 0)
        for r in range(args.rooms)
    ]
    with Stack() as stack:
        store = stack.store(args.store) if target == "collab" else None
        server = stack.target(target, store)
        config = {
            "scenario": "idle",
            "rooms": [
                {"urls": [server.client_url(f"idle{r}", "note", f"user{r}-{c}") for c in range(n)]}
                for r, n in enumerate(per_room)
            ],
            "connect_concurrency": args.connect_concurrency,
            "connect_timeout_ms": args.connect_timeout_s * 1000,
            "awareness_timeout_ms": args.awareness_timeout_s * 1000,
        }
        generator = stack.generator(config)
        meter = Meter({"server": server.usage, "generator": generator.usage})
        before = meter.snapshot()
        ready = generator.next_event(args.connect_timeout_s + args.awareness_timeout_s + 30)
        if ready["failed"]:
            raise RunError(f"{ready['failed']} connections failed: {ready['errors']}")
        connected = meter.snapshot()
        time.sleep(args.hold_s)
        generator.send("hold")
        held_event = generator.next_event(30)
        held = meter.snapshot()
        generator.quit()
    connections = ready["connections"]

    def cpu_s(role: str, start: Any, end: Any) -> float:
        return float(end.usage[role].cpu_s - start.usage[role].cpu_s)

    result = {
        "scenario": "idle",
        "server": target,
        "store": store.kind if store is not None else None,
        "connections": connections,
        "rooms": args.rooms,
        "connect_s": ready["connect_s"],
        "synced_s": ready["synced_s"],
        "awareness_complete": ready["awareness_complete"],
        "awareness_complete_peers": ready["awareness_complete_peers"],
        "open_after_hold": held_event["open_connections"],
        "closed": held_event["closed"],
        "hold_s": args.hold_s,
        "server_rss_bytes_before": before.usage["server"].rss_bytes,
        "server_rss_bytes_connected": connected.usage["server"].rss_bytes,
        "server_rss_bytes_held": held.usage["server"].rss_bytes,
        "server_rss_bytes_per_connection": (
            held.usage["server"].rss_bytes - before.usage["server"].rss_bytes
        )
        / connections,
        "server_cpu_s_connecting": cpu_s("server", before, connected),
        "server_cpu_pct_idle": 100
        * cpu_s("server", connected, held)
        / (held.at_s - connected.at_s),
        "generator_cpu_s_connecting": cpu_s("generator", before, connected),
        "other_cpu_s_connecting": connected.machine_busy_s
        - before.machine_busy_s
        - cpu_s("server", before, connected)
        - cpu_s("generator", before, connected),
        "generator_rss_bytes": held.usage["generator"].rss_bytes,
    }
    print_idle(result)
    return result


def print_idle(result: dict[str, Any]) -> None:
    awareness = str(result["awareness_complete"])
    if not result["awareness_complete"]:
        awareness += (
            f" ({result['awareness_complete_peers']} of {result['connections']} peers saw "
            "every state; a server that does not send the states it holds to a newcomer "
            f"leaves them incomplete; all synced after {result['synced_s']:.1f} s, then the "
            "generator waited --awareness-timeout-s)"
        )
    print_pairs(
        (
            ("connections (rooms)", f"{result['connections']} ({result['rooms']})"),
            ("connect + sync + awareness", f"{result['connect_s']:.1f} s"),
            ("every peer saw every awareness state", awareness),
            ("open after hold", f"{result['open_after_hold']} (closed: {result['closed']})"),
            ("server RSS before", f"{result['server_rss_bytes_before'] / MIB:.1f} MiB"),
            ("server RSS connected", f"{result['server_rss_bytes_connected'] / MIB:.1f} MiB"),
            ("server RSS after hold", f"{result['server_rss_bytes_held'] / MIB:.1f} MiB"),
            (
                "server RSS per connection",
                f"{result['server_rss_bytes_per_connection'] / 1024:.1f} KiB",
            ),
            ("server CPU while connecting", f"{result['server_cpu_s_connecting']:.2f} s"),
            ("server CPU while idle", f"{result['server_cpu_pct_idle']:.1f} %"),
            ("generator CPU while connecting", f"{result['generator_cpu_s_connecting']:.2f} s"),
            ("other CPU while connecting", f"{result['other_cpu_s_connecting']:.2f} s"),
        )
    )
