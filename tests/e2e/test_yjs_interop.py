"""The stock Yjs client (yjs + y-websocket under Node) against a real `collab serve`."""

from __future__ import annotations

import asyncio

from pycrdt import Text

from tests.conftest import ProcessFactory
from tests.e2e.conftest import token
from tests.support.node_agent import NodeAgent
from tests.support.servers import ServerProcess
from tests.support.yclient import YClient

ROOTS = {"text": "text", "meta": "map", "list": "array", "body": "xml"}


async def _connect(agent: NodeAgent, served: ServerProcess, name: str, **kw: object) -> int:
    sub = str(kw.pop("sub", name))
    role = str(kw.pop("role", "editor"))
    client_id = await agent.connect(
        name,
        f"{served.ws}/ws/docs",
        "w1/n1",
        token(sub, {"w1": role}),
        **kw,  # type: ignore[arg-type]
    )
    await agent.wait_synced(name)
    return client_id


async def test_stock_clients_converge_on_text_map_array_and_xml(
    agent: NodeAgent, served: ServerProcess
) -> None:
    """Concurrent edits of every root type by two stock clients end in the same document."""
    await _connect(agent, served, "a")
    await _connect(agent, served, "b")
    await agent.transact(
        "a",
        [
            {"op": "text_insert", "root": "text", "index": 0, "text": "Hello"},
            {"op": "map_set", "root": "meta", "key": "title", "value": "Plan"},
            {"op": "array_push", "root": "list", "values": [1, "two"]},
            {"op": "xml_append_paragraph", "root": "body", "text": "first"},
        ],
    )
    await agent.transact(
        "b",
        [
            {"op": "text_insert", "root": "text", "index": 0, "text": "World"},
            {"op": "map_set", "root": "meta", "key": "pinned", "value": True},
            {"op": "array_push", "root": "list", "values": [3]},
            {"op": "xml_append_paragraph", "root": "body", "text": "second"},
        ],
    )
    a_state = await _settled(agent, "a", "b")
    assert a_state["meta"] == {"title": "Plan", "pinned": True}
    assert sorted(a_state["text"]) == sorted("HelloWorld")
    assert len(a_state["list"]) == 3
    assert "first" in a_state["body"]
    assert "second" in a_state["body"]


async def _settled(agent: NodeAgent, first: str, second: str) -> dict[str, object]:
    """Wait until both clients read the same document; return it."""
    for _ in range(100):
        state = await agent.read(first, ROOTS)
        try:
            await agent.wait_for(second, ROOTS, state, timeout_s=0.5)
            return state
        except Exception:
            await asyncio.sleep(0)
    raise AssertionError("clients did not converge")


async def test_late_joiner_gets_the_full_state(agent: NodeAgent, served: ServerProcess) -> None:
    """A stock client joining later receives every earlier edit."""
    await _connect(agent, served, "early")
    await agent.text_insert("early", "text", 0, "before you")
    await agent.map_set("early", "meta", "title", "T")
    async with YClient.connect(f"{served.ws}/ws/docs/w1/n1?token={token()}") as probe:
        await probe.wait_until(lambda: str(probe.doc.get("text", type=Text)) == "before you")
    await _connect(agent, served, "late")
    await agent.wait_for(
        "late", {"text": "text", "meta": "map"}, {"text": "before you", "meta": {"title": "T"}}
    )


async def test_offline_edits_merge_on_reconnect(agent: NodeAgent, served: ServerProcess) -> None:
    """Edits made while disconnected merge with the others' when the connection returns."""
    await _connect(agent, served, "a")
    await _connect(agent, served, "b")
    await agent.text_insert("a", "text", 0, "base")
    await agent.wait_for("b", {"text": "text"}, {"text": "base"})
    await agent.disconnect("b")
    await agent.text_insert("b", "text", 4, " offline")
    await agent.text_insert("a", "text", 0, "online ")
    await agent.reconnect("b")
    await agent.wait_synced("b")
    expected = {"text": "online base offline"}
    await agent.wait_for("a", {"text": "text"}, expected)
    await agent.wait_for("b", {"text": "text"}, expected)


