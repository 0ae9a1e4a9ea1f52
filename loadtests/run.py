"""Run a load scenario against a fresh `collab serve` and print a table of results.

    python loadtests/run.py fanout [--rooms 100 --clients 10 --rates 5,10,20,30,50 --step-s 10]
    python loadtests/run.py idle [--connections 5000 --rooms 500]
    python loadtests/run.py hotroom [--clients 200 --writers 5 --rates 10 --step-s 10]
    python loadtests/run.py bigdoc [--probes 5 --patches-per-txn 1000]

The server runs pinned to CPU 0 and the Node generator (`loadtests/gen.mjs`) to CPU 1. Server
CPU time and RSS are read from /proc before and after each measured phase. `--json PATH` writes
the raw results. Exits 1 when the run could not be carried out (the server or the generator
failed, a connection was refused); loss is reported, not an error.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import queue
import re
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

LOADTESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = LOADTESTS_DIR.parent
sys.path.insert(0, str(REPO_ROOT))

from collab.auth import Role, mint_token  # noqa: E402
from collab.settings import Secret, Settings  # noqa: E402

SERVER_CPU = 0
GENERATOR_CPU = 1
SERVER_START_TIMEOUT_S = 30.0
BANNER = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
NOFILE_MARGIN = 64
TRACE_PATH = REPO_ROOT.parent / "shared/data/automerge-paper.json.gz"


class RunError(Exception):
    """The run could not be carried out; the message says why."""


@dataclass(frozen=True)
class ProcessSample:
    cpu_s: float
    rss_bytes: int
    at_s: float
    machine_busy_s: float


def machine_busy_s() -> float:
    """CPU time all CPUs spent not idle since boot (user, nice, system, irq, softirq, steal)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS_PER_S


