"""drain: two collab instances, --clients over --rooms, one instance SIGTERMed while its
clients edit: how the survivor takes them, for each COLLAB_DRAIN_S in --drain-s.

Instances A and B share a throwaway PostgreSQL and Redis. Each room is a note of a
workspace of its own (a team; --one-workspace puts every room in one). Each room's clients
alternate between A and B (as a balancer without stickiness spreads them), so every room is
loaded on both; clients 0..W-1 of each room write (--rate edits/s each), half of them homed
on each instance. The Node generator (`loadtests/gen_drain.mjs`) behaves like the stock y-websocket
provider, including its reconnect delays; a client closed by A reconnects to B, where a
balancer would send it. A and B, PostgreSQL and Redis run on CPU 0 (the whole deployment on
one core: before the SIGTERM each instance carries half the clients, after it B carries
all), the generator on CPU 1.

For each drain time: connect, edit for --warmup-s, measure --steady-s, then SIGTERM A and
measure --window-s from it (the same window for every drain time, so they compare); then
the writers stop, every client must be synced on B and every edit any writer made must be
in B's document (read by a fresh client per room): `lost` counts those that are not.
Measured: when A exited, its waves (its log), when the last of A's clients had resynced on
B (its sync step 2 received), each moved client's close-to-resync time, the edit-to-peer
latency of edits from writers on B to clients on B (steady, and in the window), and the
CPU of B, PostgreSQL and Redis over the window.

The reference Node server has no multi-instance mode, so there is no baseline here: the
comparison is collab with COLLAB_DRAIN_S=0 (every client closed at once, the behaviour
before paced drains) against paced drain times, in one run.
"""

from __future__ import annotations

import argparse
import json
import queue
import re
import secrets
import signal
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from collab.settings import DRAIN_S
from harness.errors import RunError
from harness.generator import Generator
from harness.machine import check_nofile
from harness.meter import Meter, resources
from harness.services import PostgresService
from harness.stack import Stack
from harness.tables import Column, fixed, heading, print_table
from harness.targets import CollabServer

SCRIPT = "gen_drain.mjs"
WORKSPACE = "drain"
MAX_BACKOFF_MS = 2500  # y-websocket's default maxBackoffTime
WAVE_LINE = re.compile(r"drain wave (\d+)/(\d+): closed (\d+)")
EXIT_MARGIN_S = 10.0
BUSY_MACHINE_PCT = 25.0
LISTEN_COUNTERS = ("ListenOverflows", "ListenDrops", "SyncookiesSent")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=2000, help="clients in all")
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument(
        "--writers-per-room", type=int, default=2, help="writers per room, alternately on A and B"
    )
    parser.add_argument("--rate", type=float, default=1, help="edits/s per writer")
    parser.add_argument(
        "--drain-s",
        default=f"0,{DRAIN_S:g}",
        help="COLLAB_DRAIN_S values to compare, comma-separated (default: 0 and the default)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs of each drain time, in turn")
    parser.add_argument(
        "--one-workspace",
        action="store_true",
        help="every room in one workspace (default: a workspace per room)",
    )
    parser.add_argument("--warmup-s", type=float, default=5)
    parser.add_argument("--steady-s", type=float, default=5, help="latency measured before")
    parser.add_argument(
        "--window-s",
        type=float,
        default=30,
        help="measured from the SIGTERM, the same for every drain time: long enough for the "
        "slowest to have every client back",
    )
    parser.add_argument("--after-s", type=float, default=2, help="editing after the window")
    parser.add_argument("--shutdown-timeout-s", type=float, default=10)
    parser.add_argument(
        "--resync-timeout-s",
        type=float,
        default=60,
        help="after the drain time, the longest A's clients may take to resync on B",
    )


def drain_list(text: str) -> list[float]:
    try:
        return [float(value) for value in text.split(",") if value.strip()]
    except ValueError:
        return []


