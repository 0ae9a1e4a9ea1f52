"""The load tests run end to end at a tiny size: the generator against a server process with
real Yjs encodings, the catalog benchmark's queries over REST, the indexer's cost loop, the
catalog's paired on/off blocks, and the summing up of several runs (`paired.py`)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pycrdt
import pytest
import websockets

from collab.protocol.messages import (
    SyncStep2,
    Update,
    decode_message,
    encode_sync_step1,
    encode_update,
)
from tests.support.waiting import eventually, scaled

REPO_ROOT = Path(__file__).resolve().parents[2]
LOADTESTS = REPO_ROOT / "loadtests"


def run_tool(script: str, *options: str, timeout_s: float = 120) -> str:
    """`python loadtests/SCRIPT OPTIONS` from the repository's root; its output, once it
    exited 0."""
    completed = subprocess.run(
        [sys.executable, str(LOADTESTS / script), *options],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=scaled(timeout_s),
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


@pytest.mark.node
def test_fanout_delivers_every_update_at_a_tiny_size(tmp_path: Path) -> None:
    """A 2 rooms x 3 clients fan-out step exits 0 and every sent update reaches every peer."""
    if not (LOADTESTS / "node_modules").is_dir():
        pytest.fail("loadtests/node_modules is missing: run `npm ci --prefix loadtests`")
    results_path = tmp_path / "fanout.json"
    run_tool(
        "run.py",
        "fanout",
        "--rooms=2",
        "--clients=3",
        "--rates=5",
        "--step-s=2",
        f"--drain-s={scaled(10)}",
        f"--json={results_path}",
        timeout_s=90,
    )
    results = json.loads(results_path.read_text())
    [step] = results["steps"]
    assert step["sent"] == 2 * 5 * 2
    assert step["expected"] == step["sent"] * 2
    assert step["received"] == step["expected"]
    assert step["closed"] == {}
    # The machine's wake-up cost is recorded with every run, to read low-rate CPU figures by.
    wakeup = results["machine"]["wakeup"]
    assert wakeup is not None, "the wake-up probe did not run"
    assert wakeup["warm_us"] > 0
    assert wakeup["after_5ms_idle_us"] > 0


def run_scenario(tmp_path: Path, scenario: str, *options: str) -> dict[str, Any]:
    if not (LOADTESTS / "node_modules").is_dir():
        pytest.fail("loadtests/node_modules is missing: run `npm ci --prefix loadtests`")
    results_path = tmp_path / f"{scenario}.json"
    run_tool("run.py", scenario, *options, f"--json={results_path}")
    results: dict[str, Any] = json.loads(results_path.read_text())
    return results


@pytest.mark.node
def test_awareness_delivers_every_final_cursor_at_a_tiny_size(tmp_path: Path) -> None:
    """5 clients move their cursors for 2 s: every client's final state reaches every
    sampled receiver, and the moves were timed."""
    results = run_scenario(
        tmp_path,
        "awareness",
        "--clients=5",
        "--sample-receivers=5",
        "--step-s=2",
        f"--drain-s={scaled(10)}",
    )
    step = results["step"]
    assert step["sent"] == 5 * 2
    assert step["lost_pairs"] == 0
    assert step["latency_ms"]["count"] > 0
    assert step["closed"] == {}


@pytest.mark.node
def test_joinstorm_syncs_every_joiner_at_a_tiny_size(tmp_path: Path) -> None:
    """A 0.2 MiB note opened by 5 fresh clients: each gets the whole note, and the unrelated
    room's edits all arrive."""
    results = run_scenario(tmp_path, "joinstorm", "--doc-mb=0.2", "--joiners=5", "--quiet-s=0.5")
    assert results["failed"] == 0
    assert all(joiner["ok"] for joiner in results["joiner_details"])
    storm = results["storm"]
    assert storm["closed"] == {}
    assert storm["probe_storm"]["received"] == storm["probe_storm"]["expected"]


CATALOG_QUERY_COUNT = 30  # every query harness/catalog_queries.py measures


def run_catalog(tmp_path: Path, store: str) -> dict[str, object]:
    results_path = tmp_path / f"catalog-{store}.json"
    run_tool(
        "run.py",
        "catalog",
        f"--stores={store}",
        "--notes=300",
        "--requests=3",
        "--warmup=1",
        f"--json={results_path}",
    )
    results = json.loads(results_path.read_text())
    assert results["errors"] == {}
    run = results["runs"][store]
    assert run["generation"]["notes"] == 300
    return run