def sample(pid: int) -> ProcessSample:
    """CPU time (utime + stime) and RSS of a process, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state) of proc(5): utime is field 14, stime 15, rss 24 (pages).
    cpu_ticks = int(fields[11]) + int(fields[12])
    rss_pages = int(fields[21])
    return ProcessSample(
        cpu_ticks / CLOCK_TICKS_PER_S, rss_pages * PAGE_BYTES, time.monotonic(), machine_busy_s()
    )


def cpu_ns(pid: int) -> int:
    """On-CPU time of all threads of a process in ns (/proc/PID/task/*/schedstat, field 1).

    Finer than utime + stime (clock ticks, 10 ms); threads that already exited are not counted.
    """
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def raise_nofile_limit() -> None:
    """Raise the soft open-files limit to the hard limit (runs in each child before exec)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pinned(cpu: int, argv: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > cpu:
        return ["taskset", "-c", str(cpu), *argv]
    print(f"warning: not pinning {argv[0]} to CPU {cpu} (no taskset or too few CPUs)")
    return argv


def machine_facts() -> dict[str, Any]:
    cpu_model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "node": node.stdout.strip(),
        "kernel": platform.release(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "nofile_hard_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
    }


def _pump_lines(stream: TextIO, sink: Callable[[str], None]) -> None:
    for line in stream:
        sink(line)


class Server:
    """`python -m collab serve` on a free port, pinned to SERVER_CPU, logging to a file."""

    def __init__(self, workdir: Path, store: str) -> None:
        self.secret = secrets.token_urlsafe(48)
        self.log_path = workdir / "server.log"
        database_url = "memory://" if store == "memory" else f"sqlite:///{workdir / 'load.db'}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLLAB_") and k != "PORT"}
        env |= {
            "COLLAB_PORT": "0",
            "COLLAB_HOST": "127.0.0.1",
            "COLLAB_DATABASE_URL": database_url,
            "COLLAB_JWT_SECRET": self.secret,
            "COLLAB_LOG_LEVEL": "WARNING",
        }
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                pinned(SERVER_CPU, [sys.executable, "-m", "collab", "serve"]),
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                preexec_fn=raise_nofile_limit,
            )
        lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        threading.Thread(
            target=_pump_lines, args=(self.process.stdout, lines.put), daemon=True
        ).start()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise RunError(f"collab serve did not start: {self.log_tail()}") from None
            if match := BANNER.search(line):
                self.port = int(match.group(1))
                break
        self.settings = Settings(jwt_secret=Secret(self.secret))

    def token(self, sub: str, workspace_id: str) -> str:
        return mint_token(
            self.settings, sub=sub, workspaces={workspace_id: Role.EDITOR}, ttl_s=3600
        )

    def doc_url(self, workspace_id: str, note_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/docs/{workspace_id}/{note_id}"

    def sample(self) -> ProcessSample:
        if self.process.poll() is not None:
            raise RunError(f"collab serve exited ({self.process.returncode}): {self.log_tail()}")
        return sample(self.process.pid)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Generator:
    """`node loadtests/gen.mjs CONFIG`, pinned to GENERATOR_CPU; JSON events on stdout."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        if not (LOADTESTS_DIR / "node_modules").is_dir():
            raise RunError("loadtests/node_modules is missing: run npm ci --prefix loadtests")
        config_path = workdir / "generator.json"
        config_path.write_text(json.dumps(config))
        self.log_path = workdir / "generator.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                pinned(GENERATOR_CPU, ["node", str(LOADTESTS_DIR / "gen.mjs"), str(config_path)]),
                cwd=LOADTESTS_DIR,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                preexec_fn=raise_nofile_limit,
            )
        self.events: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        threading.Thread(
            target=_pump_lines, args=(self.process.stdout, self.events.put), daemon=True
        ).start()

    def next_event(self, timeout_s: float) -> dict[str, Any]:
        """The next event. Raises `RunError` on timeout, on an `error` event or on exit."""
        try:
            line = self.events.get(timeout=timeout_s)
        except queue.Empty:
            raise RunError(f"the generator sent nothing for {timeout_s:.0f} s") from None
        event: dict[str, Any] = json.loads(line)
        if event["event"] == "error":
            raise RunError(f"the generator failed: {event['message']}")
        return event

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def sample(self) -> ProcessSample:
        return sample(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def processes(
    store: str, make_config: Callable[[Server], dict[str, Any]]
) -> Iterator[tuple[Server, Generator]]:
    with tempfile.TemporaryDirectory(prefix="collab-load-") as tmp:
        workdir = Path(tmp)
        server = Server(workdir, store)
        generator = None
        try:
            generator = Generator(workdir, make_config(server))
            yield server, generator
        except RunError:
            if generator is not None:
                print(Path(generator.log_path).read_text(errors="replace")[-2000:], file=sys.stderr)
            print(server.log_tail(), file=sys.stderr)
            raise
        finally:
            if generator is not None:
                if generator.process.stdin is not None:
                    generator.process.stdin.close()
                generator.stop()
            server.stop()


def check_nofile(connections: int) -> dict[str, Any]:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if connections + NOFILE_MARGIN > hard:
        raise RunError(
            f"{connections} connections need more open files than the hard limit ({hard}) "
            "allows; this machine limits the run (raise the hard limit as root: ulimit -Hn)"
        )
    return {"nofile_hard_limit": hard}


def fanout(args: argparse.Namespace) -> dict[str, Any]:
    """fanout (R rooms, 1 writer each) and hotroom (1 room, W writers): same steps and table."""
    rates = [float(rate) for rate in args.rates.split(",")]
    check_nofile(args.rooms * args.clients)
    writers = getattr(args, "writers", 1)
    prefix = "hot" if args.scenario == "hotroom" else "load"

    def make_config(server: Server) -> dict[str, Any]:
        rooms = [
            {
                "url": server.doc_url(f"{prefix}{r}", "fanout"),
                "tokens": [
                    server.token(f"user{r}-{c}", f"{prefix}{r}") for c in range(args.clients)
                ],
            }
            for r in range(args.rooms)
        ]
        return {
            "scenario": "fanout",
            "writers_per_room": writers,
            "rooms": rooms,
            "rates_per_writer": rates,
            "step_s": args.step_s,
            "drain_s": args.drain_s,
            "connect_concurrency": args.connect_concurrency,
            "connect_timeout_ms": args.connect_timeout_s * 1000,
        }

    steps = []
    with processes(args.store, make_config) as (server, generator):
        ready = generator.next_event(args.connect_timeout_s * 2 + 30)
        if ready["failed"]:
            raise RunError(f"{ready['failed']} connections failed: {ready['errors']}")
        for _rate in rates:
            server_before, generator_before = server.sample(), generator.sample()
            generator.send("go")
            step = generator.next_event(args.step_s * 3 + args.drain_s + 30)
            server_after, generator_after = server.sample(), generator.sample()
            step |= resources(server_before, server_after, generator_before, generator_after)
            step["server_cpu_us_per_delivered"] = (
                step["server_cpu_s"] * 1e6 / step["received"] if step["received"] else None
            )
            step["delivered_per_s"] = step["received"] / step["total_s"]
            step["sent_per_s"] = step["sent"] / step["send_s"]
            steps.append(step)
            print_fanout_row(step, header=len(steps) == 1)
        generator.send("quit")
        generator.next_event(30)
    return {
        "scenario": args.scenario,
        "rooms": args.rooms,
        "clients": args.clients,
        "writers_per_room": writers,
        "steps": steps,
    }


def resources(
    server_before: ProcessSample,
    server_after: ProcessSample,
    generator_before: ProcessSample,
    generator_after: ProcessSample,
) -> dict[str, Any]:
    wall_s = server_after.at_s - server_before.at_s
    server_cpu_s = server_after.cpu_s - server_before.cpu_s
    generator_cpu_s = generator_after.cpu_s - generator_before.cpu_s
    return {
        "wall_s": wall_s,
        "server_cpu_s": server_cpu_s,
        "server_cpu_pct": 100 * server_cpu_s / wall_s,
        "server_rss_bytes_before": server_before.rss_bytes,
        "server_rss_bytes": server_after.rss_bytes,
        "generator_cpu_s": generator_cpu_s,
        "generator_cpu_pct": 100 * generator_cpu_s / wall_s,
        "generator_rss_bytes": generator_after.rss_bytes,
        # Everything else that ran: other processes on this machine, interrupts and softirqs
        # (loopback networking is partly here). Near 0 means the two cores were ours.
        "other_cpu_pct": 100
        * (
            server_after.machine_busy_s
            - server_before.machine_busy_s
            - server_cpu_s
            - generator_cpu_s
        )
        / wall_s,
    }


FANOUT_COLUMNS = (
    ("rate/w", 7),
    ("sent/s", 8),
    ("deliv/s", 9),
    ("expected", 9),
    ("received", 9),
    ("loss%", 7),
    ("p50ms", 8),
    ("p95ms", 8),
    ("p99ms", 8),
    ("srvCPU%", 8),
    ("µs/deliv", 9),
    ("srvRSS_MB", 10),
    ("genCPU%", 8),
    ("othCPU%", 8),
    ("closed", 7),
)


def print_fanout_row(step: dict[str, Any], *, header: bool) -> None:
    if header:
        print(" ".join(name.rjust(width) for name, width in FANOUT_COLUMNS))
    latency = step["latency_ms"]
    loss = 100 * (1 - step["received"] / step["expected"]) if step["expected"] else 0.0

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    us = step["server_cpu_us_per_delivered"]
    cells = (
        f"{step['rate_per_writer']:g}",
        f"{step['sent_per_s']:.0f}",
        f"{step['delivered_per_s']:.0f}",
        str(step["expected"]),
        str(step["received"]),
        f"{loss:.2f}",
        ms(latency["p50"]),
        ms(latency["p95"]),
        ms(latency["p99"]),
        f"{step['server_cpu_pct']:.0f}",
        "-" if us is None else f"{us:.1f}",
        f"{step['server_rss_bytes'] / 2**20:.0f}",
        f"{step['generator_cpu_pct']:.0f}",
        f"{step['other_cpu_pct']:.0f}",
        str(sum(step["closed"].values())),
    )
    print(
        " ".join(
            cell.rjust(width) for cell, (_n, width) in zip(cells, FANOUT_COLUMNS, strict=True)
        ),
        flush=True,
    )


def idle(args: argparse.Namespace) -> dict[str, Any]:
    check_nofile(args.connections)
    per_room = [
        args.connections // args.rooms + (1 if r < args.connections % args.rooms else 0)
        for r in range(args.rooms)
    ]

    def make_config(server: Server) -> dict[str, Any]:
        rooms = [
            {
                "url": server.doc_url(f"idle{r}", "note"),
                "tokens": [server.token(f"user{r}-{c}", f"idle{r}") for c in range(size)],
            }
            for r, size in enumerate(per_room)
        ]
        return {
            "scenario": "idle",
            "rooms": rooms,
            "connect_concurrency": args.connect_concurrency,
            "connect_timeout_ms": args.connect_timeout_s * 1000,
        }

    with processes(args.store, make_config) as (server, generator):
        server_before, generator_before = server.sample(), generator.sample()
        ready = generator.next_event(args.connect_timeout_s * 2 + 30)
        if ready["failed"]:
            raise RunError(f"{ready['failed']} connections failed: {ready['errors']}")
        server_connected, generator_connected = server.sample(), generator.sample()
        time.sleep(args.hold_s)
        generator.send("hold")
        held = generator.next_event(30)
        server_held, generator_held = server.sample(), generator.sample()
        generator.send("quit")
        generator.next_event(30)
    connections = ready["connections"]
    result = {
        "scenario": "idle",
        "connections": connections,
        "rooms": args.rooms,
        "connect_s": ready["connect_s"],
        "awareness_complete": ready["awareness_complete"],
        "open_after_hold": held["open_connections"],
        "closed": held["closed"],
        "hold_s": args.hold_s,
        "server_rss_bytes_before": server_before.rss_bytes,
        "server_rss_bytes_connected": server_connected.rss_bytes,
        "server_rss_bytes_held": server_held.rss_bytes,
        "server_rss_bytes_per_connection": (server_held.rss_bytes - server_before.rss_bytes)
        / connections,
        "server_cpu_s_connecting": server_connected.cpu_s - server_before.cpu_s,
        "server_cpu_pct_idle": 100
        * (server_held.cpu_s - server_connected.cpu_s)
        / (server_held.at_s - server_connected.at_s),
        "generator_cpu_s_connecting": generator_connected.cpu_s - generator_before.cpu_s,
        "other_cpu_s_connecting": server_connected.machine_busy_s
        - server_before.machine_busy_s
        - (server_connected.cpu_s - server_before.cpu_s)
        - (generator_connected.cpu_s - generator_before.cpu_s),
        "generator_rss_bytes": generator_held.rss_bytes,
    }
    print_idle(result)
    return result


def print_idle(result: dict[str, Any]) -> None:
    mib = 2**20
    rows = (
        ("connections (rooms)", f"{result['connections']} ({result['rooms']})"),
        ("connect + sync + awareness", f"{result['connect_s']:.1f} s"),
        ("every peer saw every awareness state", str(result["awareness_complete"])),
        ("open after hold", f"{result['open_after_hold']} (closed: {result['closed']})"),
        ("server RSS before", f"{result['server_rss_bytes_before'] / mib:.1f} MiB"),
        ("server RSS connected", f"{result['server_rss_bytes_connected'] / mib:.1f} MiB"),
        ("server RSS after hold", f"{result['server_rss_bytes_held'] / mib:.1f} MiB"),
        (
            "server RSS per connection",
            f"{result['server_rss_bytes_per_connection'] / 1024:.1f} KiB",
        ),
        ("server CPU while connecting", f"{result['server_cpu_s_connecting']:.2f} s"),
        ("server CPU while idle", f"{result['server_cpu_pct_idle']:.1f} %"),
        ("generator CPU while connecting", f"{result['generator_cpu_s_connecting']:.2f} s"),
        ("other CPU while connecting", f"{result['other_cpu_s_connecting']:.2f} s"),
    )
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")


def bigdoc(args: argparse.Namespace) -> dict[str, Any]:
    if not TRACE_PATH.is_file():
        raise RunError(
            f"the editing trace {TRACE_PATH} is missing: bigdoc replays it "
            "(automerge-paper.json.gz from josephg/editing-traces)"
        )
    check_nofile(args.probes + 1)

    def make_config(server: Server) -> dict[str, Any]:
        return {
            "scenario": "bigdoc",
            "url": server.doc_url("bigdoc", "paper"),
            "tokens": [server.token(f"user{c}", "bigdoc") for c in range(args.probes + 1)],
            "trace": str(TRACE_PATH),
            "text_name": "paper",
            "patches_per_txn": args.patches_per_txn,
            "probe_gap_ms": args.probe_gap_s * 1000,
            "connect_timeout_ms": args.connect_timeout_s * 1000,
        }

    with processes(args.store, make_config) as (server, generator):
        server_start = server.sample()
        generator.next_event(args.connect_timeout_s + 60)  # ready: the loader is connected
        server_before, generator_before = server.sample(), generator.sample()
        generator.send("go")
        loaded = generator.next_event(args.connect_timeout_s * 3 + 120)
        server_loaded, generator_loaded = server.sample(), generator.sample()
        probes = []
        for _probe in range(args.probes):
            before_ns = cpu_ns(server.process.pid)
            generator.send("go")
            probe = generator.next_event(args.connect_timeout_s + args.probe_gap_s + 60)
            probe["server_cpu_ms"] = (cpu_ns(server.process.pid) - before_ns) / 1e6
            probes.append(probe)
        server_probed, generator_probed = server.sample(), generator.sample()
        generator.send("quit")
        generator.next_event(30)
    load = resources(server_before, server_loaded, generator_before, generator_loaded)
    join = resources(server_loaded, server_probed, generator_loaded, generator_probed)
    result = {
        "scenario": "bigdoc",
        "trace": str(TRACE_PATH),
        "patches_per_txn": args.patches_per_txn,
        "probe_gap_s": args.probe_gap_s,
        "loaded": loaded,
        "probes": probes,
        "server_rss_bytes_start": server_start.rss_bytes,
        "server_rss_bytes_before": server_before.rss_bytes,
        "server_rss_bytes_loaded": server_loaded.rss_bytes,
        "server_rss_bytes_after_probes": server_probed.rss_bytes,
        "load": load,
        "join": join,
        "server_cpu_ms_per_join": sum(p["server_cpu_ms"] for p in probes) / len(probes),
        "closed": probes[-1]["closed"],
    }
    print_bigdoc(result)
    return result


def print_bigdoc(result: dict[str, Any]) -> None:
    mib = 2**20
    loaded = result["loaded"]
    load = result["load"]
    join = result["join"]
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
            f"{load['generator_cpu_s']:.2f} s; othCPU {load['other_cpu_pct']:.0f} %",
        ),
        ("server RSS at start", f"{result['server_rss_bytes_start'] / mib:.1f} MiB"),
        ("server RSS, loader joined", f"{result['server_rss_bytes_before'] / mib:.1f} MiB"),
        ("server RSS, document loaded", f"{result['server_rss_bytes_loaded'] / mib:.1f} MiB"),
        ("server RSS after the probes", f"{result['server_rss_bytes_after_probes'] / mib:.1f} MiB"),
        (
            "server CPU per fresh join",
            f"{result['server_cpu_ms_per_join']:.1f} ms mean (schedstat, join + close); "
            f"othCPU {join['other_cpu_pct']:.0f} % over the probes",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    header = (
        "probe",
        "connect",
        "open->step2",
        "apply",
        "open->applied",
        "srvCPU",
        "step2 B",
        "text ok",
    )
    widths = (5, 9, 12, 8, 14, 8, 9, 7)
    print(" ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for index, probe in enumerate(result["probes"]):
        cells = (
            str(index + 1),
            f"{probe['connect_ms']:.1f}",
            f"{probe['open_to_received_ms']:.1f}",
            f"{probe['apply_ms']:.1f}",
            f"{probe['open_to_applied_ms']:.1f}",
            f"{probe['server_cpu_ms']:.1f}",
            str(probe["step2_message_bytes"]),
            str(probe["text_matches"]),
        )
        print(" ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)), flush=True)
    print("(times in ms; srvCPU: server on-CPU time during the probe, join and close)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="scenario", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", type=Path, help="write the raw results here")
    common.add_argument("--store", choices=("memory", "sqlite"), default="memory")
    common.add_argument("--connect-concurrency", type=int, default=100)
    common.add_argument("--connect-timeout-s", type=float, default=120)

    fan = sub.add_parser("fanout", parents=[common], help="R rooms x C clients, 1 writer per room")
    fan.add_argument("--rooms", type=int, default=100)
    fan.add_argument("--clients", type=int, default=10, help="clients per room, writer included")
    fan.add_argument("--rates", default="5,10,20,30,50", help="updates/s per writer, one per step")
    fan.add_argument("--step-s", type=float, default=10)
    fan.add_argument("--drain-s", type=float, default=5, help="wait for late deliveries")

    hot = sub.add_parser("hotroom", parents=[common], help="1 room x C clients, W writers")
    hot.add_argument("--rooms", type=int, default=1, help=argparse.SUPPRESS)
    hot.add_argument(
        "--clients", type=int, default=200, help="clients in the room, writers included"
    )
    hot.add_argument("--writers", type=int, default=5)
    hot.add_argument("--rates", default="10", help="updates/s per writer, one per step")
    hot.add_argument("--step-s", type=float, default=10)
    hot.add_argument("--drain-s", type=float, default=5, help="wait for late deliveries")

    big = sub.add_parser("bigdoc", parents=[common], help="replay a real trace, time fresh joins")
    big.add_argument("--probes", type=int, default=5, help="fresh clients, one after another")
    big.add_argument("--patches-per-txn", type=int, default=1000)
    big.add_argument("--probe-gap-s", type=float, default=0.5, help="pause between probes")

    idle_parser = sub.add_parser("idle", parents=[common], help="N idle synced connections")
    idle_parser.add_argument("--connections", type=int, default=5000)
    idle_parser.add_argument("--rooms", type=int, default=500)
    idle_parser.add_argument("--hold-s", type=float, default=5)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = " ".join(
        ["python", "loadtests/run.py", *(argv if argv is not None else sys.argv[1:])]
    )
    if args.scenario == "fanout" and (args.clients < 2 or args.rooms < 1):
        print("run.py: fanout needs at least 1 room and 2 clients per room", file=sys.stderr)
        return 2
    if args.scenario == "hotroom" and not 1 <= args.writers < args.clients:
        print("run.py: hotroom needs 1 <= writers < clients", file=sys.stderr)
        return 2
    if args.scenario == "bigdoc" and (args.probes < 1 or args.patches_per_txn < 1):
        print("run.py: bigdoc needs --probes >= 1 and --patches-per-txn >= 1", file=sys.stderr)
        return 2
    try:
        facts = machine_facts()
        print(
            f"{command}\n{facts['date']}  {facts['nproc']} CPUs  {facts['cpu_model']}  "
            f"load average {' '.join(facts['loadavg_at_start'])}"
        )
        scenarios = {"fanout": fanout, "hotroom": fanout, "idle": idle, "bigdoc": bigdoc}
        result = scenarios[args.scenario](args)
    except RunError as error:
        print(f"run.py: {error}", file=sys.stderr)
        return 1
    if args.json:
        args.json.write_text(json.dumps({"command": command, "machine": facts, **result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