def usage_problem(args: argparse.Namespace) -> str | None:
    drains = drain_list(args.drain_s)
    if not drains or any(d < 0 or d >= args.shutdown_timeout_s for d in drains):
        return "--drain-s takes numbers >= 0, each less than --shutdown-timeout-s"
    if args.rooms < 1 or args.clients < 2 * args.rooms:
        return "drain needs --rooms >= 1 and at least 2 clients per room"
    per_room = args.clients // args.rooms
    if not 2 <= args.writers_per_room < per_room or args.writers_per_room % 2:
        return "drain needs an even --writers-per-room >= 2, below the clients per room"
    if args.rate <= 0 or args.rounds < 1 or args.steady_s <= 0 or args.window_s <= 0:
        return "drain needs --rate > 0, --rounds >= 1, --steady-s > 0 and --window-s > 0"
    return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    drains = drain_list(args.drain_s)
    window_s = args.window_s
    check_nofile(args.clients + args.rooms)
    runs: list[dict[str, Any]] = []
    for round_index in range(args.rounds):
        for drain_s in drains:
            heading(
                f"COLLAB_DRAIN_S={drain_s:g} (round {round_index + 1}/{args.rounds}): "
                f"{args.clients} clients over {args.rooms} rooms, half on A; SIGTERM A"
            )
            result = run_once(args, drain_s, window_s)
            print_table(COLUMNS, [result])
            runs.append(result)
    heading("drain times compared (medians over rounds)")
    summary = summarize(runs)
    print_table(COLUMNS, summary)
    print(
        "(exit: A's exit after the SIGTERM; resynced: the last of A's clients synced on B; "
        "c→r: close to resync per moved client, ms; retries: most connection attempts of one "
        "client; B→B: edit-to-peer latency of B's writers to B's clients, ms, steady and in the "
        f"{window_s:g} s window after the SIGTERM (>100ms%: share of its deliveries slower than "
        "100 ms); CPU of B steady and over that window, of PostgreSQL and Redis over it)"
    )
    return {
        "scenario": "drain",
        "clients": args.clients,
        "rooms": args.rooms,
        "writers_per_room": args.writers_per_room,
        "rate_per_writer": args.rate,
        "window_s": window_s,
        "shutdown_timeout_s": args.shutdown_timeout_s,
        "pinning": "A, B, PostgreSQL, Redis on CPU 0; generator on CPU 1",
        "workspaces": 1 if args.one_workspace else args.rooms,
        "runs": runs,
        "summary": summary,
    }


def room_of(args: argparse.Namespace, r: int) -> tuple[str, str]:
    """Room `r`'s workspace and note: a workspace per room (a team of --clients / --rooms
    people), or all in one workspace with --one-workspace."""
    if args.one_workspace:
        return WORKSPACE, f"n{r}"
    return f"{WORKSPACE}{r}", "n"


def client_specs(
    args: argparse.Namespace, a: CollabServer, b: CollabServer
) -> tuple[list[dict[str, Any]], list[str]]:
    per_room = args.clients // args.rooms
    clients = []
    for r in range(args.rooms):
        for c in range(per_room):
            sub = f"user{r}-{c}"
            clients.append(
                {
                    "room": r,
                    # Alternating, so each room is on both and writers 0, 1 on different ones.
                    "home": "a" if (r + c) % 2 == 0 else "b",
                    "writer": c < args.writers_per_room,
                    "urls": {
                        "a": a.client_url(*room_of(args, r), sub),
                        "b": b.client_url(*room_of(args, r), sub),
                    },
                }
            )
    checks = [b.client_url(*room_of(args, r), f"checker{r}") for r in range(args.rooms)]
    return clients, checks


