"""`python loadtests/run.py SCENARIO [options]`: parse, run against each target, print, save."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.compare import print_comparison
from harness.errors import RunError
from harness.machine import describe_wakeup, machine_facts
from harness.scenarios import (
    awareness,
    bigdoc,
    catalog,
    crossinstance,
    drain,
    fanout,
    idle,
    joinstorm,
    persistence,
)
from harness.services import STORES
from harness.stack import exit_on_sigterm
from harness.tables import heading
from harness.targets import TARGETS, check_baseline

PER_TARGET: dict[str, Callable[[argparse.Namespace, str], dict[str, Any]]] = {
    "fanout": fanout.run,
    "hotroom": fanout.run,
    "idle": idle.run,
    "bigdoc": bigdoc.run,
    "awareness": awareness.run,
    "joinstorm": joinstorm.run,
}
COLLAB_ONLY: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "catalog": catalog.run,
    "crossinstance": crossinstance.run,
    "persistence": persistence.run,
    "drain": drain.run,
}


def build_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    sub = parser.add_subparsers(dest="scenario", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", type=Path, help="write the raw results here")
    common.add_argument("--connect-concurrency", type=int, default=100)
    common.add_argument("--connect-timeout-s", type=float, default=120)
    targets = argparse.ArgumentParser(add_help=False)
    targets.add_argument(
        "--server", choices=TARGETS, default="collab", help="the server to run against"
    )
    targets.add_argument(
        "--servers",
        help=f"comma-separated, some of {','.join(TARGETS)}: run against each in turn, then "
        "compare (overrides --server)",
    )
    targets.add_argument(
        "--store", choices=STORES, default="memory", help="collab's store (collab only)"
    )
    both = [common, targets]

    def steps(parser: argparse.ArgumentParser, rates: str, step_s: float = 10) -> None:
        parser.add_argument("--rates", default=rates, help="updates/s per writer, one per step")
        parser.add_argument("--step-s", type=float, default=step_s)
        parser.add_argument("--drain-s", type=float, default=5, help="wait for late deliveries")

    fan = sub.add_parser("fanout", parents=both, help="R rooms x C clients, 1 writer per room")
    fan.add_argument("--rooms", type=int, default=100)
    fan.add_argument("--clients", type=int, default=10, help="clients per room, writer included")
    steps(fan, "5,10,20,30,50")
    awareness.add_server_env(fan)

    hot = sub.add_parser("hotroom", parents=both, help="1 room x C clients, W writers")
    hot.add_argument("--rooms", type=int, default=1, help=argparse.SUPPRESS)
    hot.add_argument(
        "--clients", type=int, default=200, help="clients in the room, writers included"
    )
    hot.add_argument("--writers", type=int, default=5)
    steps(hot, "10")
    awareness.add_server_env(hot)

    big = sub.add_parser("bigdoc", parents=both, help="replay a real trace, time fresh joins")
    big.add_argument("--probes", type=int, default=15, help="fresh clients, one after another")
    big.add_argument(
        "--client-warmups",
        type=int,
        default=5,
        help="local applies of the loaded state by the generator before the probes, so that "
        "no probe times V8 optimising Yjs",
    )
    big.add_argument("--patches-per-txn", type=int, default=1000)
    big.add_argument("--probe-gap-s", type=float, default=0.5, help="pause between probes")
    big.add_argument(
        "--restart",
        action="store_true",
        help="after the load, restart collab on the same database (--store sqlite|postgres) "
        "before the probes",
    )

    idle_parser = sub.add_parser("idle", parents=both, help="N idle synced connections")
    idle_parser.add_argument("--connections", type=int, default=5000)
    idle_parser.add_argument("--rooms", type=int, default=500)
    idle_parser.add_argument("--hold-s", type=float, default=5)
    idle_parser.add_argument(
        "--awareness-timeout-s",
        type=float,
        default=10,
        help="wait at most this long, once all are synced, for every peer to see every state",
    )

    aware = sub.add_parser(
        "awareness", parents=both, help="1 room x N clients moving their cursors at hz"
    )
    awareness.add_arguments(aware)
    storm = sub.add_parser(
        "joinstorm", parents=both, help="a note of N MB, then J fresh clients open it at once"
    )
    joinstorm.add_arguments(storm)

    drain.add_arguments(
        sub.add_parser(
            "drain",
            parents=[common],
            help="2 collab instances, one SIGTERMed: its clients move to the other",
        )
    )

    cross = sub.add_parser(
        "crossinstance",
        parents=[common],
        help="2 collab instances on 1 Redis (writers on A, readers on B) vs 1 instance",
    )
    cross.add_argument("--rooms", type=int, default=100)
    cross.add_argument("--clients", type=int, default=10, help="clients per room, writer included")
    steps(cross, "5,10,20")

    persist = sub.add_parser(
        "persistence", parents=[common], help="fan-out against collab on each store, compared"
    )
    persist.add_argument("--stores", default=",".join(STORES), help="comma-separated")
    persist.add_argument("--rooms", type=int, default=100)
    persist.add_argument(
        "--clients", type=int, default=10, help="clients per room, writer included"
    )
    steps(persist, "20")

    cat = sub.add_parser(
        "catalog",
        parents=[common],
        help="the notes catalog's REST listing and search at N notes, per store",
    )
    cat.add_argument("--stores", default=",".join(catalog.CATALOG_STORES), help="comma-separated")
    cat.add_argument("--notes", type=int, default=100_000, help="notes in the workspace")
    cat.add_argument("--requests", type=int, default=100, help="timed requests per query at most")
    cat.add_argument("--warmup", type=int, default=5, help="untimed requests before each query")
    cat.add_argument("--max-query-s", type=float, default=8, help="timed seconds per query at most")
    cat.add_argument("--seed", type=int, default=1, help="the workspace's random seed")
    cat.add_argument(
        "--documents",
        action="store_true",
        help="store each note's Yjs document too, and index it from the document",
    )
    cat.add_argument("--explain", action="store_true", help="print SQLite's query plans")
    return parser


def usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments, if anything."""
    if args.scenario in ("fanout", "crossinstance", "persistence") and (
        args.clients < 2 or args.rooms < 1
    ):
        return f"{args.scenario} needs at least 1 room and 2 clients per room"
    if args.scenario == "hotroom" and not 1 <= args.writers < args.clients:
        return "hotroom needs 1 <= writers < clients"
    if args.scenario == "bigdoc" and (
        args.probes < 1 or args.patches_per_txn < 1 or args.client_warmups < 0
    ):
        return "bigdoc needs --probes >= 1, --patches-per-txn >= 1 and --client-warmups >= 0"
    if args.scenario == "persistence":
        stores = persistence.store_list(args.stores)
        if not stores or set(stores) - set(STORES) or len(set(stores)) != len(stores):
            return f"--stores takes distinct names among {', '.join(STORES)}"
    if args.scenario == "catalog":
        stores = catalog.store_list(args.stores)
        if (
            not stores
            or set(stores) - set(catalog.CATALOG_STORES)
            or len(set(stores)) != len(stores)
        ):
            return f"--stores takes distinct names among {', '.join(catalog.CATALOG_STORES)}"
        if args.notes < 1 or args.requests < 1 or args.warmup < 0 or args.max_query_s <= 0:
            return "catalog needs --notes >= 1, --requests >= 1, --warmup >= 0, --max-query-s > 0"
    if args.scenario == "drain" and (problem := drain.usage_problem(args)):
        return problem
    if args.scenario == "idle" and (args.connections < 1 or args.rooms < 1):
        return "idle needs --connections >= 1 and --rooms >= 1"
    if args.scenario == "awareness" and (problem := awareness.usage_problem(args)):
        return problem
    if args.scenario == "joinstorm" and (
        problem := joinstorm.usage_problem(args, target_list(args))
    ):
        return problem
    if args.scenario in PER_TARGET:
        servers = target_list(args)
        unknown = sorted(set(servers) - set(TARGETS))
        if unknown or not servers or len(set(servers)) != len(servers):
            return f"--servers takes distinct names among {', '.join(TARGETS)}"
        if (
            args.scenario == "bigdoc"
            and args.restart
            and (servers != ["collab"] or args.store == "memory")
        ):
            return "--restart needs --server collab and --store sqlite or --store postgres"
    return None


