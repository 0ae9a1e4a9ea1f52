"""A throwaway `redis-server` for tests: no persistence, 127.0.0.1 only, a free port, a temp dir.

Only the process this object started is ever signalled (by its PID, through `Popen`). The
lifecycle methods are async so tests can call them on their event loop; the blocking work runs
in a thread, so the object is not tied to any loop (a session fixture can share it).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.waiting import scaled

REDIS_SERVER_BINARY = Path("/usr/bin/redis-server")
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 20.0
PING_TIMEOUT_S = 0.5


def find_redis_server() -> Path | None:
    """`/usr/bin/redis-server`, else the one on PATH, else None."""
    if REDIS_SERVER_BINARY.is_file():
        return REDIS_SERVER_BINARY
    on_path = shutil.which("redis-server")
    return Path(on_path) if on_path else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServerError(RuntimeError):
    """The throwaway server could not be started or stopped."""


class RedisServer:
    """One `redis-server` process; `restart` brings it back on the same port, empty."""

    def __init__(self, binary: Path | None = None) -> None:
        found = binary or find_redis_server()
        if found is None:
            raise RedisServerError("redis-server not found")
        self.binary = found
        self.port = 0
        self.root: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RedisServerError("the server has not been started yet")
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        if self.root is None:
            raise RedisServerError("the server has not been started yet")
        return self.root / "redis.log"

    async def start(self) -> None:
        """Start (on the port of the previous run, if any) and wait until it answers PING."""
        await asyncio.to_thread(self.start_blocking)

    async def stop(self) -> None:
        """SIGTERM and wait for the exit. No-op if not running."""
        await asyncio.to_thread(self._terminate, kill=False)

    async def kill(self) -> None:
        """SIGKILL, as in a crash, and reap it."""
        await asyncio.to_thread(self._terminate, kill=True)

    async def restart(self) -> None:
        """Stop if running, then start on the same port (with no data: nothing persists)."""
        await self.stop()
        await self.start()

    async def close(self) -> None:
        await asyncio.to_thread(self.close_blocking)

    def start_blocking(self) -> None:
        if self.is_running:
            return
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="collab-redis-"))
        # A port found free may be taken before the server binds it: retry on a new one, but
        # only on the first start, since a restart must come back on the same port.
        attempts = 1 if self.port else 3
        for attempt in range(attempts):
            if not self.port or attempt:
                self.port = free_port()
            try:
                self._spawn()
                return
            except RedisServerError:
                if attempt == attempts - 1:
                    raise

    def close_blocking(self) -> None:
        """Stop the server (SIGKILL if SIGTERM is not enough) and delete its directory."""
        try:
            try:
                self._terminate(kill=False)
            except RedisServerError:
                self._terminate(kill=True)
        finally:
            if self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)
                self.root = None

    def _spawn(self) -> None:
        assert self.root is not None
        command = [
            str(self.binary),
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root)),
            *("--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", ""),
        ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + scaled(START_TIMEOUT_S)
        while not self._answers_ping():
            if not self.is_running:
                self._process = None
                raise RedisServerError(
                    f"redis-server on port {self.port} exited while starting{self._log_tail()}"
                )
            if time.monotonic() > deadline:
                self._terminate(kill=True)
                raise RedisServerError(
                    f"redis-server on port {self.port} not ready in time{self._log_tail()}"
                )
            time.sleep(0.01)

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=PING_TIMEOUT_S) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def _terminate(self, *, kill: bool) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            # Popen never signals a PID it has already reaped, so this is our process.
            if kill:
                process.kill()
            else:
                process.terminate()
        try:
            process.wait(scaled(STOP_TIMEOUT_S))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise RedisServerError(
                f"redis-server on port {self.port} did not stop in time{self._log_tail()}"
            ) from None

    def _log_tail(self) -> str:
        try:
            tail = self.log_path.read_text(errors="replace")[-2000:]
        except (OSError, RedisServerError):
            return ""
        return f"\n--- {self.log_path} ---\n{tail}"
