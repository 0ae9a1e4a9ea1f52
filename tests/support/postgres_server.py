"""A throwaway PostgreSQL cluster for tests: `initdb` into a temp dir, a postmaster on a free port.

PostgreSQL refuses to run as root. When the tests run as root, `initdb` and the clients run as
an unprivileged OS user (`postgres` if it exists, else `nobody`) through `runuser`, the server
drops to that user before it starts, and the temp dir is handed to that user.

The postmaster runs under a small supervisor (`_SUPERVISOR`), our child, instead of being
daemonized by `pg_ctl start`: a daemonized postmaster is re-parented to PID 1, which in a
container may reap it late or never, and a zombie postmaster still "owns" its data directory,
so a start after `kill()` would be refused. The supervisor is a child subreaper: it reaps the
postmaster and any backend orphaned by a kill, and exits once all of them are gone. Only the
processes this object started are ever signalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.support.waiting import scaled

POSTGRES_BIN_DIRS = (
    os.environ.get("COLLAB_TEST_PG_BINDIR", ""),
    "/usr/lib/postgresql/17/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/14/bin",
)
REQUIRED_BINARIES = ("initdb", "postgres", "createdb", "dropdb")
SUPERUSER = "postgres"
UNPRIVILEGED_USERS = ("postgres", "nobody")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
# Surviving an OS crash is pointless for a cluster deleted at the end of the run. Surviving
# `kill()` is not: commits still reach the OS (synchronous_commit stays on), only not the disk.
SERVER_SETTINGS = (
    "listen_addresses=127.0.0.1",
    "fsync=off",
    "full_page_writes=off",
    "max_connections=200",
)
# postmaster.pid: line 1 is the PID, line 8 the status ("ready" once it accepts connections).
_PIDFILE_STATUS_LINE = 7

# argv: uid gid program args... (uid -1: keep the current user). Runs `program` in a session
# of its own, reaps it and every orphan it leaves, exits with its status once none is left,
# and shuts the server down (SIGINT, a fast shutdown) if the test process disappears.
_SUPERVISOR = r"""
import ctypes, os, signal, sys, time, traceback
PR_SET_CHILD_SUBREAPER = 36
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
uid, gid, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
parent = os.getppid()
child = os.fork()
if child == 0:
    try:
        os.setsid()
        if uid >= 0:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        os.execv(argv[0], argv)
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(127)
code = None
while True:
    try:
        pid, status = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if pid == child:
        code = os.waitstatus_to_exitcode(status)
    if pid:
        continue
    if os.getppid() != parent:
        parent = os.getppid()
        if code is None:
            os.kill(child, signal.SIGINT)
    time.sleep(0.02)