def target_list(args: argparse.Namespace) -> list[str]:
    if args.servers is None:
        return [args.server]
    return [name.strip() for name in args.servers.split(",") if name.strip()]


def run_targets(args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    """Run the scenario against each target; returns what `--json` gets and whether all ran."""
    servers = target_list(args)
    for name in servers:
        if name != "collab":
            check_baseline(name)  # before any run: say what to install up front
    if args.store != "memory" and servers != ["collab"]:
        print(f"note: --store {args.store} applies to collab only; the baselines keep memory")
    scenario = PER_TARGET[args.scenario]
    if len(servers) == 1:
        if servers[0] != "collab":
            print(f"server: {servers[0]} (baseline)")
        return scenario(args, servers[0]), True
    results: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for name in servers:
        heading(name if name != "collab" else f"collab ({args.store} store)")
        try:
            results[name] = scenario(args, name)
        except RunError as error:
            # Keep going: one server failing must not cost the others' results.
            print(f"run.py: {name}: {error}", file=sys.stderr)
            errors[name] = str(error)
    print_comparison(args.scenario, results)
    return {"scenario": args.scenario, "servers": servers, "results": results, "errors": errors}, (
        not errors
    )


def main(argv: list[str] | None = None, *, description: str = "") -> int:
    parser = build_parser(description)
    args = parser.parse_args(argv)
    command = " ".join(
        ["python", "loadtests/run.py", *(argv if argv is not None else sys.argv[1:])]
    )
    if problem := usage_problem(args):
        print(f"run.py: {problem}", file=sys.stderr)
        return 2
    exit_on_sigterm()
    try:
        facts = machine_facts()
        print(
            f"{command}\n{facts['date']}  {facts['nproc']} CPUs  {facts['cpu_model']}  "
            f"load average {' '.join(facts['loadavg_at_start'])}\n"
            f"{describe_wakeup(facts['wakeup'])}"
        )
        if args.scenario in COLLAB_ONLY:
            result = COLLAB_ONLY[args.scenario](args)
            complete = not result.get("errors")
        else:
            result, complete = run_targets(args)
    except RunError as error:
        print(f"run.py: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("run.py: interrupted; the processes it started are stopped", file=sys.stderr)
        return 130
    if args.json:
        args.json.write_text(json.dumps({"command": command, "machine": facts, **result}, indent=2))
    return 0 if complete else 1
