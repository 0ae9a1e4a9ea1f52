"""Everything one run starts, in one place, stopped in reverse order whatever happens."""

from __future__ import annotations

import signal
import sys
import tempfile
import types
from pathlib import Path
from typing import Any, Protocol, TypeVar

from harness.errors import RunError
from harness.generator import Generator
from harness.services import PostgresService, RedisService, Store, database_url
from harness.targets import CollabServer, Target, start_baseline


class Stoppable(Protocol):
    label: str

    def stop(self) -> Any: ...

    def log_tail(self) -> str: ...


S = TypeVar("S", bound=Stoppable)


class Stack:
    """A temp dir and the processes started in it. On exit (normal, an error, Ctrl-C or
    SIGTERM) each is stopped, last started first, by its own PID; when the run failed, the end
    of each one's log goes to stderr."""

    def __init__(self) -> None:
        self._members: list[Stoppable] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="collab-load-")
        self.workdir = Path(self._tmp.name)

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        if exc_type is RunError:
            for member in self._members:
                tail = member.log_tail().strip()
                if tail:
                    print(f"--- {member.label} (log tail) ---\n{tail}", file=sys.stderr)
        # A second Ctrl-C must not interrupt the clean-up half-way.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for member in reversed(self._members):
                try:
                    member.stop()
                except Exception as error:  # stop the others anyway
                    print(f"warning: stopping {member.label}: {error}", file=sys.stderr)
            self._members.clear()
            self._tmp.cleanup()
        finally:
            signal.signal(signal.SIGINT, previous)

    def add(self, member: S) -> S:
        self._members.append(member)
        return member

    def remove(self, member: Stoppable) -> None:
        """Forget a member the scenario stopped itself."""
        self._members.remove(member)

    def store(self, kind: str) -> Store:
        if kind == "postgres":
            postgres = self.add(PostgresService())
            return Store(kind, postgres.database_url, postgres)
        return Store(kind, database_url(kind, self.workdir))

    def redis(self) -> RedisService:
        return self.add(RedisService())

    def target(
        self, name: str, store: Store | None = None, settings: dict[str, str] | None = None
    ) -> Target:
        """Start `name`: collab on `store` (memory if None) with more `COLLAB_*` `settings`,
        or a baseline (which has neither)."""
        if name == "collab":
            url = store.database_url if store is not None else "memory://"
            return self.add(CollabServer(self.workdir, url, settings=settings))
        return self.add(start_baseline(name, self.workdir))

    def collab(self, database_url: str, **options: Any) -> CollabServer:
        return self.add(CollabServer(self.workdir, database_url, **options))

    def generator(self, config: dict[str, Any], *, name: str = "generator") -> Generator:
        return self.add(Generator(self.workdir, config, name=name))


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so a run killed politely still stops its children."""

    def handler(_signum: int, _frame: types.FrameType | None) -> None:
        raise SystemExit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, handler)