code = code or 0
sys.exit(code if code >= 0 else 128 - code)
"""


def find_postgres_bindir() -> Path | None:
    """Return the first directory holding the server and client binaries, or None."""
    candidates = [Path(d) for d in POSTGRES_BIN_DIRS if d]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for directory in candidates:
        if all((directory / name).is_file() for name in REQUIRED_BINARIES):
            return directory
    return None


def unique_database_name() -> str:
    return f"test_{uuid.uuid4().hex[:16]}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServerError(RuntimeError):
    """The throwaway cluster could not be created, started or stopped."""


class PostgresServer:
    """One throwaway cluster: trust auth, UTF8, locale C, 127.0.0.1 only, socket in its dir.

    The lifecycle methods are async so tests can call them on their event loop; the blocking
    work runs in a thread, so the object is not tied to any loop (a session fixture can share
    it). Each has a `*_blocking` twin.
    """

    def __init__(self, bindir: Path | None = None) -> None:
        found = bindir or find_postgres_bindir()
        if found is None:
            raise PostgresServerError(
                f"PostgreSQL binaries ({', '.join(REQUIRED_BINARIES)}) not found"
            )
        self.bindir = found
        self.port = 0
        self.root: Path | None = None
        self._run_as = _unprivileged_user() if os.geteuid() == 0 else None
        self._supervisor: subprocess.Popen[bytes] | None = None
        self._postmaster_pid: int | None = None

    @property
    def data_dir(self) -> Path:
        return self._root() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._root() / "socket"

    @property
    def log_path(self) -> Path:
        return self._root() / "postgres.log"

    @property
    def postmaster_pid(self) -> int | None:
        return self._postmaster_pid

    @property
    def is_running(self) -> bool:
        return self._supervisor is not None and self._supervisor.poll() is None

    def dsn_for(self, database: str, *, password: str | None = None) -> str:
        """A DSN for `database` as the superuser; trust auth ignores any `password`."""
        credentials = SUPERUSER if password is None else f"{SUPERUSER}:{password}"
        return f"postgresql://{credentials}@127.0.0.1:{self.port}/{database}"

    @property
    def dsn(self) -> str:
        """The DSN of the `postgres` maintenance database."""
        return self.dsn_for("postgres")

    # --- lifecycle: async for tests on an event loop, blocking twins for session fixtures --

    async def start(self) -> None:
        """Create the cluster on first use, then start it (on the same port after a restart)."""
        await asyncio.to_thread(self.start_blocking)

    async def stop(self) -> None:
        """Fast shutdown (SIGINT): disconnect clients, roll back, stop. No-op if not running."""
        await asyncio.to_thread(self.stop_blocking)

    async def kill(self) -> None:
        """SIGKILL the postmaster, as in a crash; its backends exit on their own."""
        await asyncio.to_thread(self.kill_blocking)

    async def restart(self) -> None:
        """Stop (if running) and start again on the same port and data."""
        await asyncio.to_thread(self.restart_blocking)

    async def close(self) -> None:
        """Stop the cluster and delete its directory."""
        await asyncio.to_thread(self.close_blocking)

    def start_blocking(self) -> None:
        if self.root is None:
            self._init()
        if self.is_running:
            return
        # A port found free may be taken before the server binds it: retry on a new one, but
        # only the first time, since a restart must come back on the same port.
        attempts = 1 if self.port else 3
        for attempt in range(attempts):
            if not self.port or attempt:
                self.port = free_port()
            try:
                self._start_postmaster()
                return
            except PostgresServerError:
                if attempt == attempts - 1:
                    raise

    def stop_blocking(self) -> None:
        if self._postmaster_pid is not None and self.is_running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._postmaster_pid, signal.SIGINT)
        self._wait_stopped()

    def kill_blocking(self) -> None:
        if self._postmaster_pid is not None and self.is_running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._postmaster_pid, signal.SIGKILL)
        self._wait_stopped()

    def restart_blocking(self) -> None:
        self.stop_blocking()
        self.start_blocking()

    def close_blocking(self) -> None:
        try:
            try:
                self.stop_blocking()
            except PostgresServerError:
                self.kill_blocking()
        finally:
            if self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)
                self.root = None

    # --- databases -------------------------------------------------------------------------

    async def create_database(self, name: str | None = None) -> str:
        """Create an empty database (`name`, or a fresh unique one) and return its DSN."""
        return await asyncio.to_thread(self.create_database_blocking, name)

    async def drop_database(self, name: str) -> None:
        """Drop database `name`, disconnecting any client still on it."""
        await asyncio.to_thread(self.drop_database_blocking, name)

    def create_database_blocking(self, name: str | None = None) -> str:
        name = name or unique_database_name()
        self._client(
            "createdb", "--strategy=file_copy", "--template=template1", name, what="createdb"
        )
        return self.dsn_for(name)

    def drop_database_blocking(self, name: str) -> None:
        self._client("dropdb", "--if-exists", "--force", name, what="dropdb")

    # --- internals -------------------------------------------------------------------------

    def _root(self) -> Path:
        if self.root is None:
            raise PostgresServerError("the cluster has not been created yet")
        return self.root

    def _bin(self, name: str) -> str:
        return str(self.bindir / name)

    def _init(self) -> None:
        # Not under pytest's tmp_path: that tree is private to root, and the server's user
        # must reach its data directory.
        root = Path(tempfile.mkdtemp(prefix="collab-pg-"))
        self.root = root
        self.socket_dir.mkdir()
        if self._run_as is not None:
            user = pwd.getpwnam(self._run_as)
            for path in (root, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)
        command = [
            self._bin("initdb"),
            *("-D", str(self.data_dir), "-U", SUPERUSER, "-E", "UTF8"),
            *("--auth=trust", "--locale=C", "--no-sync"),
        ]
        if self._run_as is not None:
            command = ["runuser", "-u", self._run_as, "--", *command]
        # Run in the temp dir: the server's user may not be able to read the current one.
        result = subprocess.run(
            command, cwd=root, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
        )
        if result.returncode != 0:
            raise PostgresServerError(f"initdb exited with {result.returncode}: {result.stderr}")

    def _start_postmaster(self) -> None:
        uid, gid = -1, -1
        if self._run_as is not None:
            user = pwd.getpwnam(self._run_as)
            uid, gid = user.pw_uid, user.pw_gid
        command = [
            self._bin("postgres"),
            *("-D", str(self.data_dir), "-p", str(self.port), "-k", str(self.socket_dir)),
            *(argument for setting in SERVER_SETTINGS for argument in ("-c", setting)),
        ]
        with self.log_path.open("ab") as log:
            self._supervisor = subprocess.Popen(
                [sys.executable, "-c", _SUPERVISOR, str(uid), str(gid), *command],
                cwd=self._root(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + scaled(START_TIMEOUT_S)
        while (pid := self._ready_postmaster_pid()) is None:
            if not self.is_running:
                self._supervisor = None
                raise PostgresServerError(
                    f"postgres on port {self.port} exited while starting{self._log_tail()}"
                )
            if time.monotonic() > deadline:
                self.kill_blocking()
                raise PostgresServerError(
                    f"postgres on port {self.port} not ready in time{self._log_tail()}"
                )
            time.sleep(0.01)
        self._postmaster_pid = pid

    def _ready_postmaster_pid(self) -> int | None:
        """The PID in postmaster.pid once it says "ready", if that postmaster is ours."""
        assert self._supervisor is not None
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return None
        if len(lines) <= _PIDFILE_STATUS_LINE or lines[_PIDFILE_STATUS_LINE].strip() != "ready":
            return None
        pid = int(lines[0])
        # A file left by a killed postmaster also says "ready": only our supervisor's child
        # counts.
        return pid if _parent_pid(pid) == self._supervisor.pid else None

    def _wait_stopped(self) -> None:
        """Wait for the supervisor, hence the postmaster and every backend, to be gone."""
        supervisor, self._supervisor = self._supervisor, None
        postmaster_pid, self._postmaster_pid = self._postmaster_pid, None
        if supervisor is None:
            return
        try:
            supervisor.wait(scaled(STOP_TIMEOUT_S))
        except subprocess.TimeoutExpired:
            # Still ours: the supervisor has not reaped it, so the PID was not reused.
            if postmaster_pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(postmaster_pid, signal.SIGKILL)
            try:
                supervisor.wait(scaled(STOP_TIMEOUT_S))
            except subprocess.TimeoutExpired:
                supervisor.kill()
                supervisor.wait()
            raise PostgresServerError(
                f"postgres on port {self.port} did not stop in time{self._log_tail()}"
            ) from None

    def _client(self, program: str, *args: str, what: str) -> None:
        result = subprocess.run(
            [self._bin(program), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, *args],
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise PostgresServerError(f"{what} exited with {result.returncode}: {result.stderr}")

    def _log_tail(self) -> str:
        try:
            tail = self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""
        return f"\n--- {self.log_path} ---\n{tail}"


def _unprivileged_user() -> str:
    for name in UNPRIVILEGED_USERS:
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise PostgresServerError(
        "running as root and no unprivileged user to run PostgreSQL as "
        f"(tried {', '.join(UNPRIVILEGED_USERS)})"
    )


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name, in parentheses, may hold spaces: the fields follow its last ")".
    return int(stat.rpartition(")")[2].split()[1])
