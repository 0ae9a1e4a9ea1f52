"""`python loadtests/attacks.py`: the hostile-update attacks, each against a fresh server,
with what they did to the attacker's connection, the server and an unrelated room.

The attacks (attacker: user `mallory`, editor in workspace `atk`, room `atk/<attack>`):

    d1      one socket sends two updates of --d1-inserts (8000) inserts at position 0 of one
            Y.Text, under client 1001 then 1002
    d1rest  the same two updates as two POST /api/v1/docs/atk/d1rest/updates
    d2      the 18-byte update 010101818080801004010174016100 (an item at clock 2**32 + 1)
    d3      an author's base, u2, u3, u1, answering the server's sync step 1 like a stock client
    d4      4 sockets re-send a --d4-mib (2.1 MiB) update the room holds, --d4-rate-per-s each
    d4cap   d4 with COLLAB_MAX_DOCUMENT_BYTES at --d4cap-max-document-mib (4 MiB): the document
            is within one re-send of its cap
    d5      --d5-requests (300) POST …/updates whose bodies trickle in, --d5-open-per-s (30)
            opened per second, held up to --attack-s; the server's open-files limit is
            --d5-nofile (256) in this attack only
    d9      --d9-sockets (10) sockets each send --d9-messages (1000) one-character edits at once

Each attack ends when the server has handled everything sent (a sync step 1 sent last is
answered), closed the attacker, or after --attack-s (15 s); the window measured is from the
attacker's start to its end plus 2 s.

Columns: `attacker` how the attacker's connections ended (close code x count, `open`; HTTP
statuses for REST), `done_s` the attack's length, `cpu_s` the server process's CPU in the
window (its event loop and threads), `+wrk_s` its worker processes' (the trial worker), `busy%`
cpu_s over the window, `RSS_MB` the largest RSS of the server and its workers, `mark` the
unrelated room's marker edits writer -> reader (ms; `lost` never arrived), `hz` /healthz (ms
of the ones answered; `hz ok%` answered 200 within 10 s), `fds` the server's most open files,
`rejoin` the status of a new WebSocket of the attacker afterwards (429: throttled), `stored`
what the REST snapshot of the attacker's room holds (d1: the clock of clients 1001 and 1002;
d2: whether the refused item is there; d3: whether all edits are).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from harness.attack_run import run_attack
from harness.errors import RunError
from harness.machine import describe_wakeup, machine_facts
from harness.paths import REPO_ROOT
from harness.procs import GENERATOR_CPU, can_pin
from harness.stack import exit_on_sigterm
from harness.tables import MIB, Column, fixed, heading, print_table

ATTACKS = ("d1", "d1rest", "d2", "d3", "d4", "d4cap", "d5", "d9")
MAX_ATTACK_S = 60.0


def build_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--server-dir",
        type=Path,
        default=REPO_ROOT,
        help="checkout whose collab/ the server runs (default: this repository)",
    )
    parser.add_argument("--attacks", default=",".join(ATTACKS), help="comma-separated")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument(
        "--attack-s", type=float, default=15.0, help="longest an attack may last (each)"
    )
    parser.add_argument("--prepare-timeout-s", type=float, default=60.0)
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        type=_env_pair,
        metavar="COLLAB_X=VALUE",
        help="extra environment for the server (repeatable)",
    )
    parser.add_argument("--d1-inserts", type=int, default=8000, help="inserts per update")
    parser.add_argument("--d4-mib", type=float, default=2.1, help="size of the re-sent update")
    parser.add_argument(
        "--d4-rate-per-s",
        type=float,
        default=1.8,
        help="re-sends per second per connection (1.8 x 2.1 MiB: under the default "
        "per-connection 4 MiB/s)",
    )
    parser.add_argument("--d4-resends", type=int, default=18, help="re-sends per connection")
    parser.add_argument(
        "--d4cap-max-document-mib",
        type=float,
        default=4.0,
        help="d4cap: d4 with the server's COLLAB_MAX_DOCUMENT_BYTES at this, so the document "
        "is within one re-send of its cap",
    )
    parser.add_argument("--d5-requests", type=int, default=300)
    parser.add_argument(
        "--d5-open-per-s",
        type=float,
        default=30.0,
        help="requests opened per second (0: all at once)",
    )
    parser.add_argument(
        "--d5-nofile",
        type=int,
        default=256,
        help="the server's open-files limit in d5 (0: the hard limit, as the other attacks)",
    )
    parser.add_argument("--d9-sockets", type=int, default=10)
    parser.add_argument(
        "--d9-messages",
        type=int,
        default=1000,
        help="edits per socket (default: the per-connection burst, COLLAB_WS_MESSAGE_BURST)",
    )
    return parser


def _env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("COLLAB_"):
        raise argparse.ArgumentTypeError(f"expected COLLAB_NAME=VALUE, got {text!r}")
    return name, value


def usage_problem(args: argparse.Namespace) -> str | None:
    if not (args.server_dir / "collab" / "__init__.py").is_file():
        return f"--server-dir {args.server_dir}: no collab/ package there"
    unknown = set(args.attack_list) - set(ATTACKS)
    if unknown or not args.attack_list:
        return f"--attacks takes names among {', '.join(ATTACKS)}"
    if not 1 <= args.attack_s <= MAX_ATTACK_S:
        return f"--attack-s must be within 1..{MAX_ATTACK_S:.0f}"
    if not 1 <= args.d1_inserts <= 20_000:
        return "--d1-inserts must be within 1..20000 (16000 took 19 s on the old server)"
    if not 0 < args.d4_mib <= 7 or args.d4_rate_per_s <= 0 or not 1 <= args.d4_resends <= 200:
        return "--d4-mib within (0, 7], --d4-rate-per-s > 0, --d4-resends within 1..200"
    if not args.d4_mib < args.d4cap_max_document_mib < 2 * args.d4_mib:
        return "--d4cap-max-document-mib must be between --d4-mib and twice it"
    if not 1 <= args.d5_requests <= 2000 or args.d5_nofile < 0 or args.d5_open_per_s < 0:
        return "--d5-requests within 1..2000, --d5-nofile >= 0, --d5-open-per-s >= 0"
    if not 1 <= args.d9_sockets <= 50 or not 1 <= args.d9_messages <= 5000:
        return "--d9-sockets within 1..50, --d9-messages within 1..5000"
    return None


def attacker_summary(row: dict[str, Any]) -> str:
    """How the attacker's connection(s) ended, in a few characters."""
    outcome = row["attacker"]
    if "error" in outcome:
        return "error"
    if "connections" in outcome:
        codes: dict[str, int] = {}
        for connection in outcome["connections"]:
            key = "open" if connection["open"] else str(connection["close_code"])
            codes[key] = codes.get(key, 0) + 1
        return " ".join(f"{code}x{count}" for code, count in sorted(codes.items()))
    if "answers" in outcome:
        return ",".join(str(answer["status"]) for answer in outcome["answers"])
    if "statuses" in outcome:
        return " ".join(
            f"{status}x{count}" for status, count in sorted(outcome["statuses"].items())
        )
    return "open" if outcome["open"] else str(outcome["close_code"])


