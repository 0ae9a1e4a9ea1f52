"""Version history with stock Yjs clients (`y-websocket` under Node), on the embedded default
(one `collab serve` on SQLite) and on two processes sharing Redis and Postgres: a restore
reaches every client (on both instances) as an ordinary change (no reload), can itself be
undone, lists who edited, and a client that was offline during the restore merges its own
edits on top of the restored content."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ProcessFactory
from tests.e2e.conftest import Pair, token
from tests.support.node_agent import NodeAgent
from tests.support.servers import ServerProcess

ROOTS: dict[str, Any] = {"meta": "map", "body": "xml"}
VERSIONS = "/api/v1/docs/w1/plan/versions"


@pytest.fixture
async def embedded(server_processes: ProcessFactory) -> Pair:
    """The embedded default (SQLite, in-process bus): one instance in both roles."""
    one = await server_processes.start(COLLAB_FLUSH_INTERVAL_MS="50")
    return Pair(one, one, dsn="")


async def connect(agent: NodeAgent, instance: ServerProcess, name: str) -> None:
    await agent.connect(
        name, f"{instance.ws}/ws/docs", "w1/plan", token(name, {"w1": "editor"}), max_backoff_ms=300
    )
    await agent.wait_synced(name)


def content(title: str, *paragraphs: str) -> dict[str, Any]:
    body = "".join(f"<paragraph>{text}</paragraph>" for text in paragraphs)
    return {"meta": {"title": title}, "body": body}


async def name_version(pair: Pair, instance: ServerProcess, user: str, name: str) -> Any:
    status, version = await pair.call(
        instance, "POST", VERSIONS, user=user, role="editor", json={"name": name}
    )
    assert status == 201, version
    return version


async def restore(pair: Pair, instance: ServerProcess, user: str, version_id: str) -> Any:
    status, body = await pair.call(
        instance, "POST", f"{VERSIONS}/{version_id}/restore", user=user, role="editor"
    )
    assert status == 200, body
    return body


async def test_a_restore_reaches_stock_clients_and_can_be_undone_embedded(
    agent: NodeAgent, embedded: Pair
) -> None:
    await restore_reaches_stock_clients_and_can_be_undone(agent, embedded)


async def test_a_restore_on_one_instance_reaches_stock_clients_on_both_and_can_be_undone(
    agent: NodeAgent, pair: Pair
) -> None:
    await restore_reaches_stock_clients_and_can_be_undone(agent, pair)


async def test_a_client_offline_during_a_restore_merges_its_edits_on_top_embedded(
    agent: NodeAgent, embedded: Pair
) -> None:
    await offline_client_merges_its_edits_on_top(agent, embedded)


async def test_a_client_offline_during_a_restore_merges_its_edits_on_top_scaled(
    agent: NodeAgent, pair: Pair
) -> None:
    await offline_client_merges_its_edits_on_top(agent, pair)


async def restore_reaches_stock_clients_and_can_be_undone(agent: NodeAgent, pair: Pair) -> None:
    await connect(agent, pair.a, "alice")
    await connect(agent, pair.b, "bob")
    await agent.map_set("alice", "meta", "title", "Plan")
    await agent.xml_append_paragraph("alice", "body", "ship on friday")
    first = content("Plan", "ship on friday")
    await agent.wait_for("bob", ROOTS, first)
    # Taken on alice's instance: her edits are flushed with their author first.
    v1 = await name_version(pair, pair.a, "alice", "first draft")
    assert (v1["kind"], v1["name"], v1["authors"]) == ("named", "first draft", ["alice"])

    await agent.xml_paragraph_insert("bob", "body", 0, 0, "maybe ")
    await agent.map_set("bob", "meta", "title", "Plan B")
    await agent.xml_append_paragraph("bob", "body", "or monday")
    second = content("Plan B", "maybe ship on friday", "or monday")
    await agent.wait_for("alice", ROOTS, second)

    restored = await restore(pair, pair.b, "bob", v1["id"])
    assert restored["changed"] is True
    backup = restored["backup"]
    assert (backup["kind"], backup["created_by"], backup["authors"]) == ("restore", "bob", ["bob"])
    # Both instances' clients get it as an edit: no reload, same documents.
    for client in ("alice", "bob"):
        await agent.wait_for(client, ROOTS, first)
    for client in ("alice", "bob"):
        status = await agent.status(client)
        assert (status["status"], status["synced"]) == ("connected", True)
    _, listed = await pair.call(pair.a, "GET", VERSIONS)
    assert [(v["id"], v["kind"]) for v in listed["versions"]] == [
        (backup["id"], "restore"),
        (v1["id"], "named"),
    ]

    # The restore is undone by restoring the version taken before it.
    await restore(pair, pair.a, "alice", backup["id"])
    for client in ("alice", "bob"):
        await agent.wait_for(client, ROOTS, second)
    status, snapshot = await pair.call(pair.a, "GET", "/api/v1/docs/w1/plan")
    assert status == 200
    assert snapshot["roots"]["meta"]["title"] == "Plan B"


async def offline_client_merges_its_edits_on_top(agent: NodeAgent, pair: Pair) -> None:
    await connect(agent, pair.a, "alice")
    await agent.map_set("alice", "meta", "title", "Notes")
    await agent.xml_append_paragraph("alice", "body", "alpha one")
    await agent.xml_append_paragraph("alice", "body", "beta two")
    v1 = await name_version(pair, pair.a, "alice", "clean")
    await agent.xml_paragraph_insert("alice", "body", 1, 8, " more")
    await agent.xml_append_paragraph("alice", "body", "gamma three")

    await connect(agent, pair.b, "carol")
    await agent.wait_for(
        "carol", ROOTS, content("Notes", "alpha one", "beta two more", "gamma three")
    )
    await agent.disconnect("carol")
    # Offline (kept in the client's document, as IndexedDB keeps it): into a paragraph the
    # restore leaves as it is, and into one it changes.
    await agent.xml_paragraph_insert("carol", "body", 0, 0, "OFFLINE ")
    await agent.xml_paragraph_insert("carol", "body", 1, 0, "X")

    await restore(pair, pair.a, "alice", v1["id"])
    await agent.wait_for("alice", ROOTS, content("Notes", "alpha one", "beta two"))
    await agent.reconnect("carol")
    merged = content("Notes", "OFFLINE alpha one", "Xbeta two")
    for client in ("alice", "carol"):
        await agent.wait_for(client, ROOTS, merged)
    status, snapshot = await pair.call(pair.b, "GET", "/api/v1/docs/w1/plan")
    assert status == 200
    assert snapshot["roots"]["meta"] == {"title": "Notes"}
