"""The services collab runs on in a scenario: its store (memory, SQLite, a throwaway PostgreSQL)
and a throwaway Redis. Both services come from tests/support, pinned to the server's CPU.

They listen on free ports on 127.0.0.1: the system's own PostgreSQL (5432) and Redis (6379)
are never used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import RunError
from harness.procs import SERVER_CPU, Usage, pin_tree, tree_cpu_ns, tree_usage, usage
from tests.support.postgres_server import (
    PostgresServer,
    PostgresServerError,
    find_postgres_bindir,
)
from tests.support.redis_server import RedisServer, RedisServerError, find_redis_server

STORES = ("memory", "sqlite", "postgres")
SYSTEM_PORTS = (5432, 6379)
DATABASE_NAME = "loadtest"


class PostgresService:
    """A throwaway PostgreSQL cluster (`initdb` in a temp dir, free port, fsync off) with one
    empty database; collab creates its schema when it opens the store."""

    label = "PostgreSQL"

    def __init__(self) -> None:
        if find_postgres_bindir() is None:
            raise RunError(
                "--store postgres needs the PostgreSQL server binaries (initdb, postgres, "
                "createdb, dropdb): apt-get install postgresql, or set COLLAB_TEST_PG_BINDIR"
            )
        try:
            self.server = PostgresServer()
        except PostgresServerError as error:
            raise RunError(f"cannot run the throwaway PostgreSQL: {error}") from None
        try:
            self.server.start_blocking()
            if self.server.port in SYSTEM_PORTS or self.server.postmaster_pid is None:
                raise RunError("the throwaway PostgreSQL did not start on a free port")
            # Backends forked later inherit the postmaster's CPU.
            pin_tree(self.server.postmaster_pid, SERVER_CPU)
            self.database_url = self.server.create_database_blocking(DATABASE_NAME)
        except (PostgresServerError, RunError) as error:
            self.server.close_blocking()
            raise RunError(f"the throwaway PostgreSQL failed: {error}") from None

    @property
    def pid(self) -> int:
        assert self.server.postmaster_pid is not None
        return self.server.postmaster_pid

    def usage(self) -> Usage:
        """The postmaster and all its processes, backends that exited included."""
        if not self.server.is_running:
            raise RunError(f"PostgreSQL exited: {self.log_tail()}")
        return tree_usage(self.pid)

    def cpu_ns(self) -> int:
        return tree_cpu_ns(self.pid)

    def log_tail(self) -> str:
        try:
            return self.server.log_path.read_text(errors="replace")[-2000:]
        except Exception:  # the cluster may be gone already
            return ""

    def stop(self) -> None:
        self.server.close_blocking()


class RedisService:
    """A throwaway `redis-server` (no persistence, free port)."""

    label = "Redis"

    def __init__(self) -> None:
        if find_redis_server() is None:
            raise RunError("crossinstance needs redis-server: apt-get install redis-server")
        self.server = RedisServer()
        try:
            self.server.start_blocking()
        except RedisServerError as error:
            raise RunError(f"the throwaway Redis failed: {error}") from None
        if self.server.port in SYSTEM_PORTS or self.server.pid is None:
            self.server.close_blocking()
            raise RunError("the throwaway Redis did not start on a free port")
        pin_tree(self.server.pid, SERVER_CPU)
        self.url = self.server.url

    def usage(self) -> Usage:
        pid = self.server.pid
        if pid is None or not self.server.is_running:
            raise RunError(f"Redis exited: {self.log_tail()}")
        return usage(pid)

    def log_tail(self) -> str:
        try:
            return self.server.log_path.read_text(errors="replace")[-2000:]
        except Exception:
            return ""

    def stop(self) -> None:
        self.server.close_blocking()


@dataclass(frozen=True)
class Store:
    """Where collab keeps documents in this run; `postgres` is set for the PostgreSQL store."""

    kind: str
    database_url: str
    postgres: PostgresService | None = None


def database_url(kind: str, workdir: Path) -> str:
    """The URL of an embedded store (memory, SQLite in the run's temp dir)."""
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'load.db'}"
    raise ValueError(kind)
