"""Numbered SQL migrations, shipped as package data under `collab.migrations/<dialect>/`.

Every file in a dialect directory must be named `NNNN_name.sql` (four digits, then a lowercase
snake_case name) and must not contain its own transaction control: the runner wraps each file
in one transaction and records it in `schema_migrations` in that same transaction.

Listing and the pending computation are dialect-independent; `apply_sqlite_migrations` and
`apply_postgres_migrations` are the runners.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from typing import Literal

import aiosqlite
import asyncpg  # type: ignore[import-untyped, unused-ignore]

from collab.errors import StoreError

Dialect = Literal["sqlite", "postgres"]

MIGRATIONS_PACKAGE = "collab.migrations"
FILENAME_PATTERN = re.compile(r"(?P<version>[0-9]{4})_(?P<name>[a-z0-9]+(?:_[a-z0-9]+)*)\.sql")

# Entries that packaging or tooling may leave next to the SQL files.
_IGNORED_ENTRIES = frozenset({"__init__.py", "__pycache__"})

_CREATE_SQLITE_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""

_CREATE_POSTGRES_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""

# The session-level advisory lock held while migrating a Postgres database: every instance
# starting at once waits for the first to finish, then finds nothing pending. The value is
# arbitrary but fixed ("collab" + "mg" as ASCII); rooms lock in the two-key space instead.
POSTGRES_MIGRATION_LOCK_KEY = int.from_bytes(b"collabmg", "big")
# DDL on a large table, or waiting for another instance's migration, can take long: far
# longer than the store's command timeout, which is meant for document reads and writes.
POSTGRES_MIGRATION_TIMEOUT_S = 600.0

# What asyncpg raises when the server, the connection or the pool fails. `OSError` covers
# refused and reset connections; `TimeoutError` (a subclass of it) covers timeouts.
POSTGRES_DRIVER_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"


def parse_migration_filename(filename: str) -> tuple[int, str]:
    """Return `(version, name)` of `NNNN_name.sql`; raise `StoreError` for any other name."""
    match = FILENAME_PATTERN.fullmatch(filename)
    if match is None:
        raise StoreError(
            f"migration file {filename!r} is not named NNNN_name.sql "
            "(four digits, underscore, lowercase snake_case name)"
        )
    return int(match["version"]), match["name"]


def build_migrations(sql_by_filename: Mapping[str, str]) -> list[Migration]:
    """Validate file names and return the migrations sorted by version.

    Raises `StoreError` for a badly named file or two files with the same version.
    """
    by_version: dict[int, Migration] = {}
    for filename, sql in sql_by_filename.items():
        version, name = parse_migration_filename(filename)
        if version in by_version:
            raise StoreError(
                f"migrations {by_version[version].filename!r} and {filename!r} "
                f"share version {version:04d}"
            )
        by_version[version] = Migration(version=version, name=name, sql=sql)
    return [by_version[version] for version in sorted(by_version)]


def list_migrations(dialect: Dialect) -> list[Migration]:
    """Read the shipped migrations of `dialect`, sorted by version (raises `StoreError`)."""
    directory = files(MIGRATIONS_PACKAGE) / dialect
    if not directory.is_dir():
        raise StoreError(f"no migrations directory for dialect {dialect!r}")
    sql_by_filename: dict[str, str] = {}
    for entry in directory.iterdir():
        if entry.name in _IGNORED_ENTRIES or entry.name.startswith("."):
            continue
        if not entry.is_file():
            raise StoreError(f"unexpected directory {entry.name!r} among {dialect} migrations")
        sql_by_filename[entry.name] = entry.read_text(encoding="utf-8")
    return build_migrations(sql_by_filename)


def pending_migrations(
    migrations: Iterable[Migration], applied_versions: Collection[int]
) -> list[Migration]:
    """Return the migrations whose version is not in `applied_versions`, in version order."""
    return sorted(
        (migration for migration in migrations if migration.version not in applied_versions),
        key=lambda migration: migration.version,
    )


def split_sqlite_script(script: str) -> list[str]:
    """Split a script into statements, using SQLite's own notion of a complete statement.

    `executescript` cannot be used: it commits any open transaction first, which would leave
    a migration and its `schema_migrations` row in separate transactions.
    """
    statements: list[str] = []
    start = 0
    for index, char in enumerate(script):
        if char == ";" and sqlite3.complete_statement(script[start : index + 1]):
            statements.append(script[start : index + 1].strip())
            start = index + 1
    # The remainder is run too: SQLite treats trailing comments as a no-op, and rejects an
    # incomplete statement with an error instead of it being silently dropped.
    rest = script[start:].strip()
    if rest:
        statements.append(rest)
    return statements


async def apply_sqlite_migrations(
    conn: aiosqlite.Connection, migrations: Sequence[Migration] | None = None
) -> list[Migration]:
    """Apply the pending migrations, each in its own transaction; return those applied.

    `migrations` defaults to the shipped SQLite ones. `conn` must be in autocommit mode
    (`isolation_level=None`). Raises `StoreError` naming the migration that failed; that
    migration leaves no trace and the ones before it stay applied.
    """
    if migrations is None:
        migrations = list_migrations("sqlite")
    try:
        await conn.execute(_CREATE_SQLITE_SCHEMA_MIGRATIONS)
        rows = await conn.execute_fetchall("SELECT version FROM schema_migrations")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read schema_migrations: {exc}") from exc
    applied_versions = {int(row[0]) for row in rows}
    applied: list[Migration] = []
    for migration in pending_migrations(migrations, applied_versions):
        if await _apply_sqlite_migration(conn, migration):
            applied.append(migration)
    return applied


async def _apply_sqlite_migration(conn: aiosqlite.Connection, migration: Migration) -> bool:
    try:
        try:
            # IMMEDIATE takes the write lock before the check below, so two processes opening
            # the same file at once cannot both apply the migration.
            await conn.execute("BEGIN IMMEDIATE")
            already = await conn.execute_fetchall(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
            )
            if already:
                await conn.execute("ROLLBACK")
                return False
            for statement in split_sqlite_script(migration.sql):
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, datetime.now(UTC).isoformat()),
            )
            await conn.execute("COMMIT")
        except BaseException as exc:
            await rollback_after(conn, exc)
            raise
    except sqlite3.Error as exc:
        raise StoreError(f"migration {migration.filename} failed: {exc}") from exc
    return True


async def apply_postgres_migrations(
    conn: asyncpg.Connection,
    migrations: Sequence[Migration] | None = None,
    *,
    timeout_s: float = POSTGRES_MIGRATION_TIMEOUT_S,
) -> list[Migration]:
    """Apply the pending migrations, each in its own transaction; return those applied.

    `migrations` defaults to the shipped Postgres ones. `conn` must not be in a transaction.
    The whole run holds `pg_advisory_lock(POSTGRES_MIGRATION_LOCK_KEY)`, so instances started
    at once apply each migration exactly once; `timeout_s` bounds every statement, the wait
    for that lock included. Raises `StoreError` naming the step or migration that failed; a
    failed migration leaves no trace and the ones before it stay applied.
    """
    if migrations is None:
        migrations = list_migrations("postgres")
    try:
        await conn.execute(
            "SELECT pg_advisory_lock($1)", POSTGRES_MIGRATION_LOCK_KEY, timeout=timeout_s
        )
    except POSTGRES_DRIVER_ERRORS as exc:
        raise StoreError(f"cannot take the migration lock: {describe_driver_error(exc)}") from exc
    try:
        applied = await _apply_postgres_migrations_locked(conn, migrations, timeout_s)
    except BaseException as exc:
        await _unlock_after(conn, exc, timeout_s)
        raise
    try:
        await conn.execute(
            "SELECT pg_advisory_unlock($1)", POSTGRES_MIGRATION_LOCK_KEY, timeout=timeout_s
        )
    except POSTGRES_DRIVER_ERRORS as exc:
        raise StoreError(
            f"cannot release the migration lock: {describe_driver_error(exc)}"
        ) from exc
    return applied


async def _apply_postgres_migrations_locked(
    conn: asyncpg.Connection, migrations: Sequence[Migration], timeout_s: float
) -> list[Migration]:
    try:
        # Under the lock: two concurrent CREATE TABLE IF NOT EXISTS can both try to create it.
        await conn.execute(_CREATE_POSTGRES_SCHEMA_MIGRATIONS, timeout=timeout_s)
        rows = await conn.fetch("SELECT version FROM schema_migrations", timeout=timeout_s)
    except POSTGRES_DRIVER_ERRORS as exc:
        raise StoreError(f"cannot read schema_migrations: {describe_driver_error(exc)}") from exc
    applied_versions = {int(row["version"]) for row in rows}
    applied: list[Migration] = []
    for migration in pending_migrations(migrations, applied_versions):
        try:
            async with conn.transaction():
                # Without arguments, execute() uses the simple query protocol, which runs a
                # script of several statements.
                await conn.execute(migration.sql, timeout=timeout_s)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                    timeout=timeout_s,
                )
        except POSTGRES_DRIVER_ERRORS as exc:
            raise StoreError(
                f"migration {migration.filename} failed: {describe_driver_error(exc)}"
            ) from exc
        applied.append(migration)
    return applied


async def _unlock_after(conn: asyncpg.Connection, exc: BaseException, timeout_s: float) -> None:
    """Release the migration lock because `exc` interrupted the run; failures become notes.

    A connection returned to an asyncpg pool is reset with `pg_advisory_unlock_all()`, and a
    lost connection loses its locks, so a failing unlock never leaves the lock held for good.
    """
    try:
        await conn.execute(
            "SELECT pg_advisory_unlock($1)", POSTGRES_MIGRATION_LOCK_KEY, timeout=timeout_s
        )
    except POSTGRES_DRIVER_ERRORS as unlock_exc:
        exc.add_note(f"releasing the migration lock also failed: {unlock_exc}")


def describe_driver_error(exc: BaseException) -> str:
    """`Type: message` of a driver error, or only its type when the message is empty."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


async def rollback_after(conn: aiosqlite.Connection, exc: BaseException) -> None:
    """Roll back the open transaction, if any, because `exc` interrupted it.

    The rollback is queued behind the statements already sent to the connection's thread, so
    it also cleans up after a caller cancelled mid-statement. A failing rollback is attached
    to `exc` as a note rather than replacing it.
    """
    try:
        # sqlite3's rollback() is a no-op outside a transaction, unlike executing ROLLBACK.
        await conn.rollback()
    except (sqlite3.Error, ValueError) as rollback_exc:
        exc.add_note(f"rolling back also failed: {rollback_exc}")


async def close_after(conn: aiosqlite.Connection, exc: BaseException) -> None:
    """Close `conn` because `exc` made it unusable; a failing close becomes a note on `exc`."""
    try:
        await conn.close()
    except (sqlite3.Error, ValueError) as close_exc:
        exc.add_note(f"closing the connection also failed: {close_exc}")
