"""Hostile Yjs updates from a client with a valid editor token, against a live server.

Each attack is sent as a client would (raw frames on a real socket, `POST …/updates`), and
what must come of it is asserted: who is closed and how, that other rooms go on, and, through
the divergence oracle (`tests/support/oracle.py`), that the store, the REST snapshot, a fresh
stock Yjs client and the server after a restart all agree and hold nothing pending.

- D1 two updates of 8,000 inserts at one position (client 1001, then 1002): the second is too
  costly to integrate; WebSocket and REST.
- D2 the 18-byte frame whose clock wraps at 2**32 in yrs; WebSocket and REST.
- D3 one client's updates out of order: gaps answered with sync step 1, nothing applied in
  part, a stock client repairs the room.
- D4 a large update the document already holds, re-sent by four connections of one editor.
- updates announcing 2**40 of something (the allocation bomb).

Covered elsewhere:

- D5 a trickling request body: `tests/integration/test_rest_limits.py::
  test_a_trickling_body_gets_408_and_its_connection_closed_while_others_are_served`.
- D6 demo tokens printed: `tests/e2e/test_server_process.py::test_operator_keys_print_no_tokens`
  (none with the operator's keys), `::test_embedded_default_prints_demo_links`,
  `::test_tokens_never_appear_in_logs`.
- D7 oversized headers, hanging up: `tests/integration/test_http_hygiene.py::
  test_oversized_header_gets_431_json_and_no_token_is_logged`,
  `::test_overlong_request_line_gets_414_json_and_no_token_is_logged`,
  `::test_too_many_headers_get_431_json`,
  `::test_client_hanging_up_mid_post_is_one_quiet_line_not_a_server_error`,
  `::test_connections_stay_usable_after_a_refusal`.
- D8 `exp` as a string: `tests/unit/test_auth.py::test_numeric_string_time_claims_are_refused`,
  `tests/integration/test_http_hygiene.py::test_numeric_string_exp_is_refused_with_401`.
- D9 per-user rates and pings: `tests/integration/test_limits.py::
  test_a_users_connections_share_its_message_rate_and_the_one_over_is_closed`,
  `::test_pings_and_pongs_count_against_the_connection_message_rate` (one connection),
  `tests/integration/test_rest_limits.py::test_a_users_request_rate_is_refused_with_429`. Not
  covered there, so tested here: WebSocket pings of several connections of one user adding up
  to the user's rate.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pycrdt import Doc, Text, create_sync_message, create_update_message

from collab.protocol.close_codes import CloseCode
from collab.protocol.messages import Update
from collab.rooms.document import DocumentRoom
from collab.rooms.effects import Edit, PeerOrigin
from collab.web.keys import ROOMS, STORE
from tests.conftest import RunningServer, StartServer, make_settings
from tests.support.hostile import (
    COSTLY_CLIENTS,
    COSTLY_INSERTS,
    U32_WRAPPING_CLIENT,
    U32_WRAPPING_UPDATE,
    allocation_bombs,
    big_paste_update,
    costly_pair,
    half_applicable_update,
    many_structs_update,
    out_of_order_inserts,
    reference_cycle,
    subdocument_update,
    trailing_skip,
)
from tests.support.node_agent import NodeAgent
from tests.support.oracle import Divergence, check_room, check_server, restart_and_check
from tests.support.waiting import eventually, scaled
from tests.support.yclient import (
    YClient,
    YClientClosedError,
    assert_room_still_syncs,
    connect_http_error,
)

ROOM = "w1/n1"
OTHER_ROOM = "w1/elsewhere"
T = {"t": "text"}
BINARY = "application/octet-stream"
SYNC = 0
STEP1, STEP2, UPDATE = 0, 1, 2
MIB = 1024 * 1024


@pytest.fixture
def backend() -> str:
    """The embedded default (SQLite file, in-process bus); tests where the store or the bus
    could change the outcome parametrize `backend` with "scaled" (Postgres, Redis) too."""
    return "embedded"


@pytest.fixture
async def agent() -> AsyncIterator[NodeAgent]:
    """A Node process with stock Yjs clients, for the oracle and the repairs."""
    async with NodeAgent() as node:
        yield node


def sync_frames(client: YClient, sync_type: int) -> list[bytes]:
    """The sync messages of one type (step 1, step 2, update) the client received."""
    return [frame for frame in client.frames(SYNC) if frame[1:2] == bytes([sync_type])]


async def barrier(client: YClient) -> None:
    """Send a sync step 1 and wait for the server's step 2: the server reads a connection's
    frames in order, so everything the client sent before has been handled."""
    answered = len(sync_frames(client, STEP2))
    await client.send_raw(create_sync_message(client.doc))
    await client.wait_until(
        lambda: len(sync_frames(client, STEP2)) > answered, timeout=30, what="step 2 answered"
    )


async def post_update(
    server: RunningServer, sub: str, update: bytes, room_id: str = ROOM
) -> tuple[int, dict[str, Any], Mapping[str, str]]:
    """`POST …/updates` as `sub`: the status, the JSON body and the headers."""
    headers = {"Authorization": f"Bearer {server.token(sub)}", "Content-Type": BINARY}
    url = f"{server.http}/api/v1/docs/{room_id}/updates"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=update, headers=headers) as response,
    ):
        return response.status, await response.json(), response.headers


def text_update(text: str) -> bytes:
    doc: Doc[Any] = Doc()
    doc.get("t", type=Text).insert(0, text)
    return doc.get_update()


@contextlib.asynccontextmanager
async def unrelated_room(server: RunningServer) -> AsyncIterator[tuple[YClient, YClient]]:
    """A writer and a reader in another room, synced."""
    async with (
        YClient.connect(server.doc_url(OTHER_ROOM, sub="bystander-1")) as writer,
        YClient.connect(server.doc_url(OTHER_ROOM, sub="bystander-2")) as reader,
    ):
        await writer.wait_synced()
        await reader.wait_synced()
        yield writer, reader


async def marker_arrives(writer: YClient, reader: YClient, marker: str) -> None:
    """`writer` types `marker` at the start of "t"; `reader` receives it (a generous bound)."""
    writer.doc.get("t", type=Text).insert(0, marker)
    await reader.wait_until(
        lambda: str(reader.doc.get("t", type=Text)).startswith(marker),
        timeout=30,
        what=f"marker {marker!r} relayed",
    )


async def healthz(server: RunningServer) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{server.http}/healthz") as response:
        return response.status


# --- D1: two updates of 8,000 inserts at one position -------------------------------------


@pytest.mark.node
async def test_a_too_costly_update_closes_its_sender_throttles_the_user_and_is_not_stored(
    start_server: StartServer, agent: NodeAgent
) -> None:
    """Client 1001's 8,000 inserts at position 0 are applied; client 1002's, sent next on the
    same connection, would take seconds: the sender is closed with 1008 naming
    COLLAB_MAX_APPLY_MS while another room keeps relaying and /healthz answers; the user gets
    429 on a new connection and on POST; nothing of 1002 is in the store, the REST snapshot,
    a fresh stock client or the server after a restart."""
    server = await start_server()
    manager = server.app[ROOMS]
    first, second = costly_pair()
    async with (
        unrelated_room(server) as (writer, reader),
        YClient.connect(server.doc_url(sub="mallory")) as attacker,
    ):
        await attacker.wait_synced()
        await attacker.send_raw(create_update_message(first))
        await attacker.send_raw(create_update_message(second))
        await eventually(
            lambda: manager.tried_updates >= 2, what="the second update tried in the worker"
        )
        await marker_arrives(writer, reader, "while the worker tries it")
        assert await healthz(server) == 200
        assert await attacker.wait_closed(timeout=30) == CloseCode.POLICY_VIOLATION
        assert "COLLAB_MAX_APPLY_MS" in (attacker.close_reason or "")
        assert manager.costly_updates == 1
        await marker_arrives(writer, reader, "after it")

    status, _ = await connect_http_error(server.doc_url(sub="mallory"))
    assert status == 429
    status, body, headers = await post_update(server, "mallory", text_update("more"))
    assert status == 429
    assert body["error"]["code"] == "throttled"
    assert int(headers["Retry-After"]) >= 1
    status, _, _ = await post_update(server, "someone-else", text_update("fine"), OTHER_ROOM)
    assert status == 200

    _, view = await restart_and_check(server, start_server, ROOM, T, agent=agent)
    assert view.state_vector == {COSTLY_CLIENTS[0]: COSTLY_INSERTS}
    assert view.roots == {"t": "x" * COSTLY_INSERTS}


@pytest.mark.node
async def test_a_too_costly_update_posted_gets_422_and_the_user_429_after(
    start_server: StartServer, agent: NodeAgent
) -> None:
    """The same pair over `POST …/updates`: the first is applied (200), the second answered
    422 update_too_costly, the user's next write 429; nothing of client 1002 is stored."""
    server = await start_server()
    first, second = costly_pair()
    status, body, _ = await post_update(server, "mallory", first)
    assert (status, body["changed"]) == (200, True)
    status, body, _ = await post_update(server, "mallory", second)
    assert status == 422
    assert body["error"]["code"] == "update_too_costly"
    assert "COLLAB_MAX_APPLY_MS" in body["error"]["message"]
    status, body, _ = await post_update(server, "mallory", text_update("more"))
    assert (status, body["error"]["code"]) == (429, "throttled")
    assert await healthz(server) == 200

    view = await check_server(server, ROOM, T, agent=agent)
    assert view.state_vector == {COSTLY_CLIENTS[0]: COSTLY_INSERTS}


