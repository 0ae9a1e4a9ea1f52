"""One attack against a fresh server: start it, connect the probe, let the attacker process
go, measure until the attack ends plus `SETTLE_S`, then read what the server stored.

Everything started here is in the run's `Stack`: the server and the attacker process are
stopped by their own PIDs whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from harness.attack_probe import PROBE_NOTE, PROBE_WORKSPACE, Probe
from harness.attack_server import (
    SAMPLE_INTERVAL_S,
    AttackedServer,
    Sampler,
    fetch_snapshot,
    inspect_snapshot,
    peak_rss_bytes,
    upgrade_status,
)
from harness.errors import RunError
from harness.paths import LOADTESTS_DIR
from harness.procs import GENERATOR_CPU, pinned, pump_lines, raise_nofile_limit
from harness.stack import Stack

ATTACKER = "mallory"
AUTHOR = "author"  # d4: who wrote what the attacker re-sends
ATTACK_WORKSPACE = "atk"
ATTACKER_NICE = 10
WARM_UP_S = 1.0
SETTLE_S = 2.0
RESULT_MARGIN_S = 30.0
STOP_TIMEOUT_S = 10.0
WEBSOCKET_ATTACKS = frozenset({"d1", "d2", "d3", "d4", "d4cap", "d9"})


class AttackerProcess:
    """`python -m harness.attacker CONFIG`, niced and pinned beside the probe (the server
    has CPU 0 to itself); talks over stdio: `ready`, `go`, `result <json>`."""

    label = "attacker"

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        config_path = workdir / f"attack-{config['attack']}.json"
        config_path.write_text(json.dumps(config))
        self.log_path = workdir / "attacker.log"
        argv = ["nice", "-n", str(ATTACKER_NICE), sys.executable, "-m", "harness.attacker"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                pinned(GENERATOR_CPU, [*argv, str(config_path)]),
                cwd=LOADTESTS_DIR,
                env=os.environ | {"PYTHONPATH": str(LOADTESTS_DIR)},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                preexec_fn=raise_nofile_limit,
            )
        self._lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        threading.Thread(
            target=pump_lines, args=(self.process.stdout, self._lines.put), daemon=True
        ).start()

    def _line(self, timeout_s: float, what: str) -> str:
        try:
            return self._lines.get(timeout=timeout_s).rstrip("\n")
        except queue.Empty:
            raise RunError(f"the attacker gave no {what} within {timeout_s:.0f} s") from None

    def wait_ready(self, timeout_s: float) -> None:
        line = self._line(timeout_s, "ready line")
        if line.startswith("result "):
            raise RunError(f"the attacker could not prepare: {line[7:]}")
        if line != "ready":
            raise RunError(f"the attacker said {line!r} instead of ready")

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def result(self, timeout_s: float) -> dict[str, Any]:
        line = self._line(timeout_s, "result")
        if not line.startswith("result "):
            raise RunError(f"the attacker said {line!r} instead of its result")
        result: dict[str, Any] = json.loads(line[7:])
        return result

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def attacker_config(args: argparse.Namespace, name: str, server: AttackedServer) -> dict[str, Any]:
    return {
        "attack": name,
        "port": server.port,
        "http": server.http,
        "url": server.doc_url(ATTACKER, ATTACK_WORKSPACE, name),
        "author_url": server.doc_url(AUTHOR, ATTACK_WORKSPACE, name),
        "token": server.token(ATTACKER, ATTACK_WORKSPACE),
        "workspace": ATTACK_WORKSPACE,
        "note": name,
        "attack_s": args.attack_s,
        "prepare_timeout_s": args.prepare_timeout_s,
        "d1_inserts": args.d1_inserts,
        "d4_mib": args.d4_mib,
        "d4_rate_per_s": args.d4_rate_per_s,
        "d4_resends": args.d4_resends,
        "d5_requests": args.d5_requests,
        "d5_open_per_s": args.d5_open_per_s,
        "d9_sockets": args.d9_sockets,
        "d9_messages": args.d9_messages,
    }


def server_env(args: argparse.Namespace, name: str) -> dict[str, str]:
    """The server's extra settings for this attack: `--server-env`, and for d4cap a document
    cap that the seeded document is within one re-send of."""
    env = dict(args.server_env)
    if name == "d4cap":
        env["COLLAB_MAX_DOCUMENT_BYTES"] = str(int(args.d4cap_max_document_mib * 2**20))
    return env


def run_attack(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """One attack on a fresh server; returns everything measured. Raises `RunError`."""
    with Stack() as stack:
        env = server_env(args, name)
        server = stack.add(
            AttackedServer(
                stack.workdir,
                args.server_dir,
                extra_env=env,
                nofile=args.d5_nofile if name == "d5" and args.d5_nofile else None,
            )
        )
        attacker = stack.add(AttackerProcess(stack.workdir, attacker_config(args, name, server)))
        attacker.wait_ready(args.prepare_timeout_s + 10)
        result = asyncio.run(_measure(args, name, server, attacker))
        result["server_log_tail"] = server.log_tail()[-1500:]
    return result


async def _measure(
    args: argparse.Namespace, name: str, server: AttackedServer, attacker: AttackerProcess
) -> dict[str, Any]:
    probe = Probe(
        server.http,
        server.doc_url("probe-writer", PROBE_WORKSPACE, PROBE_NOTE),
        server.doc_url("probe-reader", PROBE_WORKSPACE, PROBE_NOTE),
    )
    try:
        await probe.open()
        await probe.warm_up(WARM_UP_S)
        sampler = Sampler(server.pid)
        sampler.start()
        stop = asyncio.Event()
        window = asyncio.create_task(probe.run_window(stop))
        before, main_before = server.tree_usage(), server.usage()
        started = time.monotonic()
        attacker.go()
        outcome = await asyncio.to_thread(attacker.result, args.attack_s + RESULT_MARGIN_S)
        attack_s = time.monotonic() - started
        await asyncio.sleep(SETTLE_S)
        after, main_after = server.tree_usage(), server.usage()
        wall_s = time.monotonic() - started
        stop.set()
        probe_numbers = await window
        samples = sampler.stop()
    finally:
        await probe.close()
    stored = inspect_snapshot(await fetch_snapshot(server, ATTACK_WORKSPACE, name))
    rejoin = None
    if name in WEBSOCKET_ATTACKS or name == "d1rest":
        rejoin = await upgrade_status(server, server.doc_url(ATTACKER, ATTACK_WORKSPACE, name))
    return {
        "attack": name,
        "server_env": server_env(args, name),
        "attacker": outcome,
        "attack_s": attack_s,
        "window_s": wall_s,
        "server_cpu_s": main_after.cpu_s - main_before.cpu_s,
        "server_tree_cpu_s": after.cpu_s - before.cpu_s,
        "server_busy_pct": 100 * (main_after.cpu_s - main_before.cpu_s) / wall_s,
        "server_peak_rss_bytes": peak_rss_bytes(server.pid),
        "server_tree_max_rss_bytes": samples.max_rss_bytes,
        "server_open_fds_max": samples.max_open_fds,
        "server_open_fds_end": samples.last_open_fds,
        "server_open_fds_every_s": samples.fd_series[:: round(1 / SAMPLE_INTERVAL_S)],
        "server_nofile_limit": server.nofile,
        "probe": probe_numbers,
        "stored": stored,
        "attacker_rejoin_status": rejoin,
    }
