"""The servers a scenario can run against, each a pinned child process on a free port.

`collab` is the server under test; `node` (@y/websocket-server, documents in memory: its
default), `node-leveldb` (the same with its y-leveldb persistence, its durable setup),
`pycrdt` (pycrdt-websocket) and `relay` (aiohttp forwarding frames, no CRDT) are baselines
driven by the same generator.
Each target builds the full URL of every client: collab's carry a token, the baselines take
none and use the URL path as the room.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Protocol

from collab.auth.tokens import Role, mint_token
from collab.settings import Secret, Settings
from harness.errors import RunError
from harness.paths import (
    BASELINES_DIR,
    BASELINES_VENV_PYTHON,
    LOADTESTS_DIR,
    NODE_MODULES,
    REPO_ROOT,
    SETUP_HINT,
)
from harness.procs import ChildProcess, Usage

TARGETS = ("collab", "node", "node-leveldb", "pycrdt", "relay")
COLLAB_BANNER = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")
BASELINE_BANNER = re.compile(r"^listening on (\d+)$")
TOKEN_TTL_S = 3600


class Target(Protocol):
    """A running server: where clients connect, and how much it uses."""

    name: str
    port: int

    @property
    def pid(self) -> int: ...

    def client_url(self, workspace_id: str, note_id: str, sub: str) -> str: ...

    def usage(self) -> Usage: ...

    def log_tail(self) -> str: ...

    def stop(self) -> int | None: ...


class CollabServer(ChildProcess):
    """`python -m collab serve` with the given database (and Redis, if any); `settings` are
    more `COLLAB_*` variables."""

    name = "collab"

    def __init__(
        self,
        workdir: Path,
        database_url: str,
        *,
        secret: str | None = None,
        redis_url: str | None = None,
        port: int = 0,
        log_name: str = "server.log",
        label: str = "collab serve",
        settings: dict[str, str] | None = None,
    ) -> None:
        self.secret = secret or secrets.token_urlsafe(48)
        self.database_url = database_url
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLLAB_") and k != "PORT"}
        env |= {
            "COLLAB_PORT": str(port),
            "COLLAB_HOST": "127.0.0.1",
            "COLLAB_DATABASE_URL": database_url,
            "COLLAB_JWT_SECRET": self.secret,
            "COLLAB_LOG_LEVEL": "WARNING",
        }
        if redis_url is not None:
            env["COLLAB_REDIS_URL"] = redis_url
        env |= settings or {}
        super().__init__(
            label,
            [sys.executable, "-m", "collab", "serve"],
            ready=COLLAB_BANNER,
            log_path=workdir / log_name,
            cwd=REPO_ROOT,
            env=env,
        )
        self.settings = Settings(jwt_secret=Secret(self.secret))

    def client_url(self, workspace_id: str, note_id: str, sub: str) -> str:
        token = mint_token(
            self.settings, sub=sub, workspaces={workspace_id: Role.EDITOR}, ttl_s=TOKEN_TTL_S
        )
        return f"ws://127.0.0.1:{self.port}/ws/docs/{workspace_id}/{note_id}?token={token}"


class BaselineServer(ChildProcess):
    """A baseline launcher from loadtests/baselines/, which prints "listening on PORT"."""

    def __init__(self, name: str, argv: list[str], workdir: Path) -> None:
        self.name = name
        super().__init__(
            f"the {name} baseline",
            argv,
            ready=BASELINE_BANNER,
            log_path=workdir / f"{name}-server.log",
            cwd=LOADTESTS_DIR,
        )

    def client_url(self, workspace_id: str, note_id: str, sub: str) -> str:
        return f"ws://127.0.0.1:{self.port}/{workspace_id}/{note_id}"


def check_baseline(name: str) -> None:
    """Raises `RunError` naming loadtests/setup.sh when a baseline's dependencies are missing."""
    if name in ("node", "node-leveldb"):
        if not (NODE_MODULES / "@y/websocket-server").is_dir():
            raise RunError(f"the {name} baseline needs @y/websocket-server: {SETUP_HINT}")
        if name == "node-leveldb" and not (NODE_MODULES / "y-leveldb").is_dir():
            raise RunError(f"the node-leveldb baseline needs y-leveldb: {SETUP_HINT}")
    elif name == "pycrdt":
        if not BASELINES_VENV_PYTHON.is_file():
            raise RunError(
                f"the pycrdt baseline needs loadtests/.venv-baselines (pycrdt-websocket, "
                f"uvicorn): {SETUP_HINT}"
            )
        probe = subprocess.run(
            [str(BASELINES_VENV_PYTHON), "-c", "import pycrdt.websocket, uvicorn, uvloop"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode != 0:
            raise RunError(
                f"loadtests/.venv-baselines is incomplete ({probe.stderr.strip().splitlines()[-1]}"
                f"): {SETUP_HINT}"
            )
    elif name == "relay":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            raise RunError(
                "the relay baseline needs uvloop in this Python: pip install -e '.[test]'"
            ) from None


def start_baseline(name: str, workdir: Path) -> BaselineServer:
    check_baseline(name)
    argv = {
        "node": ["node", str(BASELINES_DIR / "node-server.mjs"), "0"],
        "node-leveldb": [
            "node",
            str(BASELINES_DIR / "node-server.mjs"),
            "0",
            "--persist",
            str(workdir / "node-leveldb"),
        ],
        "pycrdt": [str(BASELINES_VENV_PYTHON), str(BASELINES_DIR / "pycrdt_server.py"), "0"],
        "relay": [sys.executable, str(BASELINES_DIR / "relay.py"), "0"],
    }[name]
    return BaselineServer(name, argv, workdir)
