"""Storage: the `Database` interface (documents, notifications, members, revocations, the
notes catalog, version history, deadline reminders, email digests, webhooks), its backends,
and `create_store` to pick one."""

from __future__ import annotations

import re

from collab.errors import ConfigError
from collab.store.base import Store, StoredDocument
from collab.store.database import Database
from collab.store.memory import MemoryStore
from collab.store.postgres import DEFAULT_POOL_SIZE, PostgresStore
from collab.store.sqlite import SqliteStore

__all__ = [
    "DEFAULT_POOL_SIZE",
    "Database",
    "MemoryStore",
    "PostgresStore",
    "SqliteStore",
    "Store",
    "StoredDocument",
    "create_store",
]

ACCEPTED_URL_FORMS = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, "
    "postgresql://user@host:port/database or memory://"
)
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")


def create_store(database_url: str, *, pool_size: int = DEFAULT_POOL_SIZE) -> Database:
    """Return an unopened backend for `database_url`; raise `ConfigError` for any other URL.
    `pool_size`: the connections a PostgreSQL store may open.

    The URL is never echoed in messages: a database URL may carry a password.
    """
    scheme, separator, rest = database_url.partition("://")
    if not separator:
        raise _bad_url("it has no scheme")
    if scheme == "memory":
        if rest:
            raise _bad_url("memory:// takes nothing after the scheme")
        return MemoryStore()
    if scheme == "sqlite":
        # sqlite:///x keeps "x" (relative); sqlite:////x keeps "/x" (absolute).
        host, slash, path = rest.partition("/")
        if host or not slash:
            raise _bad_url("a sqlite URL has no host: use three slashes before the path")
        if not path or path.endswith("/"):
            raise _bad_url("a sqlite URL needs a file path after sqlite:///")
        return SqliteStore(path)
    if scheme in ("postgresql", "postgres"):
        # Passed to the driver untouched: it parses hosts, ports and options itself.
        # No idle connections to keep alive: while the database is down asyncpg would
        # otherwise reconnect them in the background and log a traceback each time.
        return PostgresStore(database_url, min_pool=0, max_pool=pool_size)
    if _SCHEME.fullmatch(scheme):
        raise _bad_url(f"unknown scheme {scheme!r}")
    raise _bad_url("it does not start with a scheme")


def _bad_url(reason: str) -> ConfigError:
    return ConfigError([f"COLLAB_DATABASE_URL: {reason}; accepted forms are {ACCEPTED_URL_FORMS}"])
