"""REST limits against a live server: the body deadline (408), requests in flight per user and
per client IP, and request rates per user and per client IP (429 with `Retry-After`)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from typing import Any

import aiohttp
import orjson
import pytest
from pycrdt import Doc, Text

from collab.web.keys import REQUEST_LIMITS
from tests.conftest import RunningServer, StartServer, make_settings
from tests.support.waiting import eventually, scaled

DOC_PATH = "/api/v1/docs/w1/n1"
BINARY = "application/octet-stream"
CLIENT_A = "203.0.113.9"
CLIENT_B = "203.0.113.10"


def _update(text: str) -> bytes:
    doc: Doc[Any] = Doc()
    doc.get("t", type=Text).insert(0, text)
    return doc.get_update()


def _headers(server: RunningServer, sub: str, client_ip: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {server.token(sub)}"}
    if client_ip is not None:
        headers["X-Forwarded-For"] = client_ip
    return headers


# aiohttp's default time to keep reading a body its handler did not read.
LINGERING_S = 10.0


class RawRequest:
    """A `POST …/updates` on its own TCP connection whose body is sent in parts, as a slow
    client sends it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def start(
        cls,
        server: RunningServer,
        headers: dict[str, str],
        body_bytes: int,
        first_part: bytes,
    ) -> RawRequest:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.server.port)
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        writer.write(
            (
                f"POST {DOC_PATH}/updates HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
                f"Content-Type: {BINARY}\r\nContent-Length: {body_bytes}\r\n{head}\r\n"
            ).encode()
            + first_part
        )
        await writer.drain()
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def trickle(self) -> None:
        """One byte at a time, slower than any client should, until the server hangs up."""
        with contextlib.suppress(ConnectionError):
            while not self.writer.is_closing():
                await self.send(b"\x00")
                await asyncio.sleep(0.05)

    async def response(self) -> tuple[int, dict[str, Any]]:
        """The status and JSON body of the answer; returns once the server closed the
        connection (the request asked for `Connection: close`)."""
        raw = await asyncio.wait_for(self.reader.read(), scaled(10))
        head, _, body = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, orjson.loads(body) if body else {}

    def close(self) -> None:
        self.writer.close()


