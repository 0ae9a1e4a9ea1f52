"""crossinstance: two collab instances on one Redis; each room's writer on A, its readers on
B, so every delivery crosses the bus. The same steps then run against a single instance (every
client on one server, no Redis) for comparison."""

from __future__ import annotations

import argparse
import secrets
from typing import Any

from harness.machine import check_nofile
from harness.meter import Meter
from harness.scenarios.fanout import (
    FANOUT_COLUMNS,
    fanout_config,
    loss_pct,
    parse_rates,
    run_steps,
)
from harness.stack import Stack
from harness.tables import Column, fixed, heading, print_table

CROSS_COLUMNS = (
    *FANOUT_COLUMNS,
    Column("A_CPU%", 7, lambda s: f"{s['server_a_cpu_pct']:.0f}"),
    Column("B_CPU%", 7, lambda s: f"{s['server_b_cpu_pct']:.0f}"),
    Column("redis%", 7, lambda s: f"{s['redis_cpu_pct']:.0f}"),
    Column("µs+redis", 9, lambda s: fixed(s["server_redis_cpu_us_per_delivered"])),
)


def run(args: argparse.Namespace) -> dict[str, Any]:
    rates = parse_rates(args.rates)
    check_nofile(args.rooms * args.clients)
    heading(f"cross-instance: each room's writer on A, its {args.clients - 1} readers on B, Redis")
    cross = run_cross(args, rates)
    heading("single instance: every client on one server, in-process bus")
    single = run_single(args, rates)
    heading("cross-instance vs single instance")
    print_comparison(cross, single)
    return {
        "scenario": "crossinstance",
        "rooms": args.rooms,
        "clients": args.clients,
        "writers_per_room": 1,
        "cross": cross,
        "single": single,
    }


def run_cross(args: argparse.Namespace, rates: list[float]) -> list[dict[str, Any]]:
    with Stack() as stack:
        redis = stack.redis()
        secret = secrets.token_urlsafe(48)
        a, b = (
            stack.collab(
                "memory://",
                secret=secret,
                redis_url=redis.url,
                log_name=f"server-{name.lower()}.log",
                label=f"collab serve {name}",
            )
            for name in ("A", "B")
        )
        room_urls = [
            [
                (a if c == 0 else b).client_url(f"cross{r}", "fanout", f"user{r}-{c}")
                for c in range(args.clients)
            ]
            for r in range(args.rooms)
        ]
        generator = stack.generator(fanout_config(args, room_urls, rates, writers=1))
        meter = Meter(
            {
                "server": lambda: a.usage() + b.usage(),
                "server_a": a.usage,
                "server_b": b.usage,
                "redis": redis.usage,
                "generator": generator.usage,
            },
            parts=frozenset({"server_a", "server_b"}),
        )
        return run_steps(generator, meter, rates, args, CROSS_COLUMNS)


def run_single(args: argparse.Namespace, rates: list[float]) -> list[dict[str, Any]]:
    with Stack() as stack:
        server = stack.collab("memory://")
        room_urls = [
            [server.client_url(f"cross{r}", "fanout", f"user{r}-{c}") for c in range(args.clients)]
            for r in range(args.rooms)
        ]
        generator = stack.generator(fanout_config(args, room_urls, rates, writers=1))
        meter = Meter({"server": server.usage, "generator": generator.usage})
        return run_steps(generator, meter, rates, args, FANOUT_COLUMNS)


def _added(cross: float | None, single: float | None) -> str:
    return "-" if cross is None or single is None else f"{cross - single:+.1f}"


def print_comparison(cross: list[dict[str, Any]], single: list[dict[str, Any]]) -> None:
    rows = []
    for c, s in zip(cross, single, strict=True):
        cl, sl = c["latency_ms"], s["latency_ms"]
        rows.append(
            {
                "rate": c["rate_per_writer"],
                "cross": cl,
                "single": sl,
                "added_p50": _added(cl["p50"], sl["p50"]),
                "added_p99": _added(cl["p99"], sl["p99"]),
                "us_ab": c["server_cpu_us_per_delivered"],
                "us_redis": c["server_redis_cpu_us_per_delivered"],
                "us_single": s["server_cpu_us_per_delivered"],
                "loss_cross": loss_pct(c),
                "loss_single": loss_pct(s),
            }
        )
    columns = (
        Column("rate/w", 7, lambda r: f"{r['rate']:g}"),
        Column("p50 x", 7, lambda r: fixed(r["cross"]["p50"])),
        Column("p50 1", 7, lambda r: fixed(r["single"]["p50"])),
        Column("+p50", 7, lambda r: r["added_p50"]),
        Column("p95 x", 7, lambda r: fixed(r["cross"]["p95"])),
        Column("p95 1", 7, lambda r: fixed(r["single"]["p95"])),
        Column("p99 x", 7, lambda r: fixed(r["cross"]["p99"])),
        Column("p99 1", 7, lambda r: fixed(r["single"]["p99"])),
        Column("+p99", 7, lambda r: r["added_p99"]),
        Column("µs A+B", 8, lambda r: fixed(r["us_ab"])),
        Column("µs+redis", 9, lambda r: fixed(r["us_redis"])),
        Column("µs 1", 7, lambda r: fixed(r["us_single"])),
        Column("loss% x", 8, lambda r: f"{r['loss_cross']:.2f}"),
        Column("loss% 1", 8, lambda r: f"{r['loss_single']:.2f}"),
    )
    print_table(columns, rows)
    print(
        "(latencies in ms; x: cross-instance, 1: single instance; +p50/+p99: added by crossing "
        "instances; µs: server CPU per delivered update, A+B, A+B+Redis, single)"
    )