def check_catalog_run(run: dict[str, object]) -> None:
    queries = run["queries"]
    assert isinstance(queries, list)
    names = [query["name"] for query in queries]
    assert len(names) == CATALOG_QUERY_COUNT == len(set(names))
    for query in queries:
        assert query["errors"] == 0, query
        assert query["requests"] >= query["pages"], query
        assert query["latency_ms"]["p95"] is not None, query
    kinds = {query["kind"] for query in queries}
    assert kinds == {"list", "search"}
    # Paging follows `next`: every page of the five answered.
    paging = [query for query in queries if query["pages"] > 1]
    assert paging
    assert all(len(query["p50_by_page_ms"]) == query["pages"] for query in paging)


def test_catalog_answers_every_query_on_sqlite(tmp_path: Path) -> None:
    """The catalog scenario at 300 notes: every query answered, checked, and timed."""
    run = run_catalog(tmp_path, "sqlite")
    check_catalog_run(run)
    # The SQL of each query was explained against the database the server used.
    assert set(run["plans"]) == {query["name"] for query in run["queries"]}


def test_catalog_answers_every_query_on_postgres(tmp_path: Path) -> None:
    """The same on a throwaway PostgreSQL cluster, once PostgresStore has the catalog."""
    from collab.store import PostgresStore
    from tests.support.postgres_server import find_postgres_bindir

    if find_postgres_bindir() is None:
        pytest.skip(
            "PostgreSQL binaries (initdb, postgres, createdb, dropdb) not found: install the "
            "postgresql package or set COLLAB_TEST_PG_BINDIR"
        )
    if not hasattr(PostgresStore, "list_notes"):
        pytest.skip("PostgresStore has no catalog yet (the PostgreSQL catalog backend)")
    run = run_catalog(tmp_path, "postgres")
    check_catalog_run(run)
    assert set(run["plans"]) == {query["name"] for query in run["queries"]}


@pytest.mark.parametrize("edit", ["cursor", "body"])
def test_index_cost_runs_the_indexer_over_rooms(edit: str) -> None:
    output = run_tool(
        "index_cost.py",
        *("--store", "sqlite", "--rooms", "3", "--passes", "2", "--rounds", "1"),
        *("--body-chars", "300", "--edit", edit),
    )
    assert f"sqlite, {edit} edits: indexing a note costs" in output


@pytest.mark.parametrize(
    ("shape", "says"),
    [
        (["--settle-every=2"], "a settle every 2 commits"),
        (["--index-every-commit"], "indexed every commit"),
    ],
    ids=["with the tail", "indexed every commit"],
)
def test_sqlite_log_cost_measures_both_shapes_of_the_log(shape: list[str], says: str) -> None:
    output = run_tool("sqlite_log_cost.py", "--commits=4", "--rows=10", "--rooms=3", *shape)
    assert "µs of CPU per logged update (4 commits of 10 rows over 3 notes, " + says in output


def test_compaction_cost_compacts_each_shape_both_ways() -> None:
    output = run_tool("compaction_cost.py", "--rounds=2", "--notes=2", "--log=20", "--big-mb=0.1")
    assert "store sqlite, 2 rounds, modes alternating" in output
    for shape in ("S1's notes: 2 notes x 20-update log", "a 0.1 MiB note", "loaded again"):
        assert shape in output
    assert output.count("  merged   loop CPU") == 3
    assert output.count("  skipped  loop CPU") == 3


def test_catalog_edit_cost_switches_the_catalog_off_and_on_in_pairs() -> None:
    output = run_tool(
        "catalog_edit_cost.py",
        "--rooms=3",
        "--rate=5",
        "--block-s=0.5",
        "--pairs=2",
        "--calibrate-us=10",
        "--s1-us-per-edit=100",
    )
    lines = output.splitlines()
    assert "10 µs spun per edit on the on side" in lines[1]
    assert [line.split(":")[0].strip() for line in lines[2:4]] == ["pair  1", "pair  2"]
    assert lines[4].startswith("catalog: ")
    assert lines[4].endswith("2 pairs) of CPU per edit")
    assert lines[5].startswith("of the fan-out's 100 µs per edit: ")


def write_fanout(path: Path, **per_delivery: list[float]) -> None:
    results = {
        server: {"steps": [{"server_cpu_us_per_delivered": us} for us in steps]}
        for server, steps in per_delivery.items()
    }
    path.write_text(json.dumps({"results": results}))


