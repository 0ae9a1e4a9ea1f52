"""bigdoc: one client replays a real editing trace into a Y.Text, then fresh clients join one
after another. With --restart (collab on SQLite or PostgreSQL) the server is stopped with
SIGTERM after the load (it flushes) and started again on the same database before the probes,
so the first probe's join includes loading the document from the store."""

from __future__ import annotations

import argparse
import time
from typing import Any

from harness.errors import RunError
from harness.machine import check_nofile
from harness.meter import Meter, resources
from harness.paths import TRACE_PATH
from harness.procs import cpu_ns
from harness.stack import Stack
from harness.tables import MIB, Column, print_pairs, print_table
from harness.targets import CollabServer, Target


def check(args: argparse.Namespace, target: str) -> None:
    if not TRACE_PATH.is_file():
        raise RunError(
            f"the editing trace {TRACE_PATH} is missing: bigdoc replays it "
            "(automerge-paper.json.gz from josephg/editing-traces)"
        )
    if args.restart and (target != "collab" or args.store == "memory"):
        raise RunError(
            "--restart needs a store that outlives the process: collab with --store sqlite "
            "or --store postgres"
        )
    check_nofile(args.probes + 1)


def run(args: argparse.Namespace, target: str) -> dict[str, Any]:
    check(args, target)
    with Stack() as stack:
        store = stack.store(args.store) if target == "collab" else None
        postgres = store.postgres if store is not None else None
        server: Target = stack.target(target, store)
        config = {
            "scenario": "bigdoc",
            "urls": [
                server.client_url("bigdoc", "paper", f"user{c}") for c in range(args.probes + 1)
            ],
            "trace": str(TRACE_PATH),
            "text_name": "paper",
            "patches_per_txn": args.patches_per_txn,
            "probe_gap_ms": args.probe_gap_s * 1000,
            "client_warmups": args.client_warmups,
            "connect_timeout_ms": args.connect_timeout_s * 1000,
        }
        generator = stack.generator(config)
        roles = {"server": lambda: server.usage(), "generator": generator.usage}
        if postgres is not None:
            roles["database"] = postgres.usage
        meter = Meter(roles)
        start = meter.snapshot()
        generator.next_event(args.connect_timeout_s + 60)  # ready: the loader is connected
        before = meter.snapshot()
        generator.send("go")
        loaded = generator.next_event(args.connect_timeout_s * 3 + 120)
        after_load = meter.snapshot()
        warmed = generator.next_event(60)
        restart = None
        if args.restart:
            assert isinstance(server, CollabServer)
            server, restart = restart_collab(stack, server)
        probes_start = meter.snapshot()
        probes = []
        for _probe in range(args.probes):
            server_ns = cpu_ns(server.pid)
            database_ns = postgres.cpu_ns() if postgres is not None else 0
            generator.send("go")
            probe = generator.next_event(args.connect_timeout_s + args.probe_gap_s + 60)
            probe["server_cpu_ms"] = (cpu_ns(server.pid) - server_ns) / 1e6
            if postgres is not None:
                probe["database_cpu_ms"] = (postgres.cpu_ns() - database_ns) / 1e6
            probes.append(probe)
        probed = meter.snapshot()
        generator.quit()
    result = {
        "scenario": "bigdoc",
        "server": target,
        "store": store.kind if store is not None else None,
        "trace": str(TRACE_PATH),
        "patches_per_txn": args.patches_per_txn,
        "probe_gap_s": args.probe_gap_s,
        "loaded": loaded,
        "client_warmup_apply_ms": warmed["client_warmup_apply_ms"],
        "restart": restart,
        "probes": probes,
        "server_rss_bytes_start": start.usage["server"].rss_bytes,
        "server_rss_bytes_before": before.usage["server"].rss_bytes,
        "server_rss_bytes_loaded": after_load.usage["server"].rss_bytes,
        "server_rss_bytes_before_probes": probes_start.usage["server"].rss_bytes,
        "server_rss_bytes_after_probes": probed.usage["server"].rss_bytes,
        "load": resources(before, after_load),
        "join": resources(probes_start, probed),
        "server_cpu_ms_per_join": sum(p["server_cpu_ms"] for p in probes) / len(probes),
        "closed": probes[-1]["closed"],
    }
    print_bigdoc(result)
    return result


def restart_collab(stack: Stack, server: CollabServer) -> tuple[CollabServer, dict[str, Any]]:
    """SIGTERM (collab flushes every room and exits), then the same server again: same
    database, port and secret, so the probes' URLs and tokens stay valid."""
    stopping = time.monotonic()
    status = server.stop()
    stopped = time.monotonic()
    stack.remove(server)
    if status != 0:
        raise RunError(f"collab serve exited with {status} on SIGTERM: {server.log_tail()}")
    restarted = stack.collab(
        server.database_url,
        secret=server.secret,
        port=server.port,
        log_name="server-restarted.log",
        label="collab serve (restarted)",
    )
    started = time.monotonic()
    return restarted, {
        "stop_s": stopped - stopping,
        "exit_status": status,
        "start_s": started - stopped,
    }