async def test_a_trickling_body_gets_408_and_its_connection_closed_while_others_are_served(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Bodies still incomplete COLLAB_BODY_TIMEOUT_S after their headers get a JSON 408
    naming the setting and their connections are closed; meanwhile health checks, reads and
    a complete update are served, and nothing is logged as an error."""
    server = await start_server(make_settings(body_timeout_s=1.0))
    headers = _headers(server, "u1")
    slow = [await RawRequest.start(server, headers, 10_000, b"\x00") for _ in range(5)]
    tricklers = [asyncio.create_task(request.trickle()) for request in slow]
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.http}/healthz") as health:
                assert health.status == 200
            async with http.post(
                f"{server.http}{DOC_PATH}/updates",
                data=_update("in time"),
                headers={**headers, "Content-Type": BINARY},
            ) as posted:
                assert posted.status == 200
            async with http.get(f"{server.http}{DOC_PATH}", headers=headers) as read:
                assert read.status == 200
        for request in slow:
            status, body = await request.response()
            assert status == 408
            assert body["error"]["code"] == "body_timeout"
            assert "COLLAB_BODY_TIMEOUT_S" in body["error"]["message"]
    finally:
        for task in tricklers:
            task.cancel()
        await asyncio.gather(*tricklers, return_exceptions=True)
        for request in slow:
            request.close()
    in_flight = server.app[REQUEST_LIMITS].in_flight
    await eventually(lambda: in_flight.count_of_user("u1") == 0, what="slots freed")
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == []


async def test_requests_in_flight_per_user_are_refused_with_429(start_server: StartServer) -> None:
    """A user with COLLAB_MAX_REQUESTS_PER_USER requests in flight gets 429 with Retry-After
    and a body naming the limit; another user is served; once the held requests finish, the
    user is served again."""
    server = await start_server(make_settings(max_requests_per_user=2))
    update = _update("held")
    half = len(update) // 2
    headers = _headers(server, "u1")
    held = [await RawRequest.start(server, headers, len(update), update[:half]) for _ in range(2)]
    in_flight = server.app[REQUEST_LIMITS].in_flight
    try:
        await eventually(lambda: in_flight.count_of_user("u1") == 2, what="2 requests in flight")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.http}{DOC_PATH}", headers=headers) as refused:
                assert refused.status == 429
                assert int(refused.headers["Retry-After"]) >= 1
                error = (await refused.json())["error"]
            assert error["code"] == "too_many_requests_in_flight_per_user"
            assert "COLLAB_MAX_REQUESTS_PER_USER" in error["message"]
            other = _headers(server, "u2")
            async with http.get(f"{server.http}{DOC_PATH}", headers=other) as served:
                assert served.status == 200
            for request in held:
                await request.send(update[half:])
            assert [(await request.response())[0] for request in held] == [200, 200]
            await eventually(lambda: in_flight.count_of_user("u1") == 0, what="slots freed")
            async with http.get(f"{server.http}{DOC_PATH}", headers=headers) as again:
                assert again.status == 200
    finally:
        for request in held:
            request.close()


async def test_requests_in_flight_per_ip_are_refused_with_429(start_server: StartServer) -> None:
    """A client IP (named by a trusted proxy) at COLLAB_MAX_REQUESTS_PER_IP gets 429 whoever
    the user; another IP, and loopback itself, are served."""
    server = await start_server(
        make_settings(max_requests_per_ip=1, trusted_proxies=_networks("127.0.0.1"))
    )
    update = _update("held")
    held = await RawRequest.start(server, _headers(server, "u1", CLIENT_A), len(update), update[:1])
    in_flight = server.app[REQUEST_LIMITS].in_flight
    try:
        await eventually(lambda: in_flight.count_of_ip(CLIENT_A) == 1, what="1 request in flight")
        async with aiohttp.ClientSession() as http:
            url = f"{server.http}{DOC_PATH}"
            async with http.get(url, headers=_headers(server, "u2", CLIENT_A)) as refused:
                assert refused.status == 429
                assert int(refused.headers["Retry-After"]) >= 1
                error = (await refused.json())["error"]
            assert error["code"] == "too_many_requests_in_flight_per_ip"
            assert "COLLAB_MAX_REQUESTS_PER_IP" in error["message"]
            for client_ip in (CLIENT_B, None):
                async with http.get(url, headers=_headers(server, "u2", client_ip)) as served:
                    assert served.status == 200
            await held.send(update[1:])
            assert (await held.response())[0] == 200
    finally:
        held.close()


async def _get_until_refused(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], most: int = 50
) -> tuple[list[int], aiohttp.ClientResponse, dict[str, Any]]:
    """GET `url` until a 429 (at most `most` times): the statuses before it, and the 429's
    response and JSON body."""
    statuses = []
    for _ in range(most):
        async with http.get(url, headers=headers) as response:
            if response.status == 429:
                return statuses, response, await response.json()
            statuses.append(response.status)
    raise AssertionError(f"no 429 within {most} requests: {statuses}")


async def test_a_users_request_rate_is_refused_with_429(start_server: StartServer) -> None:
    """Past COLLAB_USER_REQUEST_BURST and then COLLAB_USER_REQUESTS_PER_S, a user gets 429 with
    Retry-After in whole seconds and a body naming the setting; another user is served."""
    server = await start_server(make_settings(user_requests_per_s=1, user_request_burst=3))
    url = f"{server.http}{DOC_PATH}"
    async with aiohttp.ClientSession() as http:
        served, refused, body = await _get_until_refused(http, url, _headers(server, "u1"))
        assert served[:3] == [200, 200, 200]
        assert int(refused.headers["Retry-After"]) >= 1
        assert body["error"]["code"] == "too_many_requests_per_user"
        assert "COLLAB_USER_REQUESTS_PER_S" in body["error"]["message"]
        async with http.get(url, headers=_headers(server, "u2")) as other:
            assert other.status == 200


async def test_a_client_ips_request_rate_is_refused_with_429(start_server: StartServer) -> None:
    """Requests from one client IP, whatever their users, share COLLAB_IP_REQUESTS_PER_S: past
    it they get 429 naming the setting; another IP and loopback are served."""
    server = await start_server(
        make_settings(
            ip_requests_per_s=1, ip_request_burst=2, trusted_proxies=_networks("127.0.0.1")
        )
    )
    url = f"{server.http}{DOC_PATH}"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=_headers(server, "u1", CLIENT_A)) as first:
            assert first.status == 200
        served, refused, body = await _get_until_refused(
            http, url, _headers(server, "u2", CLIENT_A)
        )
        assert served[:1] == [200]
        assert int(refused.headers["Retry-After"]) >= 1
        assert body["error"]["code"] == "too_many_requests_per_ip"
        assert "COLLAB_IP_REQUESTS_PER_S" in body["error"]["message"]
        for client_ip in (CLIENT_B, None):
            async with http.get(url, headers=_headers(server, "u3", client_ip)) as other:
                assert other.status == 200


def _networks(*values: str) -> tuple[Any, ...]:
    return tuple(ipaddress.ip_network(v) for v in values)


async def test_a_request_refused_before_its_body_arrived_ends_its_connection(
    start_server: StartServer,
) -> None:
    """A request answered 429 while its body still trickles gets the answer and its
    connection closed at once, not after aiohttp's 10 s of reading the rest (lingering):
    refused requests do not hold file handles."""
    server = await start_server(make_settings(max_requests_per_user=1))
    update = _update("held")
    headers = _headers(server, "u1")
    held = await RawRequest.start(server, headers, len(update), update[:1])
    in_flight = server.app[REQUEST_LIMITS].in_flight
    try:
        await eventually(lambda: in_flight.count_of_user("u1") == 1, what="1 request in flight")
        refused = await RawRequest.start(server, headers, len(update), update[:1])
        # Half of aiohttp's lingering time: the close comes with the answer or not at all.
        raw = await asyncio.wait_for(refused.reader.read(), LINGERING_S / 2)
        assert raw.startswith(b"HTTP/1.1 429 ")
        refused.close()
    finally:
        held.close()
