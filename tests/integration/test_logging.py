"""Logs: JSON lines with request and connection ids, one line per refused connection, and
never a token, in-process and from a real `collab serve`."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
from pycrdt import Text
from websockets.asyncio.client import connect as ws_connect

from collab.errors import StoreError
from collab.observability.logging import JsonFormatter
from collab.settings import Secret
from collab.store.memory import MemoryStore
from tests.conftest import ProcessFactory, RunningServer, StartServer, make_settings
from tests.conftest import token_for as mint
from tests.support.waiting import eventually
from tests.support.yclient import YClient, connect_http_error

LogLines = Callable[[], list[dict[str, Any]]]
FORGED_SECRET = "a-different-secret-than-the-server-has-0123456789"


@pytest.fixture
def json_log() -> Iterator[LogLines]:
    """The `collab` loggers' records as parsed JSON lines, formatted as they are emitted (so
    in the context of the task that logged them, as in production)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("collab")
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


def refusals(lines: list[dict[str, Any]], request_id: str) -> list[dict[str, Any]]:
    return [
        line
        for line in lines
        if line.get("request_id") == request_id and line["message"].startswith("refused ")
    ]


async def test_lines_of_a_connection_carry_its_request_and_connection_ids(
    server: RunningServer, json_log: LogLines
) -> None:
    """What is logged while a WebSocket is open names the upgrade's request id (the one the
    client sent) and the connection's id."""
    headers = {"X-Request-Id": "req-conn-7"}
    async with YClient.connect(server.doc_url(), headers=headers) as client:
        await client.wait_synced()
        client.doc.get("t", type=Text).insert(0, "logged")
        await client.flush()

    def left() -> bool:
        return any(" left w1/n1" in line["message"] for line in json_log())

    await eventually(left, what="the connection's close logged")
    lines = json_log()
    joined = next(line for line in lines if "joined w1/n1" in line["message"])
    conn_id = re.fullmatch(r"conn (\w+): user u1 joined w1/n1 as editor", joined["message"])
    assert conn_id is not None
    assert joined["conn_id"] == conn_id.group(1)
    assert joined["request_id"] == "req-conn-7"
    assert joined["level"] == "INFO"
    assert joined["logger"] == "collab.web.ws_docs"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", joined["time"])
    closing = next(line for line in lines if " left w1/n1" in line["message"])
    assert closing["conn_id"] == joined["conn_id"]
    assert closing["request_id"] == "req-conn-7"


async def test_a_line_a_message_causes_carries_the_connection_ids(
    server: RunningServer, json_log: LogLines
) -> None:
    """A line logged while the server handles a client's message (here, a text frame it
    refuses) names the upgrade's request id and the connection's id, as the join line does."""
    url = server.doc_url()
    async with ws_connect(url, additional_headers={"X-Request-Id": "req-msg-9"}) as socket:
        await socket.send("not the y-websocket protocol")
        await eventually(
            lambda: any("closing with" in line["message"] for line in json_log()),
            what="the refusal logged",
        )
    lines = json_log()
    joined = next(line for line in lines if "joined w1/n1" in line["message"])
    refused = next(line for line in lines if "closing with" in line["message"])
    assert refused["message"].startswith(f"conn {joined['conn_id']}: closing with ")
    assert refused["conn_id"] == joined["conn_id"]
    assert refused["request_id"] == "req-msg-9"


async def test_each_refused_connection_is_logged_once_with_its_reason(
    start_server: StartServer, json_log: LogLines
) -> None:
    """A refused upgrade or request (401, 403, 503) is logged exactly once, with its status
    and reason, and without the token."""
    store = MemoryStore()
    server = await start_server(store=store)
    url = f"{server.ws}/ws/docs/w1/n1"
    forged = mint(server.settings.replace(jwt_secret=Secret(FORGED_SECRET)))
    outsider = server.token(workspaces={"w2": "editor"})
    status, _ = await connect_http_error(url, forged, headers={"X-Request-Id": "req-forged"})
    assert status == 401
    status, _ = await connect_http_error(url, outsider, headers={"X-Request-Id": "req-no-role"})
    assert status == 403
    async with aiohttp.ClientSession() as http:
        response = await http.get(
            f"{server.http}/api/v1/docs/w1/n1", headers={"X-Request-Id": "req-rest"}
        )
        assert response.status == 401
    store.fail_with = StoreError("database unreachable")
    status, _ = await connect_http_error(
        f"{server.ws}/ws/docs/w1/n2", server.token(), headers={"X-Request-Id": "req-down"}
    )
    assert status == 503
    store.fail_with = None
    lines = json_log()
    expected = {
        "req-forged": (401, "bad_signature", "WARNING", "upgrade"),
        "req-no-role": (403, "no_role", "WARNING", "upgrade"),
        "req-rest": (401, "missing_token", "WARNING", "request"),
        "req-down": (503, "room_unavailable", "INFO", "upgrade"),
    }
    for request_id, (status, reason, level, kind) in expected.items():
        found = refusals(lines, request_id)
        assert len(found) == 1, (request_id, found)
        line = found[0]
        assert (line["status"], line["reason"], line["level"]) == (status, reason, level)
        assert line["message"].startswith(f"refused {kind} GET /")
    text = json.dumps(lines)
    for token in (forged, outsider):
        assert token not in text
        assert token.split(".")[2] not in text