def stored_verdict(row: dict[str, Any]) -> str:
    """Whether the refused content is in the stored document (per attack)."""
    stored, name = row["stored"], row["attack"]
    clocks = {int(client): clock for client, clock in stored["clocks"].items()}
    if name in ("d1", "d1rest"):
        return f"1001:{clocks.get(1001, 0)} 1002:{clocks.get(1002, 0)}"
    if name == "d2":
        held = stored["text_length"] > 0 or 1 in clocks
        return f"YES ({stored['text_head']!r})" if held else "no"
    if name == "d3":
        expected = row["attacker"].get("expected_text")
        text = stored["text_head"]
        return "all edits" if text == expected else f"LOST ({text!r} != {expected!r})"
    if name == "d9":
        return f"{stored['text_length']} chars"
    return f"{stored['bytes'] / MIB:.1f} MiB"


def _ms(row: dict[str, Any], key: str, stat: str) -> str:
    return fixed(row["probe"][key][stat], 0)


COLUMNS = (
    Column("attack", 6, lambda r: r["attack"]),
    Column("attacker", 14, attacker_summary),
    Column("done_s", 7, lambda r: f"{r['attack_s']:.1f}"),
    Column("cpu_s", 6, lambda r: f"{r['server_cpu_s']:.1f}"),
    Column("+wrk_s", 6, lambda r: f"{r['server_tree_cpu_s'] - r['server_cpu_s']:.1f}"),
    Column("busy%", 6, lambda r: f"{r['server_busy_pct']:.0f}"),
    Column("RSS_MB", 7, lambda r: f"{r['server_tree_max_rss_bytes'] / MIB:.0f}"),
    Column("mark p50", 9, lambda r: _ms(r, "marker_ms", "p50")),
    Column("p99", 6, lambda r: _ms(r, "marker_ms", "p99")),
    Column("max", 6, lambda r: _ms(r, "marker_ms", "max")),
    Column("lost", 5, lambda r: str(r["probe"]["markers_sent"] - r["probe"]["markers_received"])),
    Column("hz p50", 7, lambda r: _ms(r, "healthz_ms", "p50")),
    Column("p99", 6, lambda r: _ms(r, "healthz_ms", "p99")),
    Column("max", 6, lambda r: _ms(r, "healthz_ms", "max")),
    Column("hz ok%", 7, lambda r: fixed(r["probe"]["healthz_ok_pct"], 0)),
    Column("fds", 5, lambda r: str(r["server_open_fds_max"])),
    Column("rejoin", 7, lambda r: str(r["attacker_rejoin_status"] or "-")),
    Column("stored", 0, lambda r: " " + stored_verdict(r)),
)


