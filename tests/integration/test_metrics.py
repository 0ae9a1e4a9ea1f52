"""`GET /metrics`: Prometheus series that move with real traffic on a real server."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from pycrdt import Text

from collab.settings import Secret
from collab.web.keys import BUS, ROOMS
from tests.conftest import TEST_SECRET, RunningServer, StartServer, make_settings, token_for
from tests.support.waiting import eventually
from tests.support.yclient import YClient, connect_http_error

DOC_ROUTE = "/api/v1/docs/{workspace_id}/{note_id}"
WS_ROUTE = "/ws/docs/{workspace_id}/{note_id}"
METRICS_TOKEN = "a-metrics-token-for-the-tests-0123456789"


class Scrape:
    """One parsed exposition: sample values by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                assert key not in self.samples, f"duplicate series {key}"
                self.samples[key] = sample.value

    def value(self, name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        assert key in self.samples, f"no series {name}{labels}"
        return self.samples[key]

    def get(self, name: str, **labels: str) -> float:
        """The value of a series, 0 when it does not exist (yet)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(server: RunningServer, headers: dict[str, str] | None = None) -> Scrape:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server.http}/metrics", headers=headers) as response,
    ):
        assert response.status == 200, await response.text()
        assert response.content_type == "text/plain"
        return Scrape(await response.text())


def text_of(client: YClient) -> str:
    return str(client.doc.get("t", type=Text))


async def test_document_traffic_moves_connection_message_and_store_series(
    server: RunningServer,
) -> None:
    """Two clients editing one note show up as open connections, frames and bytes by type,
    an applied update, a store flush and bus publishes."""
    before = await scrape(server)
    assert before.value("collab_ws_connections", kind="docs") == 0
    async with YClient.connect(server.doc_url()) as a, YClient.connect(server.doc_url()) as b:
        await a.wait_synced()
        await b.wait_synced()
        a.doc.get("t", type=Text).insert(0, "measured")
        await b.wait_until(lambda: text_of(b) == "measured")
        during = await scrape(server)
        assert during.value("collab_ws_connections", kind="docs") == 2
        assert during.value("collab_ws_connections", kind="live") == 0
        assert during.value("collab_ws_connections_opened_total", kind="docs") == 2
        assert during.value("collab_rooms_loaded") == 1
    received = during.value("collab_ws_messages_received_total", type="sync_update")
    assert received >= 1
    assert during.value("collab_ws_received_bytes_total", type="sync_update") > received
    # Each client's sync step 1 is answered with a step 2, and each got the server's step 1.
    assert during.value("collab_ws_messages_received_total", type="sync_step1") == 2
    assert during.value("collab_ws_messages_sent_total", type="sync_step1") == 2
    assert during.value("collab_ws_messages_sent_total", type="sync_step2") == 2
    assert during.value("collab_ws_messages_sent_total", type="sync_update") >= 1
    assert during.value("collab_ws_sent_bytes_total", type="sync_update") > 0
    assert during.value("collab_update_apply_seconds_count") >= 1
    assert during.value("collab_update_apply_seconds_bucket", le="+Inf") == during.value(
        "collab_update_apply_seconds_count"
    )

    async def stored() -> bool:
        after = await scrape(server)
        return (
            after.value("collab_store_flush_seconds_count") >= 1
            and after.value("collab_store_backlog_updates") == 0
            and after.value("collab_bus_published_total") >= 1
            and after.value("collab_ws_connections", kind="docs") == 0
        )

    await eventually(stored, what="the edit flushed and published, the clients gone")
    after = await scrape(server)
    # A request is counted when it ends: for a WebSocket, when the connection closed.
    assert after.value("collab_http_requests_total", method="GET", route=WS_ROUTE, status="101")
    # ... with no latency sample: its "duration" is the connection's life.
    assert (
        after.get("collab_http_request_duration_seconds_count", method="GET", route=WS_ROUTE) == 0
    )
    assert after.value("collab_store_healthy") == 1
    assert after.value("collab_store_flush_failures_total") == 0


async def test_auth_failures_are_counted_by_reason_without_the_token(
    server: RunningServer,
) -> None:
    """A refused upgrade counts under its reason, and nothing of the token is exposed."""
    forged_settings = server.settings.replace(jwt_secret=Secret("x" * 32 + TEST_SECRET))
    forged = token_for(forged_settings)
    status, _ = await connect_http_error(f"{server.ws}/ws/docs/w1/n1", forged)
    assert status == 401
    status, _ = await connect_http_error(f"{server.ws}/ws/docs/w1/n1", None)
    assert status == 401
    status, _ = await connect_http_error(
        f"{server.ws}/ws/docs/w9/n1", server.token(workspaces={"w1": "editor"})
    )
    assert status == 403
    metrics = await scrape(server)
    assert metrics.value("collab_auth_failures_total", reason="bad_signature") == 1
    assert metrics.value("collab_auth_failures_total", reason="missing_token") == 1
    assert metrics.value("collab_auth_failures_total", reason="no_role") == 1
    assert metrics.value("collab_auth_failures_total", reason="expired") == 0
    assert metrics.value("collab_http_requests_total", method="GET", route=WS_ROUTE, status="401")
    assert forged not in metrics.text
    assert forged.split(".")[2] not in metrics.text


async def test_rest_requests_are_counted_by_route_pattern_and_status(
    server: RunningServer,
) -> None:
    """REST calls count under their route pattern with a latency sample; an unknown path
    counts as `unmatched`, never as itself."""
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {server.token()}"}
        for _ in range(2):
            response = await http.get(f"{server.http}/api/v1/docs/w1/n7", headers=headers)
            assert response.status == 200
        response = await http.get(f"{server.http}/api/v1/docs/w1/n7")
        assert response.status == 401
        response = await http.get(f"{server.http}/no-such-page-4711")
        assert response.status == 404
    metrics = await scrape(server)
    ok = {"method": "GET", "route": DOC_ROUTE}
    assert metrics.value("collab_http_requests_total", **ok, status="200") == 2
    assert metrics.value("collab_http_requests_total", **ok, status="401") == 1
    assert metrics.value("collab_http_request_duration_seconds_count", **ok) == 3
    assert metrics.value("collab_http_request_duration_seconds_bucket", **ok, le="+Inf") == 3
    assert metrics.value(
        "collab_http_requests_total", method="GET", route="unmatched", status="404"
    )
    assert "n7" not in metrics.text
    assert "no-such-page" not in metrics.text


async def test_queued_bytes_show_a_reader_that_fell_behind(start_server: StartServer) -> None:
    """While a client does not read, the frames waiting in its outbox are reported."""
    # The writer sends hundreds of 16 kB edits a second on purpose: no apply-time budget.
    server = await start_server(make_settings(outbox_max_bytes=256 * 1024**2, apply_ms_per_s=0))
    async with (
        YClient.connect(server.doc_url()) as writer,
        YClient.connect(server.doc_url(), recv_buffer_bytes=4096) as stalled,
    ):
        await writer.wait_synced()
        await stalled.wait_synced()
        stalled.pause_reading()
        live = server.app[ROOMS].get("w1/n1")
        assert live is not None
        text = writer.doc.get("t", type=Text)
        # Large chunks fill the kernel's socket buffers (a few MiB) in a few hundred edits.
        chunk = "q" * 16_000
        for _ in range(2000):
            text.insert(len(text), chunk)
            await writer.flush()
            if any(peer.queued_frames for peer in live.peers.values()):
                break
        # Every edit applied: nothing more joins the outbox before the scrape.
        await eventually(lambda: str(live.room.doc.get("t", type=Text)) == str(text))
        queued = sum(peer.queued_bytes for peer in live.peers.values())
        assert queued > 0
        metrics = await scrape(server)
        assert metrics.value("collab_outbox_queued_bytes", kind="docs") == queued
        assert metrics.value("collab_outbox_queued_frames", kind="docs") >= 1
        assert metrics.value("collab_slow_consumer_disconnects_total") == 0
        stalled.resume_reading()


async def test_metrics_token_is_required_when_configured(start_server: StartServer) -> None:
    """With COLLAB_METRICS_TOKEN set, /metrics answers 401 without it or with another one,
    and 200 with it."""
    server = await start_server(make_settings(metrics_token=Secret(METRICS_TOKEN)))
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": METRICS_TOKEN}):
            response = await http.get(f"{server.http}/metrics", headers=headers)
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert (await response.json())["error"]["code"] == "unauthorized"
    metrics = await scrape(server, {"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert metrics.value("collab_auth_failures_total", reason="metrics_token") == 3


async def test_live_connections_are_counted(server: RunningServer) -> None:
    """An open live-channel connection counts under kind="live" until it closes."""
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{server.ws}/ws/live?token={server.token()}") as ws,
    ):
        welcome = await ws.receive_json()
        assert welcome["type"] == "welcome"
        metrics = await scrape(server)
        assert metrics.value("collab_ws_connections", kind="live") == 1
        assert metrics.value("collab_ws_connections_opened_total", kind="live") == 1
        assert metrics.value("collab_ws_connections", kind="docs") == 0

    async def closed() -> bool:
        return (await scrape(server)).value("collab_ws_connections", kind="live") == 0

    await eventually(closed, what="the live connection no longer counted")


async def test_live_channel_messages_and_events_are_counted(server: RunningServer) -> None:
    """Messages received on /ws/live and the events sent back count, with their bytes."""
    before = await scrape(server)
    sent = b'{"type":"subscribe","workspace":"w1"}'
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{server.ws}/ws/live?token={server.token()}") as ws,
    ):
        await ws.send_str(sent.decode())
        received = [await ws.receive_str()]
        while '"presence.snapshot"' not in received[-1]:
            received.append(await ws.receive_str())
        after = await scrape(server)
    assert (
        after.value("collab_live_messages_received_total")
        - before.get("collab_live_messages_received_total")
        == 1
    )
    assert after.value("collab_live_received_bytes_total") - before.get(
        "collab_live_received_bytes_total"
    ) == len(sent)
    events = after.value("collab_live_events_sent_total") - before.get(
        "collab_live_events_sent_total"
    )
    assert events >= len(received) >= 2
    assert after.value("collab_live_sent_bytes_total") - before.get(
        "collab_live_sent_bytes_total"
    ) >= sum(len(event) for event in received)


async def test_readyz_fails_while_the_bus_is_down(server: RunningServer) -> None:
    """/readyz answers 503 naming the bus once the bus stops delivering."""
    async with aiohttp.ClientSession() as http:

        async def ready() -> bool:
            return (await http.get(f"{server.http}/readyz")).status == 200

        await eventually(ready, what="ready once the bus has connected")
        await server.app[BUS].close()
        response = await http.get(f"{server.http}/readyz")
        assert response.status == 503
        body = await response.json()
        assert body["checks"]["bus"].startswith("failed")
        assert body["checks"]["store"] == "ok"
