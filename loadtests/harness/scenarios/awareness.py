"""awareness: one room of N clients, each moving its cursor `hz` times a second.

Every client syncs and sets an editor's awareness state (y-prosemirror's cursor: user name and
colour, anchor and head as relative positions, ~200 bytes of JSON); on "go" each moves its
cursor at its own phase of the second, with jitter, for --step-s. A fixed subset of clients
(--sample-receivers) decodes every awareness entry it receives and times each new clock of
every other client from the send (`cursor.t`, the shared clock of the one generator process);
the rest only count frames and bytes, so that the generator's cost stays bounded. Measured
over the sending window: server CPU, frames and bytes every client received, the bytes the
server sent (its sockets' tcp_info), the generator's own CPU. Then a drain: every sampled
receiver must end with every other client's final state, or the pair counts as lost.
"""

from __future__ import annotations

import argparse
from typing import Any

from harness.errors import RunError
from harness.generator import Generator
from harness.machine import check_nofile
from harness.meter import Meter, resources
from harness.serverio import tcp_bytes, tcp_delta
from harness.stack import Stack
from harness.tables import MIB, Column, fixed, print_pairs, print_table, ratio
from harness.targets import Target

SCRIPT = "gen_storm.mjs"
# Above this share of its core (or with its 5 ms ticker this late) the generator, not the
# server, may be what the latencies measure.
GENERATOR_BOUND_CPU_PCT = 90.0
GENERATOR_BOUND_LAG_MS = 100.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=300, help="clients in the one room")
    parser.add_argument("--hz", type=float, default=1.0, help="cursor moves per second per client")
    parser.add_argument("--step-s", type=float, default=20, help="sending time")
    parser.add_argument(
        "--drain-s", type=float, default=10, help="wait for every final state after sending"
    )
    parser.add_argument(
        "--sample-receivers",
        type=int,
        default=20,
        help="clients that decode every entry and time it (the others count frames and bytes)",
    )
    parser.add_argument(
        "--awareness-timeout-s",
        type=float,
        default=15,
        help="before the step, wait at most this long for the sampled receivers to see every "
        "client's first state",
    )
    parser.add_argument("--seed", type=int, default=1, help="client ids, phases and cursors")
    add_server_env(parser)


def add_server_env(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        type=env_pair,
        metavar="COLLAB_X=VALUE",
        help="extra environment for collab (repeatable), e.g. COLLAB_AWARENESS_BATCH_MS=0",
    )


def env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("COLLAB_"):
        raise argparse.ArgumentTypeError(f"expected COLLAB_NAME=VALUE, got {text!r}")
    return name, value


def usage_problem(args: argparse.Namespace) -> str | None:
    if args.clients < 2 or args.hz <= 0 or args.step_s <= 0 or args.drain_s < 0:
        return "awareness needs --clients >= 2, --hz > 0, --step-s > 0 and --drain-s >= 0"
    if not 1 <= args.sample_receivers <= args.clients:
        return "awareness needs 1 <= --sample-receivers <= --clients"
    return None