def test_paired_compares_sides_by_round_and_servers_by_run(tmp_path: Path) -> None:
    # Two rounds: "on" costs collab 10 % more than "off" in each; the relay moved 5 % in the
    # second round's "on" run, which the relay-relative figure takes out.
    write_fanout(tmp_path / "on-1.json", collab=[11.0], relay=[10.0])
    write_fanout(tmp_path / "off-1.json", collab=[10.0], relay=[10.0])
    write_fanout(tmp_path / "on-2.json", collab=[23.1], relay=[21.0])
    write_fanout(tmp_path / "off-2.json", collab=[20.0], relay=[20.0])
    on = [str(tmp_path / f"on-{n}.json") for n in (1, 2)]
    off = [str(tmp_path / f"off-{n}.json") for n in (1, 2)]
    sides = run_tool("paired.py", "sides", *on, "--", *off)
    assert "absolute          +12.75 %" in sides
    assert "against the relay +10.00 % (SE 0.00" in sides
    servers = run_tool("paired.py", "servers", *on)
    assert "collab / relay: geometric mean 1.100x" in servers


@pytest.mark.node
def test_fanout_runs_collab_with_settings_beside_the_durable_reference_server(
    tmp_path: Path,
) -> None:
    """`--servers collab,node-leveldb` with `--server-env`: every update reaches every peer on
    both, and collab's settings are recorded with its results."""
    results = run_scenario(
        tmp_path,
        "fanout",
        "--servers=collab,node-leveldb",
        "--store=sqlite",
        "--server-env=COLLAB_FLUSH_INTERVAL_MS=250",
        "--rooms=2",
        "--clients=3",
        "--rates=5",
        "--step-s=2",
        f"--drain-s={scaled(10)}",
    )
    assert results["errors"] == {}
    for name in ("collab", "node-leveldb"):
        [step] = results["results"][name]["steps"]
        assert step["sent"] == 2 * 5 * 2
        assert step["received"] == step["expected"] == step["sent"] * 2, name
    assert results["results"]["collab"]["server_env"] == {"COLLAB_FLUSH_INTERVAL_MS": "250"}
    assert results["results"]["node-leveldb"]["server_env"] == {}


@asynccontextmanager
async def persisting_reference_server(database: Path) -> AsyncIterator[int]:
    """`node-server.mjs 0 --persist DATABASE` (the `node-leveldb` baseline), stopped on exit;
    yields its port."""
    server = await asyncio.create_subprocess_exec(
        "node",
        str(LOADTESTS / "baselines" / "node-server.mjs"),
        "0",
        "--persist",
        str(database),
        cwd=LOADTESTS,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        line = ""
        while not line.startswith("listening on "):
            line = (await asyncio.wait_for(server.stdout.readline(), scaled(30))).decode()
            assert line, "node-server.mjs exited before listening"
        yield int(line.split()[-1])
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), scaled(30))


@pytest.mark.node
async def test_the_durable_reference_server_keeps_a_note_across_a_restart(
    tmp_path: Path,
) -> None:
    """`node-server.mjs --persist DIR` (the `node-leveldb` baseline) stores what a client sent:
    a client of a second server process on the same directory syncs the note's text."""
    if not (LOADTESTS / "node_modules" / "y-leveldb").is_dir():
        pytest.fail("loadtests/node_modules/y-leveldb is missing: run `npm ci --prefix loadtests`")
    database = tmp_path / "leveldb"
    doc = pycrdt.Doc()
    doc.get("body", type=pycrdt.Text).insert(0, "kept in LevelDB")

    async with (
        persisting_reference_server(database) as port,
        websockets.connect(f"ws://127.0.0.1:{port}/w1/n1") as client,
    ):
        await client.send(encode_update(doc.get_update()))
        # y-leveldb writes in the background: wait until its log holds something.
        await eventually(
            lambda: any(
                path.suffix == ".log" and path.stat().st_size > 0 for path in database.glob("*")
            ),
            timeout=30,
            what="LevelDB's log written",
        )

    async with (
        persisting_reference_server(database) as port,
        websockets.connect(f"ws://127.0.0.1:{port}/w1/n1") as client,
    ):
        await client.send(encode_sync_step1(b"\x00"))
        fresh = pycrdt.Doc()
        body = fresh.get("body", type=pycrdt.Text)
        async with asyncio.timeout(scaled(30)):
            while str(body) != "kept in LevelDB":
                message = decode_message(await client.recv())
                if isinstance(message, SyncStep2 | Update):
                    fresh.apply_update(message.update)


def test_idle_memory_lists_what_each_connection_keeps() -> None:
    """`idle_memory.py --by-type` at a tiny size: the Python memory per connection by line,
    and the objects each connection keeps by type, collab's socket object among them."""
    output = run_tool("idle_memory.py", "--connections=40", "--top=60", "--by-type")
    lines = output.splitlines()
    assert lines[0].startswith("30 connections: ")
    assert int(lines[0].split()[2]) > 0  # bytes of Python objects each
    by_type = lines[lines.index("--- by type (sys.getsizeof), where allocated") + 1 :]
    assert any(" 1.00 objects  ServerWebSocket at websocket.py:" in line for line in by_type)
