"""The server an attack runs against: `python -m collab serve` importing the collab package of
another checkout (`--server-dir`), on a SQLite file in the run's temp dir, pinned like every
scenario's server; its tokens; a sampler of its memory and open files; and the REST snapshot
that tells whether refused content was stored.
"""

from __future__ import annotations

import os
import resource
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from pycrdt import Doc, Text

from harness.errors import RunError
from harness.procs import PAGE_BYTES, ChildProcess, Usage, descendants, tree_usage
from harness.targets import COLLAB_BANNER
from harness.yframes import state_vector_clocks

TOKEN_TTL_S = 3600
SAMPLE_INTERVAL_S = 0.1
SNAPSHOT_TIMEOUT_S = 60.0
BINARY = "application/octet-stream"


class AttackedServer(ChildProcess):
    """collab from `server_dir` (its own `collab/` first on the path, whatever this venv has
    installed), with a fresh secret and SQLite store; `nofile` lowers its open-files limit."""

    name = "collab"

    def __init__(
        self,
        workdir: Path,
        server_dir: Path,
        *,
        extra_env: dict[str, str] | None = None,
        nofile: int | None = None,
    ) -> None:
        if not (server_dir / "collab" / "__init__.py").is_file():
            raise RunError(f"--server-dir {server_dir}: no collab/ package there")
        self.secret = secrets.token_urlsafe(48)
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLLAB_") and k != "PORT"}
        env |= {
            "PYTHONPATH": str(server_dir),
            "COLLAB_PORT": "0",
            "COLLAB_HOST": "127.0.0.1",
            "COLLAB_DATABASE_URL": f"sqlite:///{workdir / 'attack.db'}",
            "COLLAB_JWT_SECRET": self.secret,
            "COLLAB_LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
        super().__init__(
            "collab serve",
            [sys.executable, "-m", "collab", "serve"],
            ready=COLLAB_BANNER,
            log_path=workdir / "server.log",
            cwd=server_dir,
            env=env,
        )
        _soft, hard = resource.prlimit(self.pid, resource.RLIMIT_NOFILE)
        if nofile is not None:
            resource.prlimit(self.pid, resource.RLIMIT_NOFILE, (min(nofile, hard), hard))
        self.nofile = resource.prlimit(self.pid, resource.RLIMIT_NOFILE)[0]

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, sub: str, workspace_id: str, role: str = "editor") -> str:
        now = int(time.time())
        claims = {"sub": sub, "workspaces": {workspace_id: role}, "iat": now}
        claims["exp"] = now + TOKEN_TTL_S
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def doc_url(self, sub: str, workspace_id: str, note_id: str) -> str:
        token = self.token(sub, workspace_id)
        return f"ws://127.0.0.1:{self.port}/ws/docs/{workspace_id}/{note_id}?token={token}"

    def tree_usage(self) -> Usage:
        """CPU of the server and its worker processes (exited ones included) and their RSS."""
        self.usage()  # raises RunError if the server died
        return tree_usage(self.pid)


@dataclass
class Samples:
    """The server's largest RSS (all its processes) and open files seen, and the last count."""

    max_rss_bytes: int = 0
    max_open_fds: int = 0
    last_open_fds: int = 0
    fd_series: list[tuple[float, int]] = field(default_factory=list)


class Sampler:
    """Samples the server every `SAMPLE_INTERVAL_S` in a thread (not on the probe's loop)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples = Samples()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started_at = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> Samples:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.samples

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            try:
                self._sample()
            except (FileNotFoundError, ProcessLookupError):
                return

    def _sample(self) -> None:
        rss = 0
        for member in _tree(self.pid):
            try:
                fields = Path(f"/proc/{member}/statm").read_text().split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            rss += int(fields[1]) * PAGE_BYTES
        fds = len(os.listdir(f"/proc/{self.pid}/fd"))
        samples = self.samples
        samples.max_rss_bytes = max(samples.max_rss_bytes, rss)
        samples.max_open_fds = max(samples.max_open_fds, fds)
        samples.last_open_fds = fds
        samples.fd_series.append((round(time.monotonic() - self._started_at, 2), fds))


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants, from /proc/PID/task/TID/children where the kernel has it
    (far cheaper than reading every process's stat ten times a second)."""
    if not Path(f"/proc/{pid}/task/{pid}/children").exists():
        return list(descendants(pid))
    members, stack = [], [pid]
    while stack:
        current = stack.pop()
        members.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                stack.extend(int(child) for child in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return members


def peak_rss_bytes(pid: int) -> int | None:
    """VmHWM: the largest RSS the server's main process had in its life."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


async def fetch_snapshot(server: AttackedServer, workspace_id: str, note_id: str) -> bytes:
    """The document as the REST API serves it (a Yjs v1 update). Raises `RunError`."""
    headers = {
        "Authorization": f"Bearer {server.token('auditor', workspace_id, 'viewer')}",
        "Accept": BINARY,
    }
    url = f"{server.http}/api/v1/docs/{workspace_id}/{note_id}"
    timeout = aiohttp.ClientTimeout(total=SNAPSHOT_TIMEOUT_S)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.get(url, headers=headers) as response,
        ):
            body = await response.read()
            if response.status != 200:
                raise RunError(f"snapshot of {workspace_id}/{note_id}: HTTP {response.status}")
            return body
    except (aiohttp.ClientError, TimeoutError) as error:
        raise RunError(f"snapshot of {workspace_id}/{note_id}: {error!r}") from None


def inspect_snapshot(snapshot: bytes, text_name: str = "t") -> dict[str, Any]:
    """What the stored document holds: its size, client clocks and text."""
    doc: Doc[Any] = Doc()
    doc.apply_update(snapshot)
    text = str(doc.get(text_name, type=Text))
    return {
        "bytes": len(snapshot),
        "clocks": state_vector_clocks(doc.get_state()),
        "text_length": len(text),
        "text_head": text[:40],
    }


async def upgrade_status(server: AttackedServer, url: str) -> int | str:
    """The HTTP status a new WebSocket of this user gets now: 101, or 429 when throttled."""
    timeout = aiohttp.ClientTimeout(total=10)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.ws_connect(url) as ws,
        ):
            await ws.close()
            return 101
    except aiohttp.WSServerHandshakeError as error:
        return error.status
    except (aiohttp.ClientError, TimeoutError) as error:
        return type(error).__name__
