"""joinstorm: a note of --doc-mb, then --joiners fresh clients open it within --window-s.

A loader client builds the note as Yjs updates (paragraphs and headings in a Y.XmlFragment,
as y-prosemirror stores them; --chunk-kb of text per update, so no message nears the
servers' 8 MiB limit), confirms it with a sync step 1 round trip, and one fresh client joins
and checks it. Meanwhile an unrelated room (--probe-clients, one of them writing --probe-rate
edits/s) times its edits, first alone (--quiet-s), then through the storm. The joiners open
the note evenly spread over --window-s, each with an empty Y.Doc, and each times WebSocket
created -> the server's sync step 2 received. The storm ends when every joiner has its step 2
(or failed). After it, every distinct step 2 is applied to a fresh Y.Doc in the generator
(timed: that apply is the client's own CPU, the same for every server) and checked against
the loaded note: `synced` = step 2 received + that apply. During the storm the driver samples
the server's RSS every 50 ms and reads its VmHWM before and after; server CPU and the bytes
its sockets sent are over the storm.

The relay keeps no document (its joiners would receive an empty one): the scenario does not
apply to it.
"""

from __future__ import annotations

import argparse
import math
import statistics
from typing import Any

from harness.errors import RunError
from harness.generator import Generator
from harness.machine import check_nofile
from harness.meter import Meter, resources
from harness.scenarios.awareness import add_server_env
from harness.serverio import RssSampler, tcp_bytes, tcp_delta, vm_hwm_bytes
from harness.stack import Stack
from harness.tables import MIB, Column, fixed, print_pairs, print_table, ratio
from harness.targets import Target

SCRIPT = "gen_storm.mjs"
# 150 joiners of a 20 MB note hold 3 GB of step 2 messages until they are checked.
NODE_OPTIONS = ("--max-old-space-size=8192", "--expose-gc")
FRAGMENT = "prosemirror"
GENERATOR_BOUND_CPU_PCT = 90.0
GENERATOR_BOUND_LAG_MS = 100.0
# The targets for 20 MB x 150 joiners.
TARGET_SYNCED_P99_MS = 3000.0
TARGET_PEAK_RSS_BYTES = 2**30
TARGET_PROBE_P99_MS = 100.0
DEFAULT_MAX_DOCUMENT_BYTES = 32 * MIB


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--doc-mb", type=float, default=20, help="the note's size, MiB of updates")
    parser.add_argument("--joiners", type=int, default=150, help="fresh clients opening it")
    parser.add_argument("--window-s", type=float, default=1, help="the joiners start within this")
    parser.add_argument("--chunk-kb", type=int, default=256, help="KiB of text per loader update")
    parser.add_argument(
        "--probe-clients", type=int, default=3, help="clients of the unrelated room, 1 writer"
    )
    parser.add_argument("--probe-rate", type=float, default=20, help="the probe's edits/s")
    parser.add_argument("--quiet-s", type=float, default=2, help="the probe alone, before")
    parser.add_argument(
        "--join-timeout-s", type=float, default=120, help="a joiner with no step 2 by then failed"
    )
    parser.add_argument(
        "--client-warmups",
        type=int,
        default=3,
        help="local applies of the note by the generator before the storm (V8 warm-up)",
    )
    parser.add_argument("--seed", type=int, default=7, help="the note's text")
    add_server_env(parser)


def usage_problem(args: argparse.Namespace, servers: list[str]) -> str | None:
    if "relay" in servers:
        return (
            "joinstorm does not apply to the relay: it keeps no document, so its joiners "
            "would receive an empty one"
        )
    if args.doc_mb <= 0 or args.joiners < 1 or args.window_s < 0 or args.chunk_kb < 1:
        return "joinstorm needs --doc-mb > 0, --joiners >= 1, --window-s >= 0, --chunk-kb >= 1"
    if args.probe_clients < 2 or args.probe_rate <= 0 or args.quiet_s < 0:
        return "joinstorm needs --probe-clients >= 2, --probe-rate > 0 and --quiet-s >= 0"
    return None


def collab_settings(doc_bytes: int) -> dict[str, str]:
    """What collab needs to take the loader's note at once: the document cap above the note,
    and no per-connection byte or apply-time budget (the loader sends the whole note in
    seconds, far over a user's bursts). The joiners send a few bytes each: these change
    nothing for them."""
    return {
        "COLLAB_MAX_DOCUMENT_BYTES": str(max(DEFAULT_MAX_DOCUMENT_BYTES, 3 * doc_bytes)),
        "COLLAB_WS_BYTES_PER_S": "0",
        "COLLAB_USER_BYTES_PER_S": "0",
        "COLLAB_APPLY_MS_PER_S": "0",
    }


