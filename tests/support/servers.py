"""Real `collab serve` processes for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from pathlib import Path

from tests.support.waiting import scaled

_BANNER = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


def clean_environ() -> dict[str, str]:
    """This process's environment without COLLAB_* and PORT, so a developer's shell settings
    never leak into the servers under test."""
    return {k: v for k, v in os.environ.items() if not k.startswith("COLLAB_") and k != "PORT"}


class ServerProcess:
    """`python -m collab serve` on a free port, with its own environment and log file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.port = 0
        self.process: asyncio.subprocess.Process | None = None
        self.stdout_lines: list[str] = []

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        env = {**clean_environ(), "COLLAB_PORT": "0", **self.env}
        log = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "collab",
            "serve",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
        log.close()
        assert self.process.stdout is not None
        lines = []
        while True:
            line = await asyncio.wait_for(self.process.stdout.readline(), scaled(20))
            if not line:
                raise RuntimeError(f"collab serve exited: {self.log_path.read_text()[-2000:]}")
            lines.append(line.decode())
            match = _BANNER.search(line.decode())
            if match:
                self.port = int(match.group(1))
                break
        self.stdout_lines = lines
        # The rest of the banner follows at once; keep stdout drained so it never blocks.
        self._drain = asyncio.get_running_loop().create_task(self._drain_stdout())

    @property
    def banner(self) -> str:
        return "".join(self.stdout_lines)

    async def _drain_stdout(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.stdout_lines.append(line.decode())

    async def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send `signum` and return the exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signum)
        return await asyncio.wait_for(self.process.wait(), scaled(timeout))

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            with contextlib.suppress(ProcessLookupError):
                await self.process.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")