# --- D2: a clock that wraps at 2**32 in yrs -----------------------------------------------


@pytest.mark.node
@pytest.mark.parametrize("backend", ["embedded", "scaled"])
@pytest.mark.parametrize("transport", ["websocket", "rest"])
async def test_an_update_whose_clock_wraps_at_2_to_the_32_is_refused_and_not_stored(
    start_server: StartServer, agent: NodeAgent, transport: str
) -> None:
    """After client 1 typed "b", an item of client 1 at clock 2**32 + 1 (yrs would read clock
    1 and apply it, yjs would keep it pending forever) closes its sender with 1007, or is
    answered 400: every reader holds "b" and nothing pending; client 1 then types on at clocks
    1-3 and every reader agrees, before and after a restart."""
    server = await start_server()
    async with YClient.connect(server.doc_url(sub="typist"), doc=Doc(client_id=1)) as typist:
        await typist.wait_synced()
        typist.doc.get("t", type=Text).insert(0, "b")
        await barrier(typist)
        if transport == "websocket":
            async with YClient.connect(server.doc_url(sub="mallory")) as attacker:
                await attacker.wait_synced()
                await attacker.send_raw(create_update_message(U32_WRAPPING_UPDATE))
                assert await attacker.wait_closed() == CloseCode.INVALID_PAYLOAD
                assert "2**32" in (attacker.close_reason or "")
        else:
            status, body, _ = await post_update(server, "mallory", U32_WRAPPING_UPDATE)
            assert (status, body["error"]["code"]) == (400, "invalid_input")
        view = await check_server(server, ROOM, T, agent=agent)
        assert (view.roots, view.state_vector) == ({"t": "b"}, {U32_WRAPPING_CLIENT: 1})
        # Client 1's next characters take clocks 1-3, where yrs would have put the attack.
        typist.doc.get("t", type=Text).insert(0, "ok ")
        async with YClient.connect(server.doc_url(sub="checker")) as checker:
            await checker.wait_until(lambda: str(checker.doc.get("t", type=Text)) == "ok b")
    _, view = await restart_and_check(server, start_server, ROOM, T, agent=agent)
    assert (view.roots, view.state_vector) == ({"t": "ok b"}, {U32_WRAPPING_CLIENT: 4})


