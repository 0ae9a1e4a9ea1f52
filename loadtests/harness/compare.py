"""The comparison printed after a `--servers a,b,c` run: each server next to collab (or to the
first server that completed, when collab is not among them)."""

from __future__ import annotations

import statistics
from typing import Any

from harness.scenarios import awareness, joinstorm
from harness.scenarios.fanout import loss_pct
from harness.tables import MIB, Column, fixed, heading, print_table, ratio


def reference_name(results: dict[str, dict[str, Any]]) -> str:
    return "collab" if "collab" in results else next(iter(results))


def print_comparison(scenario: str, results: dict[str, dict[str, Any]]) -> None:
    """`results`: server name -> that server's results; failed servers left out."""
    if not results:
        return
    reference = reference_name(results)
    heading(f"servers compared (ratios: server / {reference})")
    if scenario in ("fanout", "hotroom"):
        _compare_steps(results, reference)
    elif scenario == "idle":
        _compare_idle(results, reference)
    elif scenario == "bigdoc":
        _compare_bigdoc(results, reference)
    elif scenario == "awareness":
        awareness.print_compare(results, reference)
    elif scenario == "joinstorm":
        joinstorm.print_compare(results, reference)


def _compare_steps(results: dict[str, dict[str, Any]], reference: str) -> None:
    rows = []
    reference_steps = results[reference]["steps"]
    for index, reference_step in enumerate(reference_steps):
        for name, result in results.items():
            if index >= len(result["steps"]):
                continue
            step = result["steps"][index]
            rows.append(
                {
                    **step,
                    "name": name,
                    "us_ratio": ratio(
                        step["server_cpu_us_per_delivered"],
                        reference_step["server_cpu_us_per_delivered"],
                    ),
                    "p99_ratio": ratio(
                        step["latency_ms"]["p99"], reference_step["latency_ms"]["p99"]
                    ),
                }
            )
    columns = (
        Column("rate/w", 7, lambda r: f"{r['rate_per_writer']:g}"),
        Column("server", 7, lambda r: r["name"]),
        Column("deliv/s", 9, lambda r: f"{r['delivered_per_s']:.0f}"),
        Column("loss%", 7, lambda r: f"{loss_pct(r):.2f}"),
        Column("p50ms", 8, lambda r: fixed(r["latency_ms"]["p50"])),
        Column("p99ms", 8, lambda r: fixed(r["latency_ms"]["p99"])),
        Column("p99 x", 7, lambda r: r["p99_ratio"]),
        Column("srvCPU%", 8, lambda r: f"{r['server_cpu_pct']:.0f}"),
        Column("µs/deliv", 9, lambda r: fixed(r["server_cpu_us_per_delivered"])),
        Column("µs x", 7, lambda r: r["us_ratio"]),
        Column("sys%", 5, lambda r: fixed(r.get("server_system_pct"), 0)),
        Column("srvRSS_MB", 10, lambda r: f"{r['server_rss_bytes'] / MIB:.0f}"),
        Column("othCPU%", 8, lambda r: f"{r['other_cpu_pct']:.0f}"),
    )
    print_table(columns, rows)


def _compare_idle(results: dict[str, dict[str, Any]], reference: str) -> None:
    ref = results[reference]
    rows = [
        {
            **result,
            "name": name,
            "rss_ratio": ratio(
                result["server_rss_bytes_per_connection"], ref["server_rss_bytes_per_connection"]
            ),
            "cpu_ratio": ratio(result["server_cpu_s_connecting"], ref["server_cpu_s_connecting"]),
        }
        for name, result in results.items()
    ]
    columns = (
        Column("server", 7, lambda r: r["name"]),
        Column("conns", 7, lambda r: str(r["connections"])),
        Column("synced_s", 9, lambda r: f"{r['synced_s']:.1f}"),
        Column("KiB/conn", 9, lambda r: f"{r['server_rss_bytes_per_connection'] / 1024:.1f}"),
        Column("mem x", 7, lambda r: r["rss_ratio"]),
        Column("RSS_MB", 7, lambda r: f"{r['server_rss_bytes_held'] / MIB:.0f}"),
        Column("connCPU_s", 10, lambda r: f"{r['server_cpu_s_connecting']:.2f}"),
        Column("cpu x", 7, lambda r: r["cpu_ratio"]),
        Column("idleCPU%", 9, lambda r: f"{r['server_cpu_pct_idle']:.1f}"),
        Column("awareness", 10, lambda r: f"{r['awareness_complete_peers']}/{r['connections']}"),
        Column("open", 6, lambda r: str(r["open_after_hold"])),
    )
    print_table(columns, rows)
    print(
        "(synced_s: every connection open and synced; connCPU_s: server CPU while connecting; "
        "awareness: peers that saw every other state in the room)"
    )


def _compare_bigdoc(results: dict[str, dict[str, Any]], reference: str) -> None:
    ref = results[reference]

    def mean(result: dict[str, Any], key: str) -> float:
        return sum(p[key] for p in result["probes"]) / len(result["probes"])

    rows = [
        {
            "name": name,
            "load_cpu_s": result["load"]["server_cpu_s"],
            "load_ratio": ratio(result["load"]["server_cpu_s"], ref["load"]["server_cpu_s"]),
            "rss_loaded": result["server_rss_bytes_after_probes"],
            "join_cpu_ms": result["server_cpu_ms_per_join"],
            "join_ratio": ratio(result["server_cpu_ms_per_join"], ref["server_cpu_ms_per_join"]),
            "step2_ms": mean(result, "open_to_received_ms"),
            "applied_ms": mean(result, "open_to_applied_ms"),
            "client_apply_ms": mean(result, "apply_ms"),
            "applied_median_ms": statistics.median(
                p["open_to_applied_ms"] for p in result["probes"]
            ),
            "step2_bytes": result["probes"][0]["step2_message_bytes"],
            "text_ok": all(p["text_matches"] for p in result["probes"]),
        }
        for name, result in results.items()
    ]
    columns = (
        Column("server", 7, lambda r: r["name"]),
        Column("loadCPU_s", 10, lambda r: f"{r['load_cpu_s']:.2f}"),
        Column("load x", 7, lambda r: r["load_ratio"]),
        Column("RSS_MB", 7, lambda r: f"{r['rss_loaded'] / MIB:.1f}"),
        Column("joinCPU_ms", 11, lambda r: f"{r['join_cpu_ms']:.1f}"),
        Column("join x", 7, lambda r: r["join_ratio"]),
        Column("open->step2", 12, lambda r: f"{r['step2_ms']:.1f}"),
        Column("open->applied", 14, lambda r: f"{r['applied_ms']:.1f}"),
        Column("applied p50", 12, lambda r: f"{r['applied_median_ms']:.1f}"),
        Column("clientApply", 12, lambda r: f"{r['client_apply_ms']:.1f}"),
        Column("step2 B", 9, lambda r: str(r["step2_bytes"])),
        Column("text ok", 7, lambda r: str(r["text_ok"])),
    )
    print_table(columns, rows)
    print(
        "(loadCPU_s: server CPU to apply the trace; RSS_MB: after the probes; joinCPU_ms: "
        "server CPU per fresh join (mean); open->step2, open->applied: probe means in ms;\n"
        " applied p50: open->applied, median (the client applies the same bytes for every "
        "server, fastest once warm);\n clientApply: of open->applied, the Node client's own "
        "Y.applyUpdate of step 2, mean)"
    )