def start_server(stack: Stack, args: argparse.Namespace, target: str, doc_bytes: int) -> Target:
    if target != "collab":
        return stack.target(target)
    store = stack.store(args.store)
    return stack.collab(store.database_url, settings=server_env(args, doc_bytes))


def server_env(args: argparse.Namespace, doc_bytes: int) -> dict[str, str]:
    return collab_settings(doc_bytes) | dict(args.server_env)


def generator_bound(storm: dict[str, Any]) -> bool:
    return (
        storm["generator_cpu_pct"] >= GENERATOR_BOUND_CPU_PCT
        or storm["generator_max_tick_lag_ms"] >= GENERATOR_BOUND_LAG_MS
    )


def run(args: argparse.Namespace, target: str) -> dict[str, Any]:
    check_nofile(args.joiners + args.probe_clients + 2)
    doc_bytes = int(args.doc_mb * MIB)
    timeout_s = args.connect_timeout_s
    with Stack() as stack:
        server = start_server(stack, args, target, doc_bytes)
        config = {
            "scenario": "joinstorm",
            "loader_url": server.client_url("storm", "note", "loader"),
            "check_url": server.client_url("storm", "note", "checker"),
            "joiner_urls": [
                server.client_url("storm", "note", f"joiner{j}") for j in range(args.joiners)
            ],
            "probe_urls": [
                server.client_url("probe", "note", f"probe{c}") for c in range(args.probe_clients)
            ],
            "fragment_name": FRAGMENT,
            "doc_bytes": doc_bytes,
            # A small note in a few updates all the same, so that it ends near --doc-mb.
            "chunk_bytes": min(args.chunk_kb * 1024, max(4096, doc_bytes // 8)),
            "window_ms": args.window_s * 1000,
            "probe_rate": args.probe_rate,
            "quiet_ms": args.quiet_s * 1000,
            "probe_drain_ms": 1000,
            "join_timeout_ms": args.join_timeout_s * 1000,
            "client_warmups": args.client_warmups,
            "verify_applies": 3,
            "seed": args.seed,
            "connect_timeout_ms": timeout_s * 1000,
        }
        generator = stack.add(
            Generator(stack.workdir, config, script=SCRIPT, node_options=NODE_OPTIONS)
        )
        meter = Meter({"server": server.usage, "generator": generator.usage})
        start = meter.snapshot()
        generator.next_event(timeout_s + 30)  # ready: loader and probe connected
        before_load = meter.snapshot()
        generator.send("go")
        loaded = generator.next_event(timeout_s * 3 + 300)
        after_load = meter.snapshot()
        generator.send("go")
        checked = generator.next_event(timeout_s + 120)
        after_check = meter.snapshot()
        generator.send("go")
        generator.next_event(args.quiet_s + 30)  # quiet: the probe ran alone
        hwm_before = vm_hwm_bytes(server.pid)
        tcp_before = tcp_bytes(server.port)
        sampler = RssSampler(server.pid)
        before = meter.snapshot()
        generator.send("go")
        try:
            storm = generator.next_event(args.window_s + args.join_timeout_s + 60)
        finally:
            sampler.stop()
        after = meter.snapshot()
        tcp_after = tcp_bytes(server.port)
        hwm_after = vm_hwm_bytes(server.pid)
        generator.send("go")
        verified = generator.next_event(args.joiners * 10 + 120)
        generator.quit()
    joiners = storm.pop("joiners")
    for joiner, apply_ms, ok in zip(joiners, verified["apply_ms"], verified["ok"], strict=True):
        joiner["apply_ms"] = apply_ms
        joiner["ok"] = ok
        joiner["synced_ms"] = (
            joiner["step2_ms"] + apply_ms
            if joiner["step2_ms"] is not None and apply_ms is not None
            else None
        )
    storm |= resources(before, after)
    storm["generator_bound"] = generator_bound(storm)
    failed = sum(1 for joiner in joiners if not joiner["ok"])
    result = {
        "scenario": "joinstorm",
        "server": target,
        "store": args.store if target == "collab" else None,
        "server_env": server_env(args, doc_bytes) if target == "collab" else None,
        "doc_mb": args.doc_mb,
        "joiners": args.joiners,
        "window_s": args.window_s,
        "chunk_bytes": config["chunk_bytes"],
        "loaded": loaded,
        "load": resources(before_load, after_load),
        "checked": checked,
        "server_rss_bytes_start": start.usage["server"].rss_bytes,
        "server_rss_bytes_loaded": after_check.usage["server"].rss_bytes,
        "storm": storm,
        "server_tcp": tcp_delta(tcp_before, tcp_after),
        "server_rss_peak_bytes": sampler.peak_bytes,
        "server_children_rss_peak_bytes": sampler.peak_children_bytes,
        "server_rss_samples": sampler.samples,
        "server_vm_hwm_bytes_before": hwm_before,
        "server_vm_hwm_bytes_after": hwm_after,
        "server_rss_bytes_after": after.usage["server"].rss_bytes,
        "distinct_payloads": verified["distinct_payloads"],
        "failed": failed,
        "step2_ms": _summary([j["step2_ms"] for j in joiners]),
        "synced_ms": _summary([j["synced_ms"] for j in joiners]),
        "connect_ms": _summary([j["connect_ms"] for j in joiners]),
        "apply_ms": _summary([j["apply_ms"] for j in joiners]),
        "joiner_details": joiners,
    }
    print_joinstorm(result)
    if failed == args.joiners:
        raise RunError(f"every joiner failed: {storm['failures']}")
    return result


def _summary(values: list[float | None]) -> dict[str, float | int | None]:
    present = sorted(v for v in values if v is not None)
    if not present:
        return {"count": 0, "p50": None, "p99": None, "max": None}

    # The same nearest-rank percentile as the generator's.
    p99 = present[min(len(present) - 1, max(0, math.ceil(0.99 * len(present)) - 1))]
    return {
        "count": len(present),
        "p50": statistics.median_low(present),
        "p99": p99,
        "max": present[-1],
    }


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:.0f}"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value / 1000:.2f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


COLUMNS = (
    Column("server", 7, lambda r: r["server"] + ("*" if r["storm"]["generator_bound"] else "")),
    Column("docMB", 6, lambda r: f"{r['loaded']['encoded_state_bytes'] / MIB:.1f}"),
    Column("joiners", 8, lambda r: str(r["joiners"])),
    Column("step2 p50", 10, lambda r: _ms(r["step2_ms"]["p50"])),
    Column("p99", 6, lambda r: _ms(r["step2_ms"]["p99"])),
    Column("synced p50", 11, lambda r: _ms(r["synced_ms"]["p50"])),
    Column("p99", 6, lambda r: _ms(r["synced_ms"]["p99"])),
    Column("max", 6, lambda r: _ms(r["synced_ms"]["max"])),
    Column("failed", 7, lambda r: str(r["failed"])),
    Column("srvCPU_s", 9, lambda r: f"{r['storm']['server_cpu_s']:.2f}"),
    Column("peakRSS_MB", 11, lambda r: _mib(r["server_rss_peak_bytes"])),
    Column("HWM_MB", 7, lambda r: _mib(r["server_vm_hwm_bytes_after"])),
    Column("probe p99q", 11, lambda r: fixed(r["storm"]["probe_quiet"]["latency_ms"]["p99"])),
    Column("p99storm", 9, lambda r: fixed(r["storm"]["probe_storm"]["latency_ms"]["p99"])),
    Column("genCPU%", 8, lambda r: f"{r['storm']['generator_cpu_pct']:.0f}"),
    Column("lag_ms", 7, lambda r: f"{r['storm']['generator_max_tick_lag_ms']:.0f}"),
    Column("closed", 7, lambda r: str(sum(r["storm"]["closed"].values()))),
)
NOTE = (
    "(step2: joiner's WebSocket created -> the server's sync step 2 received, ms; synced: step2 "
    "+ the generator's apply of it (timed after the storm), ms;\n failed: no step 2, or one that "
    "did not hold the note; srvCPU_s: server CPU over the storm; peakRSS_MB: the server's RSS, "
    "sampled every 50 ms in the storm;\n HWM_MB: its VmHWM after the storm (peak since start, "
    "loading included); probe p99q / p99storm: the unrelated room's edit latency, ms, alone "
    "and during\n the storm; lag_ms: the generator's 5 ms ticker, most late in the storm; *: "
    f"generator-bound (CPU >= {GENERATOR_BOUND_CPU_PCT:.0f} % or lag >= "
    f"{GENERATOR_BOUND_LAG_MS:.0f} ms): receipt times are partly the generator's)"
)


def targets_met(result: dict[str, Any]) -> str:
    synced = result["synced_ms"]["p99"]
    probe = result["storm"]["probe_storm"]["latency_ms"]["p99"]
    peak = max(result["server_rss_peak_bytes"], result["server_vm_hwm_bytes_after"] or 0)
    checks = (
        ("synced p99 < 3 s", synced is not None and synced < TARGET_SYNCED_P99_MS),
        ("peak RSS < 1 GiB", peak < TARGET_PEAK_RSS_BYTES),
        ("probe p99 < 100 ms", probe is not None and probe < TARGET_PROBE_P99_MS),
        ("no failures", result["failed"] == 0),
    )
    return ", ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in checks)


def print_joinstorm(result: dict[str, Any]) -> None:
    loaded = result["loaded"]
    load = result["load"]
    checked = result["checked"]
    storm = result["storm"]
    tcp = result["server_tcp"]
    print_pairs(
        (
            (
                "note",
                f"{loaded['paragraphs']} paragraphs, {loaded['text_chars']} chars; encoded "
                f"{loaded['encoded_state_bytes'] / MIB:.1f} MiB; {loaded['transactions']} updates "
                f"in {loaded['load_s']:.1f} s + {loaded['confirm_s']:.1f} s to confirm",
            ),
            (
                "server loading",
                f"CPU {load['server_cpu_s']:.1f} s; RSS {_mib(result['server_rss_bytes_start'])} "
                f"-> {_mib(result['server_rss_bytes_loaded'])} MiB; VmHWM before the storm "
                f"{_mib(result['server_vm_hwm_bytes_before'])} MiB",
            ),
            (
                "check join",
                f"step 2 {checked['check_step2_bytes'] / MIB:.1f} MiB in "
                f"{checked['check_join_ms']:.0f} ms, applied in {checked['check_apply_ms']:.0f} "
                "ms; generator warm-up applies "
                + ", ".join(f"{ms:.0f}" for ms in checked["client_warmup_apply_ms"])
                + " ms",
            ),
            (
                "storm",
                f"{result['joiners']} joiners over {result['window_s']:g} s, all done after "
                f"{storm['storm_s']:.2f} s; connect p50 {_s(result['connect_ms']['p50'])} s "
                f"p99 {_s(result['connect_ms']['p99'])} s; client apply "
                f"{fixed(result['apply_ms']['p50'], 0)} ms ({result['distinct_payloads']} "
                "distinct step 2)",
            ),
            (
                "server in the storm",
                f"CPU {storm['server_cpu_s']:.2f} s ({storm['server_cpu_pct']:.0f} %), sent "
                + (f"{tcp['sent'] / MIB:.0f} MiB" if tcp else "-")
                + f"; RSS peak {_mib(result['server_rss_peak_bytes'])} MiB (sampled), VmHWM "
                f"{_mib(result['server_vm_hwm_bytes_after'])} MiB, after "
                f"{_mib(result['server_rss_bytes_after'])} MiB"
                + (
                    "; its children (trial worker) peak "
                    f"{_mib(result['server_children_rss_peak_bytes'])} MiB"
                    if result["server_children_rss_peak_bytes"]
                    else ""
                ),
            ),
            (
                "failures",
                f"{result['failed']} ({storm['failures'] or 'none'}); closed "
                f"{storm['closed'] or 'none'}",
            ),
            (
                "probe room",
                f"{storm['probe_storm']['edits']} edits in the storm, "
                f"{storm['probe_storm']['received']}/{storm['probe_storm']['expected']} delivered; "
                f"p50 {fixed(storm['probe_storm']['latency_ms']['p50'])} ms, max "
                f"{fixed(storm['probe_storm']['latency_ms']['max'])} ms",
            ),
            (
                "generator",
                f"{storm['generator_cpu_pct']:.0f} % CPU in the storm, ticker late "
                f"{storm['generator_late_ticks']} times, max "
                f"{storm['generator_max_tick_lag_ms']:.0f} ms"
                + (" (generator-bound)" if storm["generator_bound"] else ""),
            ),
            ("the 20 MB x 150 targets", targets_met(result)),
        )
    )
    print_table(COLUMNS, [result])
    print(NOTE)


def print_compare(results: dict[str, dict[str, Any]], reference: str) -> None:
    ref = results[reference]
    rows = [
        {
            **result,
            "p99_ratio": ratio(result["synced_ms"]["p99"], ref["synced_ms"]["p99"]),
            "cpu_ratio": ratio(result["storm"]["server_cpu_s"], ref["storm"]["server_cpu_s"]),
        }
        for result in results.values()
    ]
    columns = (
        *COLUMNS[:7],
        Column("p99 x", 7, lambda r: r["p99_ratio"]),
        *COLUMNS[7:10],
        Column("cpu x", 7, lambda r: r["cpu_ratio"]),
        *COLUMNS[10:],
    )
    print_table(columns, rows)
    print(NOTE)