def sample_indices(clients: int, samples: int) -> list[int]:
    """`samples` clients spread evenly over the connection order."""
    return sorted({i * clients // samples for i in range(samples)})


def generator_bound(step: dict[str, Any]) -> bool:
    return (
        step["generator_cpu_pct"] >= GENERATOR_BOUND_CPU_PCT
        or step["generator_max_tick_lag_ms"] >= GENERATOR_BOUND_LAG_MS
    )


def run(args: argparse.Namespace, target: str) -> dict[str, Any]:
    check_nofile(args.clients)
    with Stack() as stack:
        store = stack.store(args.store) if target == "collab" else None
        if store is not None and args.server_env:
            server: Target = stack.collab(store.database_url, settings=dict(args.server_env))
        else:
            server = stack.target(target, store)
        config = {
            "scenario": "awareness",
            "urls": [
                server.client_url("awareness", "note", f"user{c}") for c in range(args.clients)
            ],
            "hz": args.hz,
            "step_s": args.step_s,
            "drain_s": args.drain_s,
            "sample_indices": sample_indices(args.clients, args.sample_receivers),
            "awareness_timeout_ms": args.awareness_timeout_s * 1000,
            "seed": args.seed,
            "connect_concurrency": args.connect_concurrency,
            "connect_timeout_ms": args.connect_timeout_s * 1000,
        }
        generator = stack.add(Generator(stack.workdir, config, script=SCRIPT))
        meter = Meter({"server": server.usage, "generator": generator.usage})
        connecting = meter.snapshot()
        ready = generator.next_event(args.connect_timeout_s * 2 + args.awareness_timeout_s + 30)
        if ready["failed"]:
            raise RunError(f"{ready['failed']} connections failed: {ready['errors']}")
        connected = meter.snapshot()
        tcp_before = tcp_bytes(server.port)
        before = meter.snapshot()
        generator.send("go")
        sent = generator.next_event(args.step_s * 3 + 60)
        after_send = meter.snapshot()
        tcp_after = tcp_bytes(server.port)
        step = generator.next_event(args.drain_s + 60)
        drained = meter.snapshot()
        generator.quit()
    step |= resources(before, after_send)
    send_s = sent["send_s"]
    tcp = tcp_delta(tcp_before, tcp_after)
    step |= {
        "moves_per_s": sent["sent"] / send_s,
        "frames_per_client_per_s": sent["frames"] / args.clients / send_s,
        "received_bytes_per_s": sent["bytes"] / send_s,
        "server_tcp": tcp,
        "server_tcp_sent_per_s": tcp["sent"] / send_s if tcp else None,
        "server_cpu_s_drain": drained.usage["server"].cpu_s - after_send.usage["server"].cpu_s,
        # Of every other client's moves, the share a sampled receiver saw (a server that
        # merges a client's moves within a tick sends fewer: not a loss if the last arrives).
        "sampled_new_entries_pct": (
            100 * step["sampled_new_entries"] / step["sampled_moves_by_others"]
            if step["sampled_moves_by_others"]
            else None
        ),
        "lost_pct": 100 * step["lost_pairs"] / step["sampled_pairs"],
    }
    step["generator_bound"] = generator_bound(step)
    result = {
        "scenario": "awareness",
        "server": target,
        "store": store.kind if store is not None else None,
        "server_env": dict(args.server_env) if target == "collab" else None,
        "clients": args.clients,
        "hz": args.hz,
        "step_s": args.step_s,
        "sample_receivers": len(config["sample_indices"]),
        "ready": ready,
        "server_cpu_s_connecting": connected.usage["server"].cpu_s
        - connecting.usage["server"].cpu_s,
        "server_rss_bytes_connected": connected.usage["server"].rss_bytes,
        "step": step,
    }
    print_awareness(result)
    return result


def _initial_seen(result: dict[str, Any]) -> str:
    seen = result["ready"]["initial_states_seen"]
    complete = sum(1 for count in seen if count >= result["clients"] - 1)
    return f"{complete}/{len(seen)} sampled receivers saw every client's first state"


COLUMNS = (
    Column("server", 7, lambda r: r["server"] + ("*" if r["step"]["generator_bound"] else "")),
    Column("clients", 8, lambda r: str(r["clients"])),
    Column("hz", 4, lambda r: f"{r['hz']:g}"),
    Column("moves/s", 8, lambda r: f"{r['step']['moves_per_s']:.0f}"),
    Column("srvCPU%", 8, lambda r: f"{r['step']['server_cpu_pct']:.0f}"),
    Column("p50ms", 8, lambda r: fixed(r["step"]["latency_ms"]["p50"])),
    Column("p99ms", 8, lambda r: fixed(r["step"]["latency_ms"]["p99"])),
    Column("maxms", 8, lambda r: fixed(r["step"]["latency_ms"]["max"])),
    Column("msg/cl/s", 9, lambda r: f"{r['step']['frames_per_client_per_s']:.1f}"),
    Column("rxMB/s", 7, lambda r: f"{r['step']['received_bytes_per_s'] / MIB:.2f}"),
    Column("srvTxMB/s", 10, lambda r: fixed(_tx_mib_per_s(r), 2)),
    Column("seen%", 6, lambda r: fixed(r["step"]["sampled_new_entries_pct"], 0)),
    Column("lost", 6, lambda r: str(r["step"]["lost_pairs"])),
    Column("closed", 7, lambda r: str(sum(r["step"]["closed"].values()))),
    Column("srvRSS_MB", 10, lambda r: f"{r['step']['server_rss_bytes'] / MIB:.0f}"),
    Column("genCPU%", 8, lambda r: f"{r['step']['generator_cpu_pct']:.0f}"),
    Column("othCPU%", 8, lambda r: f"{r['step']['other_cpu_pct']:.0f}"),
)
NOTE = (
    "(over the sending window: srvCPU% of one core; p50/p99/max: send -> a sampled receiver "
    "decoded that client's new clock, ms;\n msg/cl/s: frames each client received per second; "
    "rxMB/s: their payload bytes, all clients; srvTxMB/s: what the server's sockets sent "
    "(tcp_info);\n seen%: of the other clients' moves, the share a sampled receiver got (a "
    "server that merges moves per tick sends fewer); lost: (sampled receiver, client) pairs\n "
    "missing the client's final state after the drain; *: generator-bound, its CPU >= "
    f"{GENERATOR_BOUND_CPU_PCT:.0f} % or its 5 ms ticker >= {GENERATOR_BOUND_LAG_MS:.0f} ms "
    "late: latencies are partly the generator's)"
)


def _tx_mib_per_s(result: dict[str, Any]) -> float | None:
    per_s = result["step"]["server_tcp_sent_per_s"]
    return None if per_s is None else per_s / MIB


def print_awareness(result: dict[str, Any]) -> None:
    step = result["step"]
    ready = result["ready"]
    print_pairs(
        (
            ("clients (sampled receivers)", f"{result['clients']} ({result['sample_receivers']})"),
            (
                "connect + sync",
                f"{ready['synced_s']:.1f} s; first states {ready['awareness_s']:.1f} s; "
                + _initial_seen(result),
            ),
            ("server CPU while connecting", f"{result['server_cpu_s_connecting']:.2f} s"),
            (
                "moves",
                f"{step['sent']} in {step['send_s']:.1f} s ({step['moves_per_s']:.0f}/s), state "
                f"JSON {fixed(step['state_json_bytes'], 0)} B; drain {step['drain_s']:.1f} s",
            ),
            (
                "sampled receivers",
                f"{step['sampled_entries']} entries, {step['sampled_new_entries']} new, "
                f"{step['sampled_stale_entries']} stale; {step['latency_ms']['count']} timed",
            ),
            (
                "generator",
                f"{step['generator_cpu_pct']:.0f} % CPU, ticker late "
                f"{step['generator_late_ticks']} times, max "
                f"{step['generator_max_tick_lag_ms']:.0f} ms"
                + (" (generator-bound)" if step["generator_bound"] else ""),
            ),
            (
                "closed",
                f"{step['closed'] or 'none'}; open at the end {step['open_connections']}",
            ),
        )
    )
    print_table(COLUMNS, [result])
    print(NOTE)


def print_compare(results: dict[str, dict[str, Any]], reference: str) -> None:
    ref = results[reference]["step"]
    rows = [
        {
            **result,
            "cpu_ratio": ratio(result["step"]["server_cpu_pct"], ref["server_cpu_pct"]),
            "p99_ratio": ratio(result["step"]["latency_ms"]["p99"], ref["latency_ms"]["p99"]),
        }
        for result in results.values()
    ]
    columns = (
        *COLUMNS[:5],
        Column("cpu x", 7, lambda r: r["cpu_ratio"]),
        *COLUMNS[5:7],
        Column("p99 x", 7, lambda r: r["p99_ratio"]),
        *COLUMNS[7:],
    )
    print_table(columns, rows)
    print(NOTE)
