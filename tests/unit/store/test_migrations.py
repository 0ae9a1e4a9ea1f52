"""The migration runner's pure parts: file names, ordering, pending versions, splitting."""

from __future__ import annotations

import aiosqlite
import pytest

from collab.errors import StoreError
from collab.store.migrations import (
    Migration,
    apply_sqlite_migrations,
    build_migrations,
    list_migrations,
    parse_migration_filename,
    pending_migrations,
    split_sqlite_script,
)


def migration(version: int, name: str = "step") -> Migration:
    return Migration(version=version, name=name, sql=f"-- {version}")


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("0001_documents.sql", (1, "documents")),
        ("0042_add_index_2.sql", (42, "add_index_2")),
        ("9999_x.sql", (9999, "x")),
    ],
)
def test_well_formed_names_parse_to_version_and_name(
    filename: str, expected: tuple[int, str]
) -> None:
    """NNNN_name.sql parses to its number and its name."""
    assert parse_migration_filename(filename) == expected


@pytest.mark.parametrize(
    "filename",
    [
        "1_documents.sql",
        "00001_documents.sql",
        "0001-documents.sql",
        "0001_.sql",
        "0001_Documents.sql",
        "0001_documents.SQL",
        "0001_documents.sql.bak",
        "0001_documents",
        "abcd_documents.sql",
        "0001_two__underscores.sql",
        "0001_trailing_.sql",
        "README.md",
    ],
)
def test_malformed_names_raise_store_error(filename: str) -> None:
    """Any name other than NNNN_name.sql raises `StoreError` quoting the file name."""
    with pytest.raises(StoreError, match=r"NNNN_name\.sql") as raised:
        parse_migration_filename(filename)
    assert repr(filename) in str(raised.value)


def test_migrations_are_sorted_by_version_not_listing_order() -> None:
    """Migrations come back in version order whatever order the files were listed in."""
    migrations = build_migrations({"0010_c.sql": "C", "0002_b.sql": "B", "0001_a.sql": "A"})
    assert [(m.version, m.name, m.sql) for m in migrations] == [
        (1, "a", "A"),
        (2, "b", "B"),
        (10, "c", "C"),
    ]


def test_duplicate_versions_raise_store_error_naming_both_files() -> None:
    """Two files with the same number raise `StoreError` naming both of them."""
    with pytest.raises(StoreError, match="share version 0002") as raised:
        build_migrations({"0001_a.sql": "", "0002_b.sql": "", "0002_c.sql": ""})
    assert "0002_b.sql" in str(raised.value)
    assert "0002_c.sql" in str(raised.value)


def test_a_badly_named_file_among_good_ones_raises_store_error() -> None:
    """One malformed name fails the whole listing rather than being skipped."""
    with pytest.raises(StoreError, match=r"0003-c\.sql"):
        build_migrations({"0001_a.sql": "", "0003-c.sql": ""})


def test_nothing_applied_means_everything_pending_in_order() -> None:
    """With no applied versions every migration is pending, in version order."""
    migrations = [migration(3), migration(1), migration(2)]
    assert [m.version for m in pending_migrations(migrations, set())] == [1, 2, 3]


def test_applied_versions_are_not_pending() -> None:
    """Applied versions are left out, including one applied out of order."""
    migrations = [migration(1), migration(2), migration(3), migration(4)]
    assert [m.version for m in pending_migrations(migrations, {1, 3})] == [2, 4]


def test_nothing_pending_once_all_applied() -> None:
    """When every version is applied, nothing is pending, even with unknown extra versions."""
    migrations = [migration(1), migration(2)]
    assert pending_migrations(migrations, {1, 2, 7}) == []


def test_migration_filename_round_trips() -> None:
    """A migration's file name is rebuilt from its version and name."""
    assert migration(7, "add_rooms").filename == "0007_add_rooms.sql"


def test_shipped_dialects_have_the_same_migrations() -> None:
    """SQLite and Postgres ship the same versions with the same names, starting at 0001."""
    sqlite = [(m.version, m.name) for m in list_migrations("sqlite")]
    postgres = [(m.version, m.name) for m in list_migrations("postgres")]
    assert sqlite == postgres
    assert sqlite[0] == (1, "documents")


def test_script_splits_into_statements_keeping_semicolons_in_strings() -> None:
    """A `;` inside a string literal or comment does not end a statement."""
    script = """
    -- header; not a statement
    CREATE TABLE t (a TEXT DEFAULT 'x;y');
    INSERT INTO t VALUES ('1;2'); /* trailing; comment */
    """
    assert split_sqlite_script(script) == [
        "-- header; not a statement\n    CREATE TABLE t (a TEXT DEFAULT 'x;y');",
        "INSERT INTO t VALUES ('1;2');",
        "/* trailing; comment */",
    ]


def test_script_keeps_a_trigger_body_in_one_statement() -> None:
    """The statements inside a trigger's BEGIN ... END stay in the trigger's statement."""
    script = "CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM t; END; SELECT 1;"
    assert split_sqlite_script(script) == [
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM t; END;",
        "SELECT 1;",
    ]


def test_script_keeps_a_final_remainder_for_sqlite_to_judge() -> None:
    """A last statement without `;` or a trailing comment is kept, not silently dropped."""
    assert split_sqlite_script("SELECT 1;\nSELECT 2\n") == ["SELECT 1;", "SELECT 2"]
    assert split_sqlite_script("SELECT 1;\n-- done\n") == ["SELECT 1;", "-- done"]
    assert split_sqlite_script("  \n") == []


async def test_a_failing_migration_leaves_no_trace_and_names_itself() -> None:
    """A failing migration raises `StoreError` naming it; earlier ones stay, it is undone."""
    migrations = [
        Migration(version=1, name="good", sql="CREATE TABLE kept (a INTEGER);"),
        Migration(
            version=2,
            name="broken",
            sql="CREATE TABLE undone (a INTEGER);\nINSERT INTO missing VALUES (1);",
        ),
    ]
    async with aiosqlite.connect(":memory:", isolation_level=None) as conn:
        with pytest.raises(StoreError, match=r"migration 0002_broken\.sql failed"):
            await apply_sqlite_migrations(conn, migrations)

        applied = await conn.execute_fetchall("SELECT version FROM schema_migrations")
        tables = await conn.execute_fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
        assert [tuple(row) for row in applied] == [(1,)]
        assert {row[0] for row in tables} == {"schema_migrations", "kept"}
        assert not conn.in_transaction


async def test_applying_twice_applies_nothing_the_second_time() -> None:
    """A second run finds every migration recorded and applies none."""
    async with aiosqlite.connect(":memory:", isolation_level=None) as conn:
        first = await apply_sqlite_migrations(conn)
        second = await apply_sqlite_migrations(conn)
    assert [m.version for m in first] == [m.version for m in list_migrations("sqlite")]
    assert second == []