async def test_request_id_is_echoed_or_replaced(server: RunningServer) -> None:
    """A sane X-Request-Id comes back as sent, on REST and on the WebSocket upgrade; a missing
    or unsafe one is replaced by a new random id."""
    async with aiohttp.ClientSession() as http:
        response = await http.get(f"{server.http}/healthz", headers={"X-Request-Id": "abc-123"})
        assert response.headers["X-Request-Id"] == "abc-123"
        seen = set()
        for offered in (None, "has space", "x" * 200, "line\tbreak", "-leading-dash"):
            headers = {"X-Request-Id": offered} if offered is not None else {}
            response = await http.get(f"{server.http}/healthz", headers=headers)
            echoed = response.headers["X-Request-Id"]
            assert re.fullmatch(r"[0-9a-f]{32}", echoed), (offered, echoed)
            seen.add(echoed)
        assert len(seen) == 5
        response = await http.get(f"{server.http}/api/v1/docs/w1/n1")
        assert response.status == 401
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-Id"])
    async with ws_connect(
        server.doc_url(), additional_headers={"X-Request-Id": "ws-req-9"}, proxy=None
    ) as ws:
        assert ws.response is not None
        assert ws.response.headers["X-Request-Id"] == "ws-req-9"


def _parsed_json_lines(log_text: str) -> list[dict[str, Any]]:
    lines = []
    for raw in log_text.splitlines():
        line = json.loads(raw)
        assert isinstance(line, dict), raw
        assert {"time", "level", "logger", "message"} <= line.keys(), raw
        lines.append(line)
    return lines


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_server_logs_never_contain_tokens(
    server_processes: ProcessFactory, log_format: str
) -> None:
    """`collab serve` logs an accepted and a refused upgrade with `?token=` (access log,
    connection lines, the refusal) without the token or the query string, in both formats;
    in JSON every line parses and carries the request and connection ids."""
    process = await server_processes.start(COLLAB_LOG_FORMAT=log_format)
    settings = make_settings()
    accepted = mint(settings, sub="alice")
    expired = mint(settings, sub="alice", ttl_s=-3600)
    url = f"{process.ws}/ws/docs/w1/n1"
    async with YClient.connect(url, token=accepted, headers={"X-Request-Id": "req-ok"}) as client:
        await client.wait_synced()
        client.doc.get("t", type=Text).insert(0, "secret-free")
        await client.flush()
    status, _ = await connect_http_error(url, expired, headers={"X-Request-Id": "req-expired"})
    assert status == 401

    def both_access_lines_written() -> bool:
        text = process.log_text()
        return "GET /ws/docs/w1/n1 101 " in text and "GET /ws/docs/w1/n1 401 " in text

    await eventually(both_access_lines_written, what="access log lines of both upgrades")
    log_text = process.log_text()
    for token in (accepted, expired):
        assert token not in log_text
        assert token.split(".")[2] not in log_text
    assert "token=" not in log_text
    assert "?" not in "".join(
        line for line in log_text.splitlines() if "GET /ws/docs/w1/n1" in line
    )
    refusal = "refused upgrade GET /ws/docs/w1/n1: 401 expired: token expired"
    assert log_text.count(refusal) == 1
    if log_format == "text":
        return

    lines = _parsed_json_lines(log_text)
    access_ok = [line for line in lines if "GET /ws/docs/w1/n1 101 " in line["message"]]
    assert [line["request_id"] for line in access_ok] == ["req-ok"]
    assert access_ok[0]["logger"] == "aiohttp.access"
    joined = next(line for line in lines if "user alice joined w1/n1" in line["message"])
    assert joined["request_id"] == "req-ok"
    assert joined["message"].startswith(f"conn {joined['conn_id']}: ")
    (refused,) = refusals(lines, "req-expired")
    assert (refused["level"], refused["status"], refused["reason"]) == ("WARNING", 401, "expired")
    access_refused = [line for line in lines if "GET /ws/docs/w1/n1 401 " in line["message"]]
    assert [line["request_id"] for line in access_refused] == ["req-expired"]
