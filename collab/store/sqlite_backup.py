"""An online backup of a SQLite store: `backup_sqlite`, behind `collab backup`.

The copy is made with SQLite's backup API in one step, inside one read transaction of the
source: a consistent snapshot of everything committed when it began, taken while servers
keep writing (in WAL mode a reader blocks no writer). It is written beside the destination,
checked (`PRAGMA quick_check`), flushed to disk and only then renamed into place, so the
destination is either the previous file or a whole, sound copy, never half of one.

The embedded default's JWT secret (`<file>.secret`, created by `collab serve`) goes with it
as `<destination>.secret`: a restored file without it would refuse every token issued
before. A restore is the reverse copy with the servers stopped.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from collab.errors import StoreError

BUSY_TIMEOUT_S = 5.0
SECRET_SUFFIX = ".secret"


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    size_bytes: int
    schema_version: int
    secret_copied: bool


def backup_sqlite(source: Path, destination: Path, *, overwrite: bool = False) -> BackupResult:
    """Copy the store at `source` to `destination` (see the module docstring). Blocking.

    Raises `StoreError` saying what to do when `source` is no collab database, when
    `destination` exists (unless `overwrite`), is `source` itself or one of its files, is a
    directory or lies in no directory,
    and when SQLite or the disk fails."""
    if not source.is_file():
        raise StoreError(f"backup: no database file at {str(source)!r}")
    own_files = (source, *_sidecars(source), source.with_name(source.name + SECRET_SUFFIX))
    if destination.resolve() in {path.resolve() for path in own_files}:
        # Replacing its write-ahead log or its key would corrupt or lock out the live store.
        raise StoreError(
            "backup: the destination is the database itself or one of its files "
            "(-wal, -shm, -journal, .secret); name another file"
        )
    if destination.is_dir():
        raise StoreError(
            f"backup: {str(destination)!r} is a directory; name a file in it, such as "
            f"{str(destination / 'collab-backup.db')!r}"
        )
    if destination.exists() and not overwrite:
        raise StoreError(
            f"backup: {str(destination)!r} exists; name a new file, or pass --force to replace it"
        )
    if not destination.parent.is_dir():
        raise StoreError(f"backup: no directory {str(destination.parent)!r} to write into")
    partial = destination.with_name(f".{destination.name}.partial-{os.getpid()}")
    try:
        version = _copy(source, partial)
        _fsync(partial)
        os.replace(partial, destination)
        secret_copied = _copy_secret(source, destination)
        # The renames are durable once the directory is.
        _fsync(destination.parent)
    except (sqlite3.Error, OSError) as error:
        raise StoreError(f"backup of {str(source)!r} failed: {error}") from error
    finally:
        for leftover in (partial, *_sidecars(partial)):
            leftover.unlink(missing_ok=True)
    return BackupResult(destination, destination.stat().st_size, version, secret_copied)


def _copy(source: Path, partial: Path) -> int:
    # mode=rw: a missing file is an error, not a new empty database.
    reader = sqlite3.connect(f"file:{quote(str(source))}?mode=rw", uri=True, timeout=BUSY_TIMEOUT_S)
    try:
        version = _schema_version(reader, source)
        partial.unlink(missing_ok=True)
        writer = sqlite3.connect(partial)
        try:
            # One step (pages=-1): the whole copy in one read transaction, so writes made
            # meanwhile through other connections neither restart it nor reach it.
            reader.backup(writer, pages=-1)
            [(check,)] = writer.execute("PRAGMA quick_check").fetchall()
            if check != "ok":
                raise StoreError(f"backup: the copy failed its check ({check}); nothing written")
        finally:
            writer.close()
    finally:
        reader.close()
    return version


def _schema_version(conn: sqlite3.Connection, source: Path) -> int:
    try:
        [(version,)] = conn.execute("SELECT max(version) FROM schema_migrations").fetchall()
    except sqlite3.DatabaseError as error:
        raise StoreError(
            f"backup: {str(source)!r} is not a collab database ({error}); check COLLAB_DATABASE_URL"
        ) from None
    if version is None:
        raise StoreError(f"backup: {str(source)!r} has no schema yet; run `collab migrate` first")
    return int(version)


def _copy_secret(source: Path, destination: Path) -> bool:
    secret = source.with_name(source.name + SECRET_SUFFIX)
    if not secret.is_file():
        return False
    target = destination.with_name(destination.name + SECRET_SUFFIX)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secret.read_bytes())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return True


def _sidecars(path: Path) -> tuple[Path, ...]:
    return tuple(path.with_name(path.name + suffix) for suffix in ("-journal", "-wal", "-shm"))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
