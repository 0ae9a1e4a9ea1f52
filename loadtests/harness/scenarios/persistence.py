"""persistence: the fan-out scenario against collab once per store (memory, SQLite,
PostgreSQL), compared in one table."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from harness.errors import RunError
from harness.scenarios import fanout
from harness.scenarios.fanout import loss_pct
from harness.tables import MIB, Column, fixed, heading, print_table, ratio


def store_list(text: str) -> list[str]:
    return [store.strip() for store in text.split(",") if store.strip()]


def run(args: argparse.Namespace) -> dict[str, Any]:
    stores = store_list(args.stores)
    runs: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for store in stores:
        heading(f"collab, {store} store")
        try:
            runs[store] = fanout.run(argparse.Namespace(**{**vars(args), "store": store}), "collab")
        except RunError as error:
            # Keep going: one store failing must not cost the others' results.
            print(f"run.py: {store} store: {error}", file=sys.stderr)
            errors[store] = str(error)
    if runs:
        heading("stores compared")
        print_comparison(runs)
    return {"scenario": "persistence", "stores": stores, "runs": runs, "errors": errors}


def print_comparison(runs: dict[str, dict[str, Any]]) -> None:
    reference = runs.get("memory") or next(iter(runs.values()))
    rows = []
    for store, result in runs.items():
        for index, step in enumerate(result["steps"]):
            with_db = step.get("server_database_cpu_us_per_delivered")
            rows.append(
                {
                    **step,
                    "store": store,
                    # SQLite works inside the server process: its cost is in srvCPU already.
                    "us_with_db": with_db
                    if with_db is not None
                    else step["server_cpu_us_per_delivered"],
                    "reference_us": reference["steps"][index]["server_cpu_us_per_delivered"]
                    if index < len(reference["steps"])
                    else None,
                }
            )
    columns = (
        Column("store", 9, lambda r: r["store"]),
        Column("rate/w", 7, lambda r: f"{r['rate_per_writer']:g}"),
        Column("deliv/s", 9, lambda r: f"{r['delivered_per_s']:.0f}"),
        Column("loss%", 7, lambda r: f"{loss_pct(r):.2f}"),
        Column("p50ms", 8, lambda r: fixed(r["latency_ms"]["p50"])),
        Column("p99ms", 8, lambda r: fixed(r["latency_ms"]["p99"])),
        Column("srvCPU%", 8, lambda r: f"{r['server_cpu_pct']:.0f}"),
        Column("pgCPU%", 7, lambda r: fixed(r.get("database_cpu_pct"), 0)),
        Column("µs/deliv", 9, lambda r: fixed(r["server_cpu_us_per_delivered"])),
        Column("µs+db", 7, lambda r: fixed(r["us_with_db"])),
        Column("vs mem", 7, lambda r: ratio(r["us_with_db"], r["reference_us"])),
        Column("srvRSS_MB", 10, lambda r: f"{r['server_rss_bytes'] / MIB:.0f}"),
        Column("othCPU%", 8, lambda r: f"{r['other_cpu_pct']:.0f}"),
    )
    print_table(columns, rows)
    print(
        "(µs/deliv: collab's CPU per delivered update; µs+db: with PostgreSQL's processes "
        "(SQLite runs inside collab, so it equals µs/deliv); vs mem: µs+db over the memory "
        "store's µs/deliv at the same rate)"
    )