# --- D3: one client's updates out of order ------------------------------------------------


@pytest.mark.node
@pytest.mark.parametrize("backend", ["embedded", "scaled"])
async def test_out_of_order_updates_are_never_applied_in_part_and_a_stock_client_repairs(
    start_server: StartServer, agent: NodeAgent
) -> None:
    """base, u2, u3, u1 from one raw client: u2 and u3 are each answered with sync step 1 and
    not applied (the room stays "base", then "baase" after u1), the oracle holding after
    every step; a stock Yjs client holding the author's whole document then syncs, and every
    reader agrees on "baaasea", before and after a restart."""
    server = await start_server()
    sequence = out_of_order_inserts()
    roots = {sequence.root: "text"}
    base, u2, u3, u1 = sequence.delivery
    async with YClient.connect(server.doc_url(sub="raw")) as raw:
        await raw.wait_synced()
        await raw.send_raw(create_update_message(base))
        await barrier(raw)
        view = await check_server(server, ROOM, roots, agent=agent)
        assert view.roots == {sequence.root: "base"}
        for update in (u2, u3):
            asked = len(sync_frames(raw, STEP1))
            await raw.send_raw(create_update_message(update))
            await raw.wait_until(
                lambda asked=asked: len(sync_frames(raw, STEP1)) > asked,
                what="the room's sync step 1 for the gap",
            )
            await barrier(raw)
            view = await check_server(server, ROOM, roots, agent=agent)
            assert view.roots == {sequence.root: "base"}
            assert view.state_vector == {1: 4}
        await raw.send_raw(create_update_message(u1))
        await barrier(raw)
        view = await check_server(server, ROOM, roots, agent=agent)
        assert view.roots == {sequence.root: "baase"}
        assert view.state_vector == {1: 4, 10: 1}
        assert not raw.closed

    await agent.connect(
        "author", f"{server.ws}/ws/docs", ROOM, server.token("author"), connect=False
    )
    await agent.apply_update("author", sequence.author_state)
    await agent.reconnect("author")
    await agent.wait_synced("author")
    async with YClient.connect(server.doc_url(sub="late")) as late:
        await late.wait_until(
            lambda: str(late.doc.get(sequence.root, type=Text)) == sequence.final_text,
            timeout=30,
        )
    await agent.destroy("author")
    _, view = await restart_and_check(server, start_server, ROOM, roots, agent=agent)
    assert view.roots == {sequence.root: sequence.final_text}
    assert view.state_vector == {1: 4, 10: 3}