def tcp_listen_counters() -> dict[str, int]:
    """The kernel's counts of connections its listen queues refused (all sockets of this
    network namespace: on a quiet machine, the servers of the run)."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            counters = dict(zip(names.split()[1:], map(int, values.split()[1:]), strict=True))
            return {key: counters.get(key, 0) for key in LISTEN_COUNTERS}
    return {}


def next_event(generator: Generator, timeout_s: float) -> dict[str, Any] | None:
    """The generator's next event, or None if none came in time; raises `RunError` if it
    failed or exited."""
    try:
        line = generator.events.get(timeout=timeout_s)
    except queue.Empty:
        if generator.process.poll() is not None:
            raise RunError(f"the generator exited ({generator.process.returncode})") from None
        return None
    event: dict[str, Any] = json.loads(line)
    if event["event"] == "error":
        raise RunError(f"the generator failed: {event['message']}")
    return event


def expect(generator: Generator, name: str, timeout_s: float, seen: dict[str, Any]) -> Any:
    """Wait for event `name`, keeping the others that arrive meanwhile in `seen`."""
    deadline = time.monotonic() + timeout_s
    while name not in seen:
        event = next_event(generator, max(0.0, deadline - time.monotonic()))
        if event is None:
            raise RunError(f"the generator sent no {name!r} event in {timeout_s:.0f} s")
        seen[event["event"]] = event
    return seen.pop(name)


def run_once(args: argparse.Namespace, drain_s: float, window_s: float) -> dict[str, Any]:
    with Stack() as stack:
        postgres = stack.add(PostgresService())
        redis = stack.redis()
        secret = secrets.token_urlsafe(48)
        common = {"COLLAB_SHUTDOWN_TIMEOUT_S": f"{args.shutdown_timeout_s:g}"}
        # A logs at INFO for its drain waves; B at WARNING, like every load run.
        a, b = (
            stack.collab(
                postgres.database_url,
                secret=secret,
                redis_url=redis.url,
                log_name=f"server-{name.lower()}.log",
                label=f"collab serve {name}",
                settings={**common, "COLLAB_DRAIN_S": f"{drain_s:g}", "COLLAB_LOG_LEVEL": level},
            )
            for name, level in (("A", "INFO"), ("B", "WARNING"))
        )
        clients, checks = client_specs(args, a, b)
        config = {
            "clients": clients,
            "check_urls": checks,
            "rate_per_writer": args.rate,
            "max_backoff_ms": MAX_BACKOFF_MS,
            "window_s": window_s,
            "connect_concurrency": args.connect_concurrency,
            "connect_timeout_ms": args.connect_timeout_s * 1000,
            "verify_timeout_ms": 60_000,
        }
        generator = stack.add(Generator(stack.workdir, config, script=SCRIPT))
        seen: dict[str, Any] = {}
        ready = expect(generator, "ready", args.connect_timeout_s * 2 + 60, seen)
        if ready["failed"]:
            raise RunError(f"{ready['failed']} connections failed: {ready['errors']}")
        meter = Meter(
            {
                "server_b": b.usage,
                "database": postgres.usage,
                "redis": redis.usage,
                "generator": generator.usage,
            }
        )
        generator.send("go")
        time.sleep(args.warmup_s)
        generator.send("measure")
        steady_start, a_start = meter.snapshot(), a.usage()
        time.sleep(args.steady_s)
        steady_end, a_end = meter.snapshot(), a.usage()
        generator.send("mark")
        expect(generator, "marked", 30, seen)
        exited = threading.Event()
        exit_at: list[float] = []

        def wait_for_a() -> None:
            a.process.wait()
            exit_at.append(time.monotonic())
            exited.set()

        listen_before = tcp_listen_counters()
        sigterm_at = time.monotonic()
        a.process.send_signal(signal.SIGTERM)
        threading.Thread(target=wait_for_a, daemon=True).start()
        resync_bound_s = drain_s + args.resync_timeout_s
        try:
            resynced = expect(generator, "resynced", resync_bound_s, seen)
        except RunError:
            resynced = None  # reported below: some never resynced
        time.sleep(max(0.0, sigterm_at + window_s - time.monotonic()))
        window_end = meter.snapshot()
        listen_after = tcp_listen_counters()
        if not exited.wait(args.shutdown_timeout_s + EXIT_MARGIN_S):
            raise RunError(f"A did not exit within {args.shutdown_timeout_s + EXIT_MARGIN_S} s")
        time.sleep(args.after_s)
        generator.send("stop")
        verified = expect(generator, "verified", 180, seen)
        report = expect(generator, "report", 60, seen)
        generator.quit()
        a_log = a.log_path.read_text(errors="replace")
        b_log = b.log_path.read_text(errors="replace")
    waves = [tuple(map(int, m.groups())) for m in WAVE_LINE.finditer(a_log)]
    steady = resources(steady_start, steady_end)
    window = resources(steady_end, window_end)
    a_steady_cpu_pct = 100 * (a_end.cpu_s - a_start.cpu_s) / steady["wall_s"]
    # The meter's "other" includes A, which it does not sample (A exits in the window).
    steady["other_cpu_pct"] -= a_steady_cpu_pct
    if steady["other_cpu_pct"] > BUSY_MACHINE_PCT:
        print(
            f"warning: other processes used {steady['other_cpu_pct']:.0f}% of a core "
            "during the steady phase: this run's numbers are not the code's alone"
        )
    return {
        "drain_s": drain_s,
        "a_exit_code": a.process.returncode,
        "a_exit_s": exit_at[0] - sigterm_at,
        "a_waves": len(waves),
        "a_closed_in_waves": sum(closed for _, _, closed in waves),
        "a_steady_cpu_pct": a_steady_cpu_pct,
        # What went wrong on A, if anything (warnings and errors, the first ones).
        "a_log_problems": problems_in(a_log),
        "b_log_problems": problems_in(b_log),
        "all_resynced_s": None if resynced is None else resynced["after_mark_s"],
        "connect_s": ready["connect_s"],
        # SYNs the survivor's full accept queue dropped (the clients retry after 1, 3, 7 s...).
        "listen_in_window": {key: listen_after[key] - listen_before[key] for key in listen_after},
        "verified": verified,
        "lost": verified["missing"],
        "report": report,
        "steady": steady,
        "window": window,
    }


def problems_in(log_text: str, most: int = 20) -> list[str]:
    """The first warnings and errors of a server's log."""
    lines = log_text.splitlines()
    return [line for line in lines if " WARNING " in line or " ERROR " in line][:most]


