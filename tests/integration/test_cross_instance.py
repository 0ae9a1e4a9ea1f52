"""Two instances of one deployment (shared store and bus), clients on each."""

from __future__ import annotations

import json

from pycrdt import Text, create_awareness_message, write_var_uint

from tests.conftest import StartServer
from tests.support.yclient import YClient


async def test_edits_and_awareness_cross_instances(start_server: StartServer) -> None:
    """An edit on A reaches a client on B and back; awareness set on A appears on B and is
    removed on B when the client on A disconnects."""
    a = await start_server()
    b = await start_server()
    async with YClient.connect(a.doc_url()) as on_a, YClient.connect(b.doc_url()) as on_b:
        await on_a.wait_synced()
        await on_b.wait_synced()
        on_a.doc.get("t", type=Text).insert(0, "from A")
        await on_b.wait_until(lambda: str(on_b.doc.get("t", type=Text)) == "from A")
        on_b.doc.get("t", type=Text).insert(6, ", from B")
        await on_a.wait_until(lambda: str(on_a.doc.get("t", type=Text)) == "from A, from B")
        async with YClient.connect(a.doc_url(sub="u2")) as visitor:
            await visitor.wait_synced()
            visitor.set_awareness({"user": {"name": "visitor"}})
            visitor_id = visitor.doc.client_id
            await on_b.wait_until(lambda: visitor_id in on_b.awareness_states())
        await on_b.wait_until(lambda: visitor_id not in on_b.awareness_states())
        assert str(on_b.doc.get("t", type=Text)) == "from A, from B"
        await on_a.wait_until(lambda: visitor_id not in on_a.awareness_states())


async def test_a_late_joiner_on_another_instance_gets_everything(
    start_server: StartServer,
) -> None:
    """A document edited on A is complete for a client that opens it later on B."""
    a = await start_server()
    b = await start_server()
    async with YClient.connect(a.doc_url()) as writer:
        await writer.wait_synced()
        text = writer.doc.get("t", type=Text)
        for word in ("one ", "two ", "three"):
            text.insert(len(text), word)
        async with YClient.connect(a.doc_url(sub="u3")) as witness:
            await witness.wait_until(lambda: str(witness.doc.get("t", type=Text)) == str(text))
        async with YClient.connect(b.doc_url(sub="u2")) as late:
            await late.wait_until(lambda: str(late.doc.get("t", type=Text)) == "one two three")
            assert str(late.doc.get("t", type=Text)) == str(text)


def forged_awareness(entries: list[tuple[int, int, object]]) -> bytes:
    body = write_var_uint(len(entries))
    for client_id, clock, state in entries:
        raw = json.dumps(state).encode()
        body += write_var_uint(client_id) + write_var_uint(clock) + write_var_uint(len(raw)) + raw
    return create_awareness_message(body)


async def test_a_connection_cannot_take_over_the_cursor_of_a_client_on_another_instance(
    start_server: StartServer,
) -> None:
    """A viewer on A sends a state for the id of alice, connected to B, at a later clock: A's
    clients go on seeing alice's own state, and her later states still reach them."""
    a = await start_server()
    b = await start_server()
    async with (
        YClient.connect(b.doc_url(sub="alice"), awareness_state={"name": "alice"}) as alice,
        YClient.connect(a.doc_url(sub="bob"), echo_remote_awareness=False) as bob,
    ):
        await alice.wait_synced()
        await bob.wait_synced()
        alice_id = alice.client_id
        await bob.wait_until(lambda: bob.awareness_states().get(alice_id) == {"name": "alice"})
        viewer = a.token("mallory", {"w1": "viewer"})
        async with YClient.connect(
            a.doc_url(token=viewer), awareness_state=None, echo_remote_awareness=False
        ) as mallory:
            await mallory.wait_synced()
            mallory_id = mallory.client_id
            await mallory.send_raw(
                forged_awareness(
                    [(mallory_id, 1, {"name": "mallory"}), (alice_id, 1000, {"name": "forged"})]
                )
            )
            await bob.wait_until(lambda: mallory_id in bob.awareness_states())
            assert bob.awareness_states().get(alice_id) == {"name": "alice"}
        alice.set_awareness({"name": "alice, later"})
        await bob.wait_until(
            lambda: bob.awareness_states().get(alice_id) == {"name": "alice, later"}
        )