# --- D4: a large update the document already holds, re-sent ------------------------------


@pytest.mark.node
@pytest.mark.parametrize("shape", ["many structs", "one paste"])
async def test_re_sending_a_large_update_the_room_holds_changes_nothing(
    start_server: StartServer, agent: NodeAgent, shape: str
) -> None:
    """An editor's 2 MiB update (32,768 structs, or one pasted run) is applied once; then
    four connections of that editor each send it twice more: no new version, nothing relayed
    (an observer's next update is a later marker), no connection closed, another room keeps
    relaying, and the oracle holds."""
    server = await start_server()
    manager = server.app[ROOMS]
    large = many_structs_update() if shape == "many structs" else big_paste_update()
    assert len(large) > 2 * MIB
    frame = create_update_message(large)
    async with YClient.connect(server.doc_url(sub="paster")) as loader:
        await loader.wait_synced()
        await loader.send_raw(frame)
        await barrier(loader)
    live = manager.get(ROOM)
    assert live is not None
    version = live.room.version
    assert version > 0
    async with contextlib.AsyncExitStack() as stack:
        writer, reader = await stack.enter_async_context(unrelated_room(server))
        observer = await stack.enter_async_context(YClient.connect(server.doc_url(sub="observer")))
        resenders = [
            await stack.enter_async_context(YClient.connect(server.doc_url(sub="paster")))
            for _ in range(4)
        ]
        for client in (observer, *resenders):
            await client.wait_synced(timeout=30)

        async def resend(client: YClient) -> None:
            for _ in range(2):
                await client.send_raw(frame, timeout=30)
                await barrier(client)

        await asyncio.gather(*(resend(client) for client in resenders))
        assert live.room.version == version
        assert not any(client.closed for client in resenders)
        await marker_arrives(writer, reader, "elsewhere")
        await marker_arrives(resenders[0], observer, "marker")
        relayed = sync_frames(observer, UPDATE)
        assert len(relayed) == 1
        assert len(relayed[0]) < 1024
    view = await check_server(server, ROOM, T, agent=agent)
    assert view.roots["t"].startswith("marker")


