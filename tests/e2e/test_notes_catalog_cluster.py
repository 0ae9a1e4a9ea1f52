"""The notes catalog fed by stock Yjs clients (`y-websocket` under Node) on two `collab serve`
processes sharing Redis and Postgres: an edit on A is listed on B, a trash on B closes A's
clients with 4404, and a purged note stays purged against a stock client that comes back
with offline edits."""

from __future__ import annotations

from collab.store.catalog import NoteStatus
from tests.e2e.conftest import Pair, token
from tests.support.node_agent import NodeAgent
from tests.support.servers import ServerProcess
from tests.support.waiting import eventually


async def connect(agent: NodeAgent, instance: ServerProcess, name: str, room: str) -> None:
    await agent.connect(
        name, f"{instance.ws}/ws/docs", room, token(name, {"w1": "editor"}), max_backoff_ms=300
    )
    await agent.wait_synced(name)


async def test_an_edit_on_one_instance_is_listed_and_searchable_on_the_other(
    agent: NodeAgent, pair: Pair
) -> None:
    await connect(agent, pair.a, "alice", "w1/plan")
    await agent.map_set("alice", "meta", "title", "Launch plan")
    await agent.xml_append_paragraph("alice", "body", "ship the catalog by friday")

    async def listed_on_b() -> bool:
        notes = await pair.listed(pair.b, q="friday")
        return [(n["id"], n["title"]) for n in notes] == [("plan", "Launch plan")]

    await eventually(listed_on_b, timeout=30, what="alice's note listed and found on B")
    notes = await pair.listed(pair.b)
    assert notes[0]["updated_by"] == "alice"
    assert notes[0]["excerpt"] == "ship the catalog by friday"


async def test_a_trash_on_one_instance_closes_stock_clients_on_the_other(
    agent: NodeAgent, pair: Pair
) -> None:
    await connect(agent, pair.a, "alice", "w1/doomed")
    await agent.map_set("alice", "meta", "title", "Doomed")

    async def listed() -> bool:
        return [n["id"] for n in await pair.listed(pair.b)] == ["doomed"]

    await eventually(listed, timeout=30, what="the note listed")
    assert (await pair.call(pair.b, "DELETE", "/api/v1/workspaces/w1/notes/doomed"))[0] == 200

    closed = await agent.wait_event("alice", "closed", timeout_s=30)
    # y-websocket 3 takes a close code in 4400-4499 as final: it stops reconnecting.
    assert (closed[0]["code"], closed[0]["reason"]) == (4404, "note deleted")
    status = await agent.status("alice")
    assert (status["status"], status["should_connect"]) == ("disconnected", False)
    status_code, _ = await pair.call(pair.a, "GET", "/api/v1/docs/w1/doomed")
    assert status_code == 404


async def test_a_purged_note_never_comes_back_from_a_stock_client_offline_edits(
    agent: NodeAgent, pair: Pair
) -> None:
    await connect(agent, pair.a, "alice", "w1/secret")
    await agent.map_set("alice", "meta", "title", "Secret")
    await agent.xml_append_paragraph("alice", "body", "first draft")

    async def stored() -> bool:
        return (await pair.stored("w1/secret")) == (NoteStatus.ACTIVE, False)

    await eventually(stored, timeout=30, what="the note stored")
    await agent.disconnect("alice")
    # Offline edits, kept in the client's document, as IndexedDB would keep them.
    await agent.map_set("alice", "meta", "title", "Edited offline")
    await agent.xml_append_paragraph("alice", "body", "written on a plane")

    status, _ = await pair.call(
        pair.b, "DELETE", "/api/v1/workspaces/w1/notes/secret", params={"purge": "true"}
    )
    assert status == 204
    await agent.reconnect("alice")
    closes = await agent.wait_event("alice", "connection-close", count=2, timeout_s=30)
    assert (await agent.status("alice"))["synced"] is False
    assert len(closes) >= 2

    assert await pair.stored("w1/secret") == (NoteStatus.PURGED, True)
    assert await pair.listed(pair.a) == []
    assert await pair.listed(pair.a, trashed="true") == []
    for instance in (pair.a, pair.b):
        status, body = await pair.call(instance, "GET", "/api/v1/docs/w1/secret")
        assert (status, body["error"]["code"]) == (410, "note_purged")
