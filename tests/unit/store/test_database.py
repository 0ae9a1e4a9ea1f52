"""Every backend is a whole `Database`: documents, notifications and revocations."""

from __future__ import annotations

import pytest

from collab.store import Database, MemoryStore, PostgresStore, SqliteStore, create_store


@pytest.mark.parametrize(
    ("database_url", "backend"),
    [
        ("memory://", MemoryStore),
        ("sqlite:///collab.sqlite3", SqliteStore),
        ("postgresql://collab@localhost/collab", PostgresStore),
    ],
)
def test_every_backend_is_a_database(database_url: str, backend: type[object]) -> None:
    """The backend picked for each URL has every method of every interface of `Database`."""
    database = create_store(database_url)

    assert isinstance(database, backend)
    assert isinstance(database, Database)


def test_a_backend_lacking_one_interface_is_not_a_database() -> None:
    """A backend with documents and notifications but no revocations fails the check."""

    class WithoutRevocations(MemoryStore):
        # None is how a subclass withdraws a protocol method from `isinstance`.
        put_revocation = None  # type: ignore[assignment]
        active_revocations = None  # type: ignore[assignment]

    assert not isinstance(WithoutRevocations(), Database)