async def test_awareness_is_relayed_and_removed_on_close(
    agent: NodeAgent, served: ServerProcess
) -> None:
    """Stock clients see each other's awareness; a closed client's state goes away for all."""
    a_id = await _connect(agent, served, "a", awareness={"user": {"name": "A"}})
    b_id = await _connect(agent, served, "b", awareness={"user": {"name": "B"}})
    states = await agent.wait_awareness("a", {a_id, b_id})
    assert states[b_id] == {"user": {"name": "B"}}
    await agent.set_awareness_field("b", "cursor", {"anchor": 3})
    await agent.wait_awareness_states(
        "a", {a_id: {"user": {"name": "A"}}, b_id: {"user": {"name": "B"}, "cursor": {"anchor": 3}}}
    )
    await agent.destroy("b")
    await agent.wait_awareness("a", {a_id})


async def test_awareness_is_removed_when_a_client_process_dies(
    agent: NodeAgent, served: ServerProcess
) -> None:
    """A client that vanishes without a close handshake is removed from awareness too."""
    a_id = await _connect(agent, served, "a", awareness={"user": {"name": "A"}})
    async with NodeAgent() as doomed:
        b_id = await _connect(doomed, served, "b", awareness={"user": {"name": "B"}})
        await agent.wait_awareness("a", {a_id, b_id})
        await doomed.kill()
    await agent.wait_awareness("a", {a_id})


async def test_stock_client_and_pycrdt_client_edit_together(
    agent: NodeAgent, served: ServerProcess
) -> None:
    """A Python pycrdt client and a stock Yjs client converge on the same text."""
    await _connect(agent, served, "js")
    async with YClient.connect(f"{served.ws}/ws/docs/w1/n1?token={token('py')}") as py:
        await py.wait_synced()
        py.doc.get("text", type=Text).insert(0, "from python. ")
        await agent.wait_for("js", {"text": "text"}, {"text": "from python. "})
        await agent.text_insert("js", "text", 13, "from js.")
        await py.wait_until(lambda: str(py.doc.get("text", type=Text)) == "from python. from js.")


async def test_stock_viewer_edits_are_not_relayed(agent: NodeAgent, served: ServerProcess) -> None:
    """A viewer's local edits never reach other clients, while it still receives theirs."""
    await _connect(agent, served, "editor")
    await _connect(agent, served, "viewer", role="viewer")
    await agent.text_insert("editor", "text", 0, "yes")
    await agent.wait_for("viewer", {"text": "text"}, {"text": "yes"})
    await agent.text_insert("viewer", "text", 0, "nope ")
    await agent.text_insert("editor", "text", 3, "!")
    await agent.wait_for("viewer", {"text": "text"}, {"text": "nope yes!"})
    async with YClient.connect(f"{served.ws}/ws/docs/w1/n1?token={token('probe')}") as probe:
        await probe.wait_until(lambda: str(probe.doc.get("text", type=Text)) == "yes!")
    assert (await agent.read("editor", {"text": "text"})) == {"text": "yes!"}


async def test_stock_clients_edit_over_permessage_deflate(
    agent: NodeAgent, server_processes: ProcessFactory
) -> None:
    """With COLLAB_WS_COMPRESSION on, the stock client (Node's `ws`, which offers
    permessage-deflate) and a pycrdt client negotiate it and converge on text large enough to
    be sent deflated both ways; the server's frames are deflated once for all peers."""
    served = await server_processes.start(COLLAB_WS_COMPRESSION="true")
    await _connect(agent, served, "a")
    await _connect(agent, served, "b")
    async with YClient.connect(
        f"{served.ws}/ws/docs/w1/n1?token={token('py')}", compression="deflate"
    ) as py:
        await py.wait_synced()
        negotiated = py._ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert negotiated == "permessage-deflate; server_no_context_takeover"
        from_js = "stock client text, long enough to be deflated. " * 20
        await agent.text_insert("a", "text", 0, from_js)
        await agent.wait_for("b", {"text": "text"}, {"text": from_js})
        await py.wait_until(lambda: str(py.doc.get("text", type=Text)) == from_js)
        from_py = "pycrdt text, also long enough to be deflated. " * 20
        py.doc.get("text", type=Text).insert(len(from_js), from_py)
        await agent.wait_for("a", {"text": "text"}, {"text": from_js + from_py})
        await agent.wait_for("b", {"text": "text"}, {"text": from_js + from_py})