def _pct(run: dict[str, Any], phase: str, key: str) -> float | None:
    value: float | None = run["report"]["latency_b_ms"][phase][key]
    return value


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per drain time: the median of its runs for each number shown."""
    by_drain: dict[float, list[dict[str, Any]]] = {}
    for run in runs:
        by_drain.setdefault(run["drain_s"], []).append(run)
    rows = []
    for drain_s, group in by_drain.items():
        if len(group) == 1:
            rows.append(group[0])
            continue

        def median(pick: Any, group: list[dict[str, Any]] = group) -> Any:
            values = [pick(run) for run in group if pick(run) is not None]
            return statistics.median(values) if values else None

        rows.append(
            {
                "drain_s": drain_s,
                "rounds": len(group),
                "a_exit_s": median(lambda r: r["a_exit_s"]),
                "a_waves": median(lambda r: r["a_waves"]),
                "all_resynced_s": median(lambda r: r["all_resynced_s"]),
                "lost": sum(run["lost"] for run in group),
                "listen_in_window": {
                    "ListenDrops": median(lambda r: r["listen_in_window"].get("ListenDrops"))
                },
                "report": {
                    "close_to_resync_ms": {
                        key: median(lambda r, key=key: r["report"]["close_to_resync_ms"][key])
                        for key in ("p50", "p99")
                    },
                    "reconnect_attempts_max": max(
                        run["report"]["reconnect_attempts_max"] for run in group
                    ),
                    "latency_b_ms": {
                        phase: {
                            key: median(lambda r, phase=phase, key=key: _pct(r, phase, key))
                            for key in ("p50", "p99", "max", "slow_pct")
                        }
                        for phase in ("steady", "drain_window", "until_resynced")
                    },
                },
                "steady": {"server_b_cpu_pct": median(lambda r: r["steady"]["server_b_cpu_pct"])},
                "window": {
                    key: median(lambda r, key=key: r["window"][key])
                    for key in ("server_b_cpu_pct", "database_cpu_pct", "redis_cpu_pct")
                },
            }
        )
    return rows


COLUMNS = (
    Column("drain_s", 8, lambda r: f"{r['drain_s']:g}"),
    Column("exit_s", 7, lambda r: fixed(r["a_exit_s"])),
    Column("waves", 6, lambda r: f"{r['a_waves']:g}"),
    Column("resynced_s", 11, lambda r: fixed(r["all_resynced_s"], 2)),
    Column("c→r p50", 8, lambda r: fixed(r["report"]["close_to_resync_ms"]["p50"], 0)),
    Column("c→r p99", 8, lambda r: fixed(r["report"]["close_to_resync_ms"]["p99"], 0)),
    Column("retries", 8, lambda r: str(r["report"]["reconnect_attempts_max"])),
    Column("B→B p99", 8, lambda r: fixed(_pct(r, "steady", "p99"))),
    Column("drain p50", 10, lambda r: fixed(_pct(r, "drain_window", "p50"))),
    Column("drain p99", 10, lambda r: fixed(_pct(r, "drain_window", "p99"))),
    Column("drain max", 10, lambda r: fixed(_pct(r, "drain_window", "max"))),
    Column(">100ms%", 8, lambda r: fixed(_pct(r, "drain_window", "slow_pct"), 2)),
    Column("B_CPU%", 7, lambda r: f"{r['steady']['server_b_cpu_pct']:.0f}"),
    Column("win_CPU%", 9, lambda r: f"{r['window']['server_b_cpu_pct']:.0f}"),
    Column("pg%", 5, lambda r: f"{r['window']['database_cpu_pct']:.0f}"),
    Column("redis%", 7, lambda r: f"{r['window']['redis_cpu_pct']:.0f}"),
    Column("SYNdrop", 8, lambda r: f"{r['listen_in_window']['ListenDrops']:g}"),
    Column("lost", 5, lambda r: str(r["lost"])),
)
