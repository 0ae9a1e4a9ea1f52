"""fanout (R rooms x C clients, 1 writer per room) and hotroom (1 room, W writers): the
generator's writers send at each rate in turn, one measured step per rate."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from harness.errors import RunError
from harness.generator import Generator
from harness.machine import check_nofile
from harness.meter import Meter, per_delivery_us, resources
from harness.stack import Stack
from harness.tables import MIB, Column, fixed, print_header, print_row


def parse_rates(text: str) -> list[float]:
    try:
        rates = [float(rate) for rate in text.split(",")]
    except ValueError:
        raise RunError(f"--rates must be numbers separated by commas, got {text!r}") from None
    if not all(rate > 0 for rate in rates):
        raise RunError(f"--rates must all be more than 0, got {text!r}")
    return rates


def loss_pct(step: dict[str, Any]) -> float:
    return 100 * (1 - step["received"] / step["expected"]) if step["expected"] else 0.0


FANOUT_COLUMNS = (
    Column("rate/w", 7, lambda s: f"{s['rate_per_writer']:g}"),
    Column("sent/s", 8, lambda s: f"{s['sent_per_s']:.0f}"),
    Column("deliv/s", 9, lambda s: f"{s['delivered_per_s']:.0f}"),
    Column("expected", 9, lambda s: str(s["expected"])),
    Column("received", 9, lambda s: str(s["received"])),
    Column("loss%", 7, lambda s: f"{loss_pct(s):.2f}"),
    Column("p50ms", 8, lambda s: fixed(s["latency_ms"]["p50"])),
    Column("p95ms", 8, lambda s: fixed(s["latency_ms"]["p95"])),
    Column("p99ms", 8, lambda s: fixed(s["latency_ms"]["p99"])),
    Column("srvCPU%", 8, lambda s: f"{s['server_cpu_pct']:.0f}"),
    Column("µs/deliv", 9, lambda s: fixed(s["server_cpu_us_per_delivered"])),
    Column("sys%", 5, lambda s: fixed(s["server_system_pct"], 0)),
    Column("srvRSS_MB", 10, lambda s: f"{s['server_rss_bytes'] / MIB:.0f}"),
    Column("genCPU%", 8, lambda s: f"{s['generator_cpu_pct']:.0f}"),
    Column("othCPU%", 8, lambda s: f"{s['other_cpu_pct']:.0f}"),
    Column("closed", 7, lambda s: str(sum(s["closed"].values()))),
)
# With the PostgreSQL store: its processes' CPU, and the server's plus its per delivery.
DATABASE_COLUMNS = (
    Column("pgCPU%", 7, lambda s: f"{s['database_cpu_pct']:.0f}"),
    Column("µs+pg", 7, lambda s: fixed(s["server_database_cpu_us_per_delivered"])),
)


SERVICES = ("database", "redis")


def fanout_config(
    args: argparse.Namespace, room_urls: list[list[str]], rates: list[float], writers: int
) -> dict[str, Any]:
    return {
        "scenario": "fanout",
        "writers_per_room": writers,
        "rooms": [{"urls": urls} for urls in room_urls],
        "rates_per_writer": rates,
        "step_s": args.step_s,
        "drain_s": args.drain_s,
        "connect_concurrency": args.connect_concurrency,
        "connect_timeout_ms": args.connect_timeout_s * 1000,
    }


def run_steps(
    generator: Generator,
    meter: Meter,
    rates: list[float],
    args: argparse.Namespace,
    columns: Sequence[Column],
) -> list[dict[str, Any]]:
    """Wait until every client is connected, then one step per rate, printing a row each;
    the meter must have "server" and "generator" roles, and may have SERVICES."""
    ready = generator.next_event(args.connect_timeout_s * 2 + 30)
    if ready["failed"]:
        raise RunError(f"{ready['failed']} connections failed: {ready['errors']}")
    steps = []
    for _rate in rates:
        before = meter.snapshot()
        generator.send("go")
        step = generator.next_event(args.step_s * 3 + args.drain_s + 30)
        step |= resources(before, meter.snapshot())
        step["server_cpu_us_per_delivered"] = per_delivery_us(
            step["server_cpu_s"], step["received"]
        )
        # A service collab runs on counts too: the server's CPU plus its, per delivery.
        for service in SERVICES:
            if f"{service}_cpu_s" in step:
                step[f"server_{service}_cpu_us_per_delivered"] = per_delivery_us(
                    step["server_cpu_s"] + step[f"{service}_cpu_s"], step["received"]
                )
        step["delivered_per_s"] = step["received"] / step["total_s"]
        step["sent_per_s"] = step["sent"] / step["send_s"]
        steps.append(step)
        if len(steps) == 1:
            print_header(columns)
        print_row(columns, step)
    generator.quit()
    return steps


def run(args: argparse.Namespace, target: str) -> dict[str, Any]:
    rates = parse_rates(args.rates)
    check_nofile(args.rooms * args.clients)
    writers = getattr(args, "writers", 1)
    prefix = "hot" if args.scenario == "hotroom" else "load"
    with Stack() as stack:
        store = stack.store(args.store) if target == "collab" else None
        server = stack.target(target, store, dict(args.server_env))
        room_urls = [
            [
                server.client_url(f"{prefix}{r}", "fanout", f"user{r}-{c}")
                for c in range(args.clients)
            ]
            for r in range(args.rooms)
        ]
        generator = stack.generator(fanout_config(args, room_urls, rates, writers))
        roles = {"server": server.usage, "generator": generator.usage}
        columns = FANOUT_COLUMNS
        if store is not None and store.postgres is not None:
            roles["database"] = store.postgres.usage
            columns += DATABASE_COLUMNS
        steps = run_steps(generator, Meter(roles), rates, args, columns)
    return {
        "scenario": args.scenario,
        "server": target,
        "store": store.kind if store is not None else None,
        "rooms": args.rooms,
        "clients": args.clients,
        "writers_per_room": writers,
        "server_env": dict(args.server_env) if target == "collab" else {},
        "steps": steps,
    }