def print_details(results: list[dict[str, Any]]) -> None:
    """Per attack: its own timeline and the server's close reasons."""
    for row in results:
        outcome = row["attacker"]
        if "error" in outcome:
            print(f"{row['attack']}: attacker error: {outcome['error']}")
            continue
        parts = []
        if row["attack"] == "d5":
            parts.append(
                f"opened {outcome['opened']}/{outcome['requests']} in "
                f"{outcome['opened_after_s']:.1f} s (failures {outcome['open_failures']}), "
                f"closed by the server {outcome['closed_by_server']} (median "
                f"{fixed(outcome['closed_after_answer_s_median'])} s after its answer); "
                f"server fds max "
                f"{row['server_open_fds_max']} (limit {row['server_nofile_limit']})"
            )
        if "answers" in outcome:
            parts += [
                f"{a['status']} after {a['after_s']:.1f} s {a.get('body', '')[:70]!r}"
                for a in outcome["answers"]
            ]
        if outcome.get("handled_after_s") is not None:
            parts.append(f"handled after {outcome['handled_after_s']:.2f} s")
        if "server_step1_asks" in outcome:
            parts.append(f"server asked for missing updates {outcome['server_step1_asks']}x")
        if "sent" in outcome:
            parts.append(f"sent per connection {outcome['sent']}")
        endings = outcome.get("connections") or [outcome]
        reasons = {e.get("close_reason", "") for e in endings if not e.get("open", True)}
        reasons.discard("")
        parts += sorted(reasons)
        print(f"{row['attack']}: " + "; ".join(parts))


def main(argv: list[str] | None = None, *, description: str = "") -> int:
    args = build_parser(description).parse_args(argv)
    args.attack_list = [name.strip() for name in args.attacks.split(",") if name.strip()]
    args.server_dir = args.server_dir.resolve()
    command = " ".join(["python", "loadtests/attacks.py", *(argv or sys.argv[1:])])
    if problem := usage_problem(args):
        print(f"attacks.py: {problem}", file=sys.stderr)
        return 2
    exit_on_sigterm()
    if can_pin(GENERATOR_CPU):
        # The probe runs here, on the generator's CPU (the attacker process beside it, niced);
        # the server gets CPU 0 to itself, as in every scenario.
        os.sched_setaffinity(0, {GENERATOR_CPU})
    results: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    try:
        facts = machine_facts()
        print(
            f"{command}\nserver: {args.server_dir}\n{facts['date']}  {facts['nproc']} CPUs  "
            f"{facts['cpu_model']}  load average {' '.join(facts['loadavg_at_start'])}\n"
            f"{describe_wakeup(facts['wakeup'])}"
        )
        for name in args.attack_list:
            heading(name)
            try:
                row = run_attack(args, name)
            except RunError as error:
                print(f"attacks.py: {name}: {error}", file=sys.stderr)
                errors[name] = str(error)
                continue
            results.append(row)
            print_table(COLUMNS, [row])
    except KeyboardInterrupt:
        print("attacks.py: interrupted; the processes it started are stopped", file=sys.stderr)
        return 130
    if results:
        heading(f"summary ({args.server_dir})")
        print_table(COLUMNS, results)
        print_details(results)
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "command": command,
                    "server_dir": str(args.server_dir),
                    "parameters": {
                        key: str(value) if isinstance(value, Path) else value
                        for key, value in vars(args).items()
                    },
                    "machine": facts,
                    "results": results,
                    "errors": errors,
                },
                indent=2,
            )
        )
    return 1 if errors else 0
