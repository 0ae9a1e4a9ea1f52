"""Limits: message and byte rates (per connection, per user, pings and pongs included),
connections per user and IP, the handshake deadline, half-open clients, awareness state size
and the per-document size cap."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import os
from typing import Any

import aiohttp
import orjson
import pytest
from pycrdt import Doc, Text
from websockets.exceptions import ConnectionClosed

from collab.protocol.close_codes import CloseCode
from collab.protocol.messages import AwarenessEntry, encode_awareness
from collab.web.keys import CONNECTIONS
from collab.web.sockets.rates import MessageRate
from tests.conftest import StartServer, make_settings
from tests.support.live import LiveClient
from tests.support.waiting import eventually, scaled
from tests.support.yclient import YClient, assert_room_still_syncs


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_message_rate_allows_the_burst_then_the_rate() -> None:
    """A full bucket takes `burst` messages at once, then `rate` per elapsed second."""
    clock = FakeClock()
    rate = MessageRate(
        messages_per_s=10, message_burst=5, bytes_per_s=0, bytes_burst=1, clock=clock
    )
    assert [rate.over(1) for _ in range(5)] == [None] * 5
    reason = rate.over(1)
    assert reason is not None
    assert "COLLAB_WS_MESSAGES_PER_S" in reason
    clock.now += 1.0  # refills 10, capped at the burst of 5
    assert [rate.over(1) for _ in range(5)] == [None] * 5
    assert rate.over(1) is not None
    clock.now += 0.25  # 2.5 more
    assert [rate.over(1) for _ in range(2)] == [None] * 2
    assert rate.over(1) is not None


def test_byte_rate_names_its_limit() -> None:
    """Bytes beyond the byte burst are refused with a reason naming the byte limit."""
    clock = FakeClock()
    rate = MessageRate(
        messages_per_s=0, message_burst=1, bytes_per_s=100, bytes_burst=1000, clock=clock
    )
    assert rate.over(900) is None
    reason = rate.over(200)
    assert reason is not None
    assert "COLLAB_WS_BYTES_PER_S" in reason


async def test_message_flood_on_docs_closes_with_1008(start_server: StartServer) -> None:
    """A connection over its message rate is closed with 1008 naming the limit; its room
    goes on."""
    server = await start_server(make_settings(ws_messages_per_s=1, ws_message_burst=10))
    async with (
        YClient.connect(server.doc_url()) as flooder,
        YClient.connect(server.doc_url(sub="u2")) as other,
    ):
        await flooder.wait_synced()
        await other.wait_synced()
        with contextlib.suppress(ConnectionClosed):
            for _ in range(200):
                await flooder.send_raw(b"\x03")  # query awareness: valid and cheap
        assert await flooder.wait_closed() == CloseCode.POLICY_VIOLATION
        assert "COLLAB_WS_MESSAGES_PER_S" in (flooder.close_reason or "")
        await assert_room_still_syncs(other, server.doc_url(sub="u3"), "still here")


async def test_byte_flood_on_docs_closes_with_1008(start_server: StartServer) -> None:
    """A connection over its byte rate is closed with 1008 naming the byte limit."""
    server = await start_server(
        make_settings(ws_bytes_per_s=1024, ws_bytes_burst=1024, max_message_bytes=4096)
    )
    async with YClient.connect(server.doc_url()) as flooder:
        await flooder.wait_synced()
        text = flooder.doc.get("t", type=Text)
        for _ in range(200):
            if flooder.closed:
                break
            text.insert(len(text), "x" * 2000)
            await flooder.flush()
        assert await flooder.wait_closed() == CloseCode.POLICY_VIOLATION
        assert "COLLAB_WS_BYTES_PER_S" in (flooder.close_reason or "")


async def test_message_flood_on_live_closes_with_1008(start_server: StartServer) -> None:
    """The live channel applies the configured message rate too (1008)."""
    server = await start_server(make_settings(ws_messages_per_s=1, ws_message_burst=5))
    async with LiveClient.connect(server.ws, server.token()) as client:
        await client.wait_event("welcome")
        for _ in range(30):
            if client.close_code is not None:
                break
            await client.send({"type": "ping"})
        assert await client.wait_closed() == CloseCode.POLICY_VIOLATION


async def _upgrade(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    """A raw WebSocket upgrade request: (status, headers, JSON body or None)."""
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        **(headers or {}),
    }
    async with aiohttp.ClientSession() as http, http.get(url, headers=upgrade) as response:
        body = await response.read() if response.status != 101 else b""
        return response.status, response.headers, orjson.loads(body) if body else None


async def test_connections_per_user_are_refused_with_429(start_server: StartServer) -> None:
    """A user at its limit (both endpoints count) gets 429 with Retry-After before any
    upgrade; a closed socket frees its slot."""
    server = await start_server(make_settings(max_connections_per_user=2))
    token = server.token("u1")
    async with YClient.connect(server.doc_url(token=token)) as first:
        await first.wait_synced()
        async with LiveClient.connect(server.ws, token) as second:
            await second.wait_event("welcome")
            for url in (f"{server.ws}/ws/live?token={token}", server.doc_url(token=token)):
                status, headers, body = await _upgrade(url.replace("ws://", "http://"))
                assert status == 429
                assert int(headers["Retry-After"]) > 0
                assert body["error"]["code"] == "too_many_connections_per_user"
                assert "COLLAB_MAX_CONNECTIONS_PER_USER" in body["error"]["message"]
            async with YClient.connect(server.doc_url(sub="u2")) as other_user:
                await other_user.wait_synced()
    counter = server.app[CONNECTIONS]
    await eventually(lambda: counter.count_of_user("u1") == 0, what="slots freed")
    async with YClient.connect(server.doc_url(token=token)) as again:
        await again.wait_synced()


async def test_connections_per_ip_use_the_forwarded_client_of_a_trusted_proxy(
    start_server: StartServer,
) -> None:
    """Behind a trusted proxy, X-Forwarded-For names the client: one client IP at its limit
    gets 429, another IP is still served."""
    server = await start_server(
        make_settings(max_connections_per_ip=2, trusted_proxies=_networks("127.0.0.1"))
    )
    client_a = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}
    async with (
        YClient.connect(server.doc_url(sub="a1"), headers=client_a) as one,
        YClient.connect(server.doc_url(sub="a2"), headers=client_a) as two,
    ):
        await one.wait_synced()
        await two.wait_synced()
        assert server.app[CONNECTIONS].count_of_ip("203.0.113.9") == 2
        url = server.doc_url(sub="a3").replace("ws://", "http://")
        status, headers, body = await _upgrade(url, client_a)
        assert status == 429
        assert "Retry-After" in headers
        assert body["error"]["code"] == "too_many_connections_per_ip"
        other_ip = {"X-Forwarded-For": "203.0.113.10"}
        async with YClient.connect(server.doc_url(sub="b1"), headers=other_ip) as three:
            await three.wait_synced()


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(start_server: StartServer) -> None:
    """Without COLLAB_TRUSTED_PROXIES the header is ignored; the loopback peer itself is not
    counted per IP, so load tests and a local proxy are not capped."""
    server = await start_server(make_settings(max_connections_per_ip=1))
    spoofed = {"X-Forwarded-For": "203.0.113.9"}
    async with (
        YClient.connect(server.doc_url(sub="a1"), headers=spoofed) as one,
        YClient.connect(server.doc_url(sub="a2"), headers=spoofed) as two,
    ):
        await one.wait_synced()
        await two.wait_synced()
        assert server.app[CONNECTIONS].count_of_ip("203.0.113.9") == 0


def _networks(*values: str) -> tuple[Any, ...]:
    return tuple(ipaddress.ip_network(v) for v in values)


async def test_request_headers_must_arrive_within_the_handshake_deadline(
    start_server: StartServer,
) -> None:
    """A connection that sends half a request line is dropped; a complete request is served."""
    server = await start_server(make_settings(handshake_timeout_s=0.5))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.server.port)
    try:
        writer.write(b"GET /ws/docs/w1/n1?token=" + server.token().encode()[:20])
        await writer.drain()
        received = await asyncio.wait_for(reader.read(), scaled(10))
        assert received == b""  # closed by the server, without an answer
    finally:
        writer.close()
    async with aiohttp.ClientSession() as http, http.get(f"{server.http}/healthz") as response:
        assert response.status == 200


async def test_half_open_client_is_dropped_and_its_presence_and_awareness_go(
    start_server: StartServer,
) -> None:
    """A client that stops answering pings is dropped after the heartbeat; the others see its
    cursor and its presence disappear."""
    server = await start_server(make_settings(heartbeat_s=0.5))
    async with (
        YClient.connect(server.doc_url(sub="watcher")) as watcher,
        LiveClient.connect(server.ws, server.token("watcher")) as live,
    ):
        await watcher.wait_synced()
        await live.wait_event("welcome")
        await live.send({"type": "subscribe", "workspace": "w1"})
        await live.wait_event("presence.snapshot")
        async with YClient.connect(
            server.doc_url(sub="ghost"),
            awareness_state={"user": {"name": "Ghost"}},
            recv_buffer_bytes=4096,
        ) as ghost:
            await ghost.wait_synced()
            ghost_id = ghost.client_id
            await watcher.wait_until(lambda: ghost_id in watcher.awareness_states())
            await live.wait_for(
                lambda c: _present(c, "ghost"), what="ghost present with its note open"
            )
            ghost.pause_reading()  # never reads again: pings go unanswered
            await watcher.wait_until(lambda: ghost_id not in watcher.awareness_states())
            await live.wait_for(lambda c: not _present(c, "ghost"), what="ghost left")
            ghost.abort()


async def test_quiet_clients_that_answer_pings_stay_connected(start_server: StartServer) -> None:
    """Silent for many intervals but answering pings: pinged, never dropped; and a client's
    own ping gets its pong on both endpoints (the server answers pings itself)."""
    server = await start_server(make_settings(heartbeat_s=0.3))
    async with aiohttp.ClientSession() as http:
        docs = await http.ws_connect(server.doc_url(), autoping=False)
        live = await http.ws_connect(f"{server.ws}/ws/live?token={server.token()}", autoping=False)
        pings = {"docs": 0, "live": 0}

        async def answer_pings(name: str, ws: aiohttp.ClientWebSocketResponse) -> None:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.PING:
                    pings[name] += 1
                    await ws.pong(msg.data)
                elif msg.type == aiohttp.WSMsgType.PONG:
                    pings[name] += 100  # our own ping answered

        readers = [
            asyncio.create_task(answer_pings("docs", docs)),
            asyncio.create_task(answer_pings("live", live)),
        ]
        try:
            await eventually(
                lambda: pings["docs"] >= 3 and pings["live"] >= 3,
                what="three pings on each connection",
            )
            assert not docs.closed
            assert not live.closed
            await docs.ping()
            await live.ping()
            await eventually(
                lambda: pings["docs"] >= 100 and pings["live"] >= 100,
                what="pongs for the client's pings",
            )
        finally:
            for reader in readers:
                reader.cancel()
            await docs.close()
            await live.close()


def _present(client: LiveClient, user_id: str) -> bool:
    """Whether the latest presence event about `user_id` shows it online."""
    present = False
    for event in client.events:
        if event.get("type") == "presence.snapshot":
            present = any(u.get("user") == user_id for u in event.get("users", []))
        elif event.get("type") in ("presence.join", "presence.update"):
            if event["user"].get("user") == user_id:
                present = True
        elif event.get("type") == "presence.leave" and event.get("user") == user_id:
            present = False
    return present


async def test_oversized_awareness_state_closes_the_connection(start_server: StartServer) -> None:
    """An awareness state above COLLAB_MAX_AWARENESS_STATE_BYTES closes its sender (1007)."""
    server = await start_server(make_settings(max_awareness_state_bytes=64))
    async with YClient.connect(server.doc_url()) as client:
        await client.wait_synced()
        state = orjson.dumps({"name": "x" * 200}).decode()
        await client.send_raw(encode_awareness([AwarenessEntry(client.client_id, 1, state)]))
        assert await client.wait_closed() == CloseCode.INVALID_PAYLOAD
        assert "64" in (client.close_reason or "")


def _text_update(doc: Doc[Any], text: str) -> bytes:
    before = doc.get_state()
    root = doc.get("t", type=Text)
    root.insert(len(root), text)
    return doc.get_update(before)


async def test_an_update_past_the_document_cap_is_refused_and_the_document_kept(
    start_server: StartServer,
) -> None:
    """Over COLLAB_MAX_DOCUMENT_BYTES: the WebSocket sender is closed with 1009, REST gets
    413, and everyone keeps the previous document; an update that adds nothing new still
    passes however large it is."""
    server = await start_server(make_settings(max_document_bytes=4096))
    headers = {"Authorization": f"Bearer {server.token()}"}
    binary = {**headers, "Content-Type": "application/octet-stream"}
    url = f"{server.http}/api/v1/docs/w1/n1"
    async with (
        YClient.connect(server.doc_url()) as writer,
        YClient.connect(server.doc_url(sub="u2")) as reader,
    ):
        await writer.wait_synced()
        await reader.wait_synced()
        writer.doc.get("t", type=Text).insert(0, "a" * 2500)
        await reader.wait_until(lambda: len(str(reader.doc.get("t", type=Text))) == 2500)
        writer.doc.get("t", type=Text).insert(2500, "b" * 6000)
        assert await writer.wait_closed() == CloseCode.MESSAGE_TOO_BIG
        assert "COLLAB_MAX_DOCUMENT_BYTES" in (writer.close_reason or "")

        async with aiohttp.ClientSession() as http:
            local = Doc()
            async with http.get(
                url, headers={**headers, "Accept": "application/octet-stream"}
            ) as r:
                state = await r.read()
            local.apply_update(state)
            async with http.post(
                f"{url}/updates", data=_text_update(local, "c" * 6000), headers=binary
            ) as refused:
                assert refused.status == 413
                assert (await refused.json())["error"]["code"] == "document_too_large"
            # The whole document again: with the document's own size it passes the cap, but
            # it adds nothing, so trying it on a copy lets it through.
            async with http.post(f"{url}/updates", data=state, headers=binary) as same:
                assert same.status == 200
                assert (await same.json())["changed"] is False
            reader.doc.get("t", type=Text).insert(0, "ok ")
            async with YClient.connect(server.doc_url(sub="u3")) as fresh:
                await fresh.wait_until(
                    lambda: str(fresh.doc.get("t", type=Text)) == "ok " + "a" * 2500
                )
            assert str(reader.doc.get("t", type=Text)) == "ok " + "a" * 2500


async def test_a_users_connections_share_its_message_rate_and_the_one_over_is_closed(
    start_server: StartServer,
) -> None:
    """Sockets of one user on both endpoints, each far under its own limits, go over
    COLLAB_USER_MESSAGES_PER_S together: a connection that sends past it is closed with 1008
    naming the setting, and another user's connection in the room still receives edits."""
    server = await start_server(make_settings(user_messages_per_s=1, user_message_burst=30))
    async with (
        YClient.connect(server.doc_url(sub="u1")) as first,
        YClient.connect(server.doc_url(sub="u1")) as second,
        LiveClient.connect(server.ws, server.token("u1")) as live,
        YClient.connect(server.doc_url(sub="u2")) as other,
    ):
        for client in (first, second, other):
            await client.wait_synced()
        await live.wait_event("welcome")
        # 20 rounds of 3 is 60 messages: twice the user's burst, and per connection far
        # below COLLAB_WS_MESSAGE_BURST (1000) and the live channel's flood control (40).
        for _ in range(20):
            if first.closed or second.closed or live.close_code is not None:
                break
            with contextlib.suppress(ConnectionClosed, ConnectionError):
                await first.send_raw(b"\x03")  # query awareness: valid and cheap
                await second.send_raw(b"\x03")
                await live.send({"type": "ping"})
        await eventually(
            lambda: first.closed or second.closed or live.close_code is not None,
            what="a connection of u1 closed",
        )
        for docs in (first, second):
            if docs.closed:
                assert docs.close_code == CloseCode.POLICY_VIOLATION
                assert "COLLAB_USER_MESSAGES_PER_S" in (docs.close_reason or "")
        if live.close_code is not None:
            assert live.close_code == CloseCode.POLICY_VIOLATION
        async with YClient.connect(server.doc_url(sub="u3")) as writer:
            await writer.wait_synced()
            writer.doc.get("t", type=Text).insert(0, "marker")
            await other.wait_until(lambda: str(other.doc.get("t", type=Text)) == "marker")


async def _close_of(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, str]:
    """Read until the server's close frame: its code and reason."""
    async with asyncio.timeout(scaled(10)):
        while True:
            message = await ws.receive()
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return ws.close_code, str(message.extra or "")


@pytest.mark.parametrize("endpoint", ["docs", "live"])
async def test_pings_and_pongs_count_against_the_connection_message_rate(
    start_server: StartServer, endpoint: str
) -> None:
    """A client that sends nothing but pings and pongs is closed with 1008 naming
    COLLAB_WS_MESSAGES_PER_S once they pass the connection's message burst."""
    server = await start_server(make_settings(ws_messages_per_s=1, ws_message_burst=10))
    url = server.doc_url() if endpoint == "docs" else f"{server.ws}/ws/live?token={server.token()}"
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url, autoping=False)
        with contextlib.suppress(ConnectionError):
            for index in range(40):
                await (ws.ping(b"p") if index % 2 else ws.pong(b"q"))
        code, reason = await _close_of(ws)
        assert code == CloseCode.POLICY_VIOLATION
        assert "COLLAB_WS_MESSAGES_PER_S" in reason
        await ws.close()
