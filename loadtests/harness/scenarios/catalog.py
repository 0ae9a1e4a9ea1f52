"""catalog: the notes catalog's listing, filters, sorts, paging and search over REST, on a
workspace of N notes, per store (SQLite, PostgreSQL).

Per store: a fresh database (a file in the run's temp dir, or a throwaway PostgreSQL cluster
pinned to CPU 0), the workspace written into it through the store's catalog interface
(`harness.catalog_data`), then `python -m collab serve` on it pinned to CPU 0, and the
queries (`harness.catalog_queries`) timed from an aiohttp client in this process, pinned to
CPU 1. Then each query's SQL is explained and timed: SQLite's in this process (EXPLAIN QUERY
PLAN), PostgreSQL's with EXPLAIN (ANALYZE, BUFFERS).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

from collab.auth.tokens import Role, mint_token
from collab.store import PostgresStore
from harness.catalog_data import WORKSPACE, generate
from harness.catalog_queries import (
    matches_key,
    measure,
    postgres_plans,
    queries,
    sqlite_plans,
)
from harness.errors import RunError
from harness.procs import GENERATOR_CPU, can_pin, cpu_ns, machine_busy_s
from harness.scenarios.persistence import store_list
from harness.stack import Stack
from harness.tables import MIB, Column, fixed, heading, print_header, print_row, print_table

CATALOG_STORES = ("sqlite", "postgres")
READER_TTL_S = 6 * 3600
SERVER_SETTINGS = {"COLLAB_USER_REQUESTS_PER_S": "0"}


def run(args: argparse.Namespace) -> dict[str, Any]:
    stores = store_list(args.stores)
    runs: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for kind in stores:
        heading(f"catalog: {args.notes} notes, {kind} store")
        try:
            runs[kind] = run_store(args, kind)
        except RunError as error:
            # Keep going: one store failing must not cost the others' results.
            print(f"run.py: {kind} store: {error}", file=sys.stderr)
            errors[kind] = str(error)
            continue
        wrong = [q["name"] for q in runs[kind]["queries"] if q["errors"]]
        if wrong:
            errors[kind] = f"{len(wrong)} queries had errors: {', '.join(wrong)}"
            print(f"run.py: {kind} store: {errors[kind]}", file=sys.stderr)
    if len(runs) > 1:
        heading("stores compared (p95 ms)")
        print_comparison(runs)
    return {
        "scenario": "catalog",
        "stores": stores,
        "notes": args.notes,
        "runs": runs,
        "errors": errors,
    }


def run_store(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    if kind == "postgres" and not hasattr(PostgresStore, "list_notes"):
        raise RunError(
            "PostgresStore has no catalog (list_notes, index_note) in this checkout: the "
            "PostgreSQL catalog backend has not landed"
        )
    with Stack() as stack:
        store = stack.store(kind)
        print(
            f"writing {args.notes} notes through the store's catalog interface (index_note, "
            f"trash_note{', append_updates' if args.documents else ''}), not WebSocket edits"
            + (
                "; on SQLite its statements on one connection, 1000 notes per transaction"
                if kind == "sqlite" and not args.documents
                else ""
            )
        )
        try:
            generated = asyncio.run(
                generate(
                    store.database_url,
                    notes=args.notes,
                    seed=args.seed,
                    documents=args.documents,
                    progress=lambda line: print(line, flush=True),
                )
            )
        except Exception as error:
            raise RunError(
                f"writing the workspace failed: {type(error).__name__}: {error}"
            ) from error
        print(
            f"{generated.notes} notes ({generated.live} live, {generated.trashed} trashed, "
            f"{generated.edited} edited later) in {generated.seconds:.1f} s "
            f"({generated.notes / generated.seconds:.0f} notes/s)"
        )
        # One reader sends thousands of requests: the per-user REST rate limit would 429 it.
        server = stack.collab(store.database_url, settings=SERVER_SETTINGS)
        roles = {
            "server": lambda: cpu_ns(server.pid) / 1e9,
            "client": time.process_time,
            "machine": machine_busy_s,
        }
        postgres = store.postgres
        if postgres is not None:
            roles["database"] = lambda: postgres.cpu_ns() / 1e9
        token = mint_token(
            server.settings,
            sub="catalog-reader",
            workspaces={WORKSPACE: Role.VIEWER},
            ttl_s=READER_TTL_S,
        )
        measured = queries(generated)
        columns = table_columns(database=postgres is not None, sql=False)
        print_header(columns)
        previous = os.sched_getaffinity(0)
        if can_pin(GENERATOR_CPU):
            os.sched_setaffinity(0, {GENERATOR_CPU})
        try:
            results = asyncio.run(
                measure(
                    f"http://127.0.0.1:{server.port}",
                    token,
                    WORKSPACE,
                    measured,
                    requests=args.requests,
                    warmup=args.warmup,
                    max_s=args.max_query_s,
                    cpu=lambda: {role: sample() for role, sample in roles.items()},
                    report=lambda result: print_row(columns, result),
                )
            )
        finally:
            os.sched_setaffinity(0, previous)
        rss = server.usage().rss_bytes
        plans: dict[str, Any] = {}
        if kind == "sqlite":
            plans = sqlite_plans(store.database_url.removeprefix("sqlite:///"), WORKSPACE, measured)
        else:
            plans = asyncio.run(postgres_plans(store.database_url, WORKSPACE, measured))
        for result in results:
            if result["name"] in plans:
                result["sql_ms"] = plans[result["name"]]["ms"]
    for query, result in zip(measured, results, strict=True):
        key = matches_key(query)
        if key is not None:
            result["matching_notes"] = generated.search.matches.get(key, 0)
    print_summary(results, rss)
    if plans:
        if kind == "sqlite":
            print("\nSQLite: each query's first page run in this process (best of 3, ms):")
        else:
            print("\nPostgreSQL: each query's first page, EXPLAIN ANALYZE's execution time (ms):")
        print_table(table_columns(database=False, sql=True, short=True), results)
        if args.explain:
            print_plans(plans)
    return {
        "store": kind,
        "generation": generated.to_json(),
        "server_rss_bytes": rss,
        "requests_per_query": args.requests,
        "warmup_per_query": args.warmup,
        "max_query_s": args.max_query_s,
        "queries": results,
        "plans": plans or None,
    }


def met_cell(result: dict[str, Any]) -> str:
    p95 = result["latency_ms"]["p95"]
    if result["errors"]:
        return "ERRORS"
    if p95 is None:
        return "-"
    if result["met"]:
        return "yes"
    return f"NO +{100 * (p95 / result['target_p95_ms'] - 1):.0f}%"


def table_columns(*, database: bool, sql: bool, short: bool = False) -> list[Column]:
    columns = [Column("query", 42, lambda r: r["name"][:42].ljust(42))]
    if not short:
        columns += [
            Column("req", 5, lambda r: str(r["requests"])),
            Column("rows", 5, lambda r: f"{r['rows_per_page']:.0f}"),
            Column("p50ms", 8, lambda r: fixed(r["latency_ms"]["p50"])),
            Column("p95ms", 8, lambda r: fixed(r["latency_ms"]["p95"])),
            Column("p99ms", 8, lambda r: fixed(r["latency_ms"]["p99"])),
            Column("maxms", 8, lambda r: fixed(r["latency_ms"]["max"])),
            Column("target", 6, lambda r: f"{r['target_p95_ms']:.0f}"),
            Column("p95 met", 9, met_cell),
            Column("srvCPUms", 9, lambda r: fixed(r.get("server_cpu_ms_per_request"), 2)),
        ]
        if database:
            columns.append(
                Column("pgCPUms", 8, lambda r: fixed(r.get("database_cpu_ms_per_request"), 2))
            )
        columns += [
            Column("cliCPUms", 9, lambda r: fixed(r.get("client_cpu_ms_per_request"), 2)),
            Column("othCPU%", 8, lambda r: fixed(r.get("other_cpu_pct"), 0)),
            Column("err", 4, lambda r: str(r["errors"])),
        ]
    if sql:
        columns += [
            Column("sqlms", 8, lambda r: fixed(r.get("sql_ms"), 2)),
            Column("p50ms", 8, lambda r: fixed(r["latency_ms"]["p50"])),
            Column("matches", 8, lambda r: str(r.get("matching_notes", ""))),
        ]
    return columns


def print_summary(results: list[dict[str, Any]], rss: int) -> None:
    for kind, label in (("list", "list/filter/sort/paging"), ("search", "search")):
        of_kind = [r for r in results if r["kind"] == kind]
        missed = [r for r in of_kind if not r["met"]]
        worst = max(of_kind, key=lambda r: r["latency_ms"]["p95"] or 0)
        print(
            f"{label}: {len(of_kind) - len(missed)} of {len(of_kind)} queries under their p95 "
            f"target ({of_kind[0]['target_p95_ms']:.0f} ms); slowest p95 "
            f"{fixed(worst['latency_ms']['p95'])} ms ({worst['name']})"
        )
    print(
        "(latency: request sent -> body read, one request at a time; srvCPUms, cliCPUms: the "
        "server's and this client's CPU per request; othCPU%: everything else on the machine, "
        f"% of one core; server RSS at the end {rss / MIB:.0f} MiB)"
    )


def print_plans(plans: dict[str, dict[str, Any]]) -> None:
    for name, plan in plans.items():
        print(f"\n-- {name} ({fixed(plan['ms'], 2)} ms)")
        for line in plan["plan"]:
            print(f"   {line}")


def print_comparison(runs: dict[str, dict[str, Any]]) -> None:
    names = [q["name"] for q in next(iter(runs.values()))["queries"]]
    by_store = {kind: {q["name"]: q for q in result["queries"]} for kind, result in runs.items()}
    columns = [Column("query", 42, lambda r: r["name"][:42].ljust(42))]
    for kind in runs:
        columns.append(
            Column(
                kind,
                9,
                lambda r, kind=kind: fixed(
                    by_store[kind].get(r["name"], {}).get("latency_ms", {}).get("p95")
                ),
            )
        )
    columns.append(Column("target", 7, lambda r: f"{r['target']:.0f}"))
    rows = [
        {"name": name, "target": next(iter(by_store.values()))[name]["target_p95_ms"]}
        for name in names
    ]
    print_table(columns, rows)