def print_bigdoc(result: dict[str, Any]) -> None:
    loaded = result["loaded"]
    load = result["load"]
    join = result["join"]
    probes = result["probes"]
    restart = result["restart"]
    rows = [
        (
            "trace replayed",
            f"{loaded['patches']} patches in {loaded['transactions']} updates "
            f"({result['patches_per_txn']} patches each), {loaded['update_bytes_sent'] / 1024:.0f} "
            f"KiB sent, {loaded['replay_s']:.2f} s + {loaded['confirm_s']:.2f} s to confirm",
        ),
        (
            "document",
            f"{loaded['text_chars']} chars; encoded state {loaded['encoded_update_bytes']} B (v1), "
            f"{loaded['encoded_update_v2_bytes']} B (v2)",
        ),
        (
            "server CPU loading",
            f"{load['server_cpu_s']:.2f} s ({load['server_cpu_pct']:.0f} %); generator "
            f"{load['generator_cpu_s']:.2f} s; othCPU {load['other_cpu_pct']:.0f} %"
            + (f"; PostgreSQL {load['database_cpu_s']:.2f} s" if "database_cpu_s" in load else ""),
        ),
        (
            "client warm-up",
            "local applies of the state (no server): "
            + (", ".join(f"{ms:.1f}" for ms in result["client_warmup_apply_ms"]) or "none")
            + " ms",
        ),
        ("server RSS at start", f"{result['server_rss_bytes_start'] / MIB:.1f} MiB"),
        ("server RSS, loader joined", f"{result['server_rss_bytes_before'] / MIB:.1f} MiB"),
        ("server RSS, document loaded", f"{result['server_rss_bytes_loaded'] / MIB:.1f} MiB"),
    ]
    if restart is not None:
        rows += [
            (
                "restart",
                f"SIGTERM to exit (flush included) {restart['stop_s']:.2f} s, exit status "
                f"{restart['exit_status']}; started again in {restart['start_s']:.2f} s",
            ),
            (
                "server RSS after restart",
                f"{result['server_rss_bytes_before_probes'] / MIB:.1f} MiB (nothing loaded)",
            ),
        ]
    rows += [
        ("server RSS after the probes", f"{result['server_rss_bytes_after_probes'] / MIB:.1f} MiB"),
        (
            "server CPU per fresh join",
            f"{result['server_cpu_ms_per_join']:.1f} ms mean (schedstat, join + close); "
            f"othCPU {join['other_cpu_pct']:.0f} % over the probes",
        ),
    ]
    if restart is not None and len(probes) > 1:
        first, later = probes[0], probes[1:]
        rows += [
            (
                "first join after restart",
                f"connect {first['connect_ms']:.1f} ms, open->step2 "
                f"{first['open_to_received_ms']:.1f} ms, open->applied "
                f"{first['open_to_applied_ms']:.1f} ms, server CPU {first['server_cpu_ms']:.1f} ms "
                "(loads the room from the store)",
            ),
            (
                "later joins (room loaded)",
                f"connect {mean(later, 'connect_ms'):.1f} ms, open->step2 "
                f"{mean(later, 'open_to_received_ms'):.1f} ms, open->applied "
                f"{mean(later, 'open_to_applied_ms'):.1f} ms, server CPU "
                f"{mean(later, 'server_cpu_ms'):.1f} ms (means)",
            ),
        ]
    print_pairs(rows)
    columns = [
        Column("probe", 5, lambda p: p["label"]),
        Column("connect", 9, lambda p: f"{p['connect_ms']:.1f}"),
        Column("open->step2", 12, lambda p: f"{p['open_to_received_ms']:.1f}"),
        Column("apply", 8, lambda p: f"{p['apply_ms']:.1f}"),
        Column("open->applied", 14, lambda p: f"{p['open_to_applied_ms']:.1f}"),
        Column("srvCPU", 8, lambda p: f"{p['server_cpu_ms']:.1f}"),
    ]
    if probes and "database_cpu_ms" in probes[0]:
        columns.append(Column("pgCPU", 7, lambda p: f"{p['database_cpu_ms']:.1f}"))
    columns += [
        Column("step2 B", 9, lambda p: str(p["step2_message_bytes"])),
        Column("text ok", 7, lambda p: str(p["text_matches"])),
    ]
    labelled = [
        {**probe, "label": f"{index + 1}{'*' if restart is not None and index == 0 else ''}"}
        for index, probe in enumerate(probes)
    ]
    print_table(columns, labelled)
    note = "(times in ms; srvCPU: server on-CPU time during the probe, join and close"
    if probes and "database_cpu_ms" in probes[0]:
        note += "; pgCPU: PostgreSQL's live processes, same window"
    if restart is not None:
        note += (
            "; *: first join after the restart, loads the document from the store (collab "
            "loads a room before the upgrade, so in connect)"
        )
    print(note + ")")
    if result["server"] == "relay":
        print("(the relay keeps no document: its probes receive an empty one, so text ok is False)")


def mean(probes: list[dict[str, Any]], key: str) -> float:
    return sum(p[key] for p in probes) / len(probes)
