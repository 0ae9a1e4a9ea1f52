"""The driver's side of the Node generator (`loadtests/gen.mjs`): config in, events out."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from pathlib import Path
from typing import Any

from harness.errors import RunError
from harness.paths import LOADTESTS_DIR, NODE_MODULES, SETUP_HINT
from harness.procs import GENERATOR_CPU, Usage, pinned, pump_lines, raise_nofile_limit, usage

QUIT_TIMEOUT_S = 10.0


class Generator:
    """`node loadtests/gen.mjs CONFIG` (or another `script` there, e.g. gen_storm.mjs), pinned
    to GENERATOR_CPU; JSON events on stdout, one command per line on stdin ("go", "hold",
    "quit"). It exits when its stdin closes."""

    label = "the generator"

    def __init__(
        self,
        workdir: Path,
        config: dict[str, Any],
        *,
        name: str = "generator",
        script: str = "gen.mjs",
        node_options: tuple[str, ...] = (),
    ) -> None:
        if not NODE_MODULES.is_dir():
            raise RunError(f"loadtests/node_modules is missing: {SETUP_HINT}")
        config_path = workdir / f"{name}.json"
        config_path.write_text(json.dumps(config))
        self.log_path = workdir / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                pinned(
                    GENERATOR_CPU,
                    ["node", *node_options, str(LOADTESTS_DIR / script), str(config_path)],
                ),
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
            target=pump_lines, args=(self.process.stdout, self.events.put), daemon=True
        ).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def next_event(self, timeout_s: float) -> dict[str, Any]:
        """The next event. Raises `RunError` on timeout, on an `error` event or on exit."""
        try:
            line = self.events.get(timeout=timeout_s)
        except queue.Empty:
            if self.process.poll() is not None:
                raise RunError(f"the generator exited ({self.process.returncode})") from None
            raise RunError(f"the generator sent nothing for {timeout_s:.0f} s") from None
        event: dict[str, Any] = json.loads(line)
        if event["event"] == "error":
            raise RunError(f"the generator failed: {event['message']}")
        return event

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def quit(self) -> None:
        """Close every connection and wait for the generator to say it is done."""
        self.send("quit")
        self.next_event(30)

    def usage(self) -> Usage:
        return usage(self.process.pid)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            try:
                self.process.stdin.close()
            except BrokenPipeError:
                pass
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=QUIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