# --- the allocation bomb ------------------------------------------------------------------


def memory_kib() -> dict[str, int]:
    """VmRSS and VmHWM (peak) of this process, which runs the in-process server, in KiB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


@pytest.mark.parametrize("announced", sorted(allocation_bombs()))
async def test_an_update_announcing_2_to_the_40_is_refused_without_allocating_for_it(
    server: RunningServer, announced: str
) -> None:
    """A small update frame announcing 2**40 clients, structs, characters, values, deleted
    ranges or bytes closes its sender with 1007; the server's memory does not jump (its
    peak RSS grows by less than 64 MiB) and the room still syncs."""
    frame = allocation_bombs()[announced]
    assert len(frame) < 64
    before = memory_kib()
    async with (
        YClient.connect(server.doc_url(sub="bystander")) as other,
        YClient.connect(server.doc_url(sub="mallory")) as attacker,
    ):
        await other.wait_synced()
        await attacker.wait_synced()
        await attacker.send_raw(frame)
        assert await attacker.wait_closed() == CloseCode.INVALID_PAYLOAD
        assert attacker.close_reason
        await assert_room_still_syncs(other, server.doc_url(sub="checker"), "still works")
    after = memory_kib()
    assert after["VmHWM"] - before["VmHWM"] < 64 * 1024, (before, after)
    assert after["VmRSS"] - before["VmRSS"] < 64 * 1024, (before, after)


# --- D9: what the rate tests elsewhere leave out ------------------------------------------


async def _close_of(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, str]:
    """Read until the server's close frame: its code and reason."""
    async with asyncio.timeout(scaled(10)):
        while True:
            message = await ws.receive()
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return ws.close_code, str(message.extra or "")


async def test_pings_of_one_users_connections_add_up_to_the_users_message_rate(
    start_server: StartServer,
) -> None:
    """WebSocket pings alone on three connections of one user, each far under its own
    message burst, pass COLLAB_USER_MESSAGES_PER_S together: the connections that ping past
    it are closed with 1008 naming the setting; another user's connection still syncs."""
    server = await start_server(make_settings(user_messages_per_s=1, user_message_burst=30))
    async with (
        YClient.connect(server.doc_url(sub="u2")) as other,
        aiohttp.ClientSession() as http,
    ):
        await other.wait_synced()
        sockets = [
            await http.ws_connect(server.doc_url(sub="u1"), autoping=False) for _ in range(3)
        ]
        # 20 rounds of 3 pings: twice the user's burst, a fiftieth of each connection's.
        for index in range(20):
            for ws in sockets:
                with contextlib.suppress(ConnectionError):
                    await ws.ping(b"%d" % index)
        closes = [await _close_of(ws) for ws in sockets]
        for ws in sockets:
            await ws.close()
        assert {code for code, _ in closes} == {CloseCode.POLICY_VIOLATION}
        assert all("COLLAB_USER_MESSAGES_PER_S" in reason for _, reason in closes)
        await assert_room_still_syncs(other, server.doc_url(sub="u3"), "pings aside")


# --- the oracle has teeth -----------------------------------------------------------------


@pytest.mark.node
async def test_the_oracle_catches_a_stored_update_left_pending(
    server: RunningServer, agent: NodeAgent
) -> None:
    """A store holding an update whose predecessor is missing (written behind the server's
    back) fails the oracle: pycrdt and yjs both report the stored structs pending."""
    sequence = out_of_order_inserts()
    base, u2, _, _ = sequence.delivery
    await server.app[STORE].append_updates([(ROOM, base, None), (ROOM, u2, None)])
    with pytest.raises(Divergence) as caught:
        await check_server(server, ROOM, {sequence.root: "text"}, agent=agent)
    assert "pycrdt keeps structs of parts [1] of 2 pending" in str(caught.value)
    assert "store (yjs): yjs keeps pending" in str(caught.value)


def test_the_room_oracle_catches_structs_applied_behind_the_rooms_back() -> None:
    """A room whose document took an update the room never accepted (here one with a gap,
    which the library keeps pending) fails the socket-free oracle."""
    sequence = out_of_order_inserts()
    base, u2, _, _ = sequence.delivery
    room = DocumentRoom(ROOM)
    room.join("peer")
    effects = room.receive(Update(base), PeerOrigin("peer", can_write=True))
    persisted = [effect.update for effect in effects if isinstance(effect, Edit)]
    check_room(room, persisted, [base])
    room.doc.apply_update(u2)
    with pytest.raises(Divergence, match=r"accepted updates \[1\] are not all in the room"):
        check_room(room, persisted, [base, u2])


# --- server bugs this suite found ---------------------------------------------------------


@pytest.mark.node
@pytest.mark.parametrize(
    "attack",
    [
        "trailing skip",
        "reference cycle",
    ],
)
async def test_an_update_naming_another_client_does_not_silence_its_edits(
    start_server: StartServer, agent: NodeAgent, attack: str
) -> None:
    """An editor sends an update that names another client's next clock but can never be
    integrated (a Skip struct only, or an item of that client and one of a made-up client
    naming each other as origin): it is refused or changes nothing, and that client's next
    edit is applied, relayed and stored like any other."""
    server = await start_server()
    update = trailing_skip(77, 2, 1000) if attack == "trailing skip" else reference_cycle(77, 2, 78)
    async with (
        YClient.connect(server.doc_url(sub="victim"), doc=Doc(client_id=77)) as victim,
        YClient.connect(server.doc_url(sub="reader")) as reader,
        YClient.connect(server.doc_url(sub="mallory")) as attacker,
    ):
        for client in (victim, reader, attacker):
            await client.wait_synced()
        text = victim.doc.get("t", type=Text)
        text.insert(0, "hi")
        await barrier(victim)
        await attacker.send_raw(create_update_message(update))
        with contextlib.suppress(YClientClosedError):
            await barrier(attacker)  # refused (1007) or handled
        text.insert(2, " there")
        await barrier(victim)
        view = await check_server(server, ROOM, T, agent=agent)
        assert view.roots == {"t": "hi there"}
        await reader.wait_until(lambda: str(reader.doc.get("t", type=Text)) == "hi there")


@pytest.mark.node
async def test_what_the_library_keeps_of_an_update_it_refuses_halfway_reaches_everyone(
    start_server: StartServer, agent: NodeAgent
) -> None:
    """An update yrs refuses after integrating part of it (client 6's "gg" before an item
    whose parent names a string item; yjs would make that item a GC struct) closes its
    sender with 1007, and the part the room's document kept is relayed and stored like any
    edit: every reader, connected before or after, and the store hold "abgg", nothing
    pending."""
    server = await start_server()
    async with (
        YClient.connect(server.doc_url(sub="typist"), doc=Doc(client_id=1)) as typist,
        YClient.connect(server.doc_url(sub="mallory")) as attacker,
    ):
        await typist.wait_synced()
        await attacker.wait_synced()
        typist.doc.get("t", type=Text).insert(0, "ab")
        await barrier(typist)
        await attacker.send_raw(create_update_message(half_applicable_update(1, 0)))
        assert await attacker.wait_closed() == CloseCode.INVALID_PAYLOAD
        await typist.wait_until(lambda: str(typist.doc.get("t", type=Text)) == "abgg")
        view = await check_server(server, ROOM, T, agent=agent)
        assert view.roots == {"t": "abgg"}


async def test_a_subdocument_does_not_break_the_json_snapshot(server: RunningServer) -> None:
    """An editor's valid update that sets a map entry to a subdocument (as a yjs client's
    `map.set(key, new Y.Doc())` does) is applied, and the note's JSON snapshot still
    answers 200."""
    status, body, _ = await post_update(server, "editor", subdocument_update())
    assert (status, body["changed"]) == (200, True)
    headers = {"Authorization": f"Bearer {server.token('reader')}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server.http}/api/v1/docs/{ROOM}", headers=headers) as response,
    ):
        assert response.status == 200, await response.text()
        roots = (await response.json())["roots"]
    (guid,) = roots["m"]["sub"].values()  # shown by its guid: {"subdocument": guid}
    assert list(roots["m"]["sub"]) == ["subdocument"]
    assert isinstance(guid, str)
    assert guid
