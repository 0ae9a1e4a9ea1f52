"""HTTP edges as `collab serve` runs them: where each endpoint takes its token, JSON-only
bodies, requests aiohttp's parser refuses, and clients that hang up mid-request."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import orjson
import pytest

from collab.auth.tokens import MAX_TOKEN_BYTES
from collab.web.keys import METRICS
from tests.conftest import TEST_SECRET, make_settings
from tests.support.served import Served, exchange, served_app
from tests.support.waiting import eventually


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async with served_app(make_settings()) as app:
        yield app


def _error(body: bytes) -> dict[str, Any]:
    error: dict[str, Any] = orjson.loads(body)["error"]
    return error


def _assert_no_token_logged(caplog: pytest.LogCaptureFixture, token: str) -> None:
    for part in token.split("."):
        assert part[:12] not in caplog.text
    assert "eyJ" not in caplog.text
    assert all(record.exc_info is None for record in caplog.records)
    assert all(record.levelno < logging.ERROR for record in caplog.records)


# --- where each endpoint takes its token --------------------------------------------------


async def test_rest_401_names_the_authorization_header(served: Served) -> None:
    """REST without a token is told to send `Authorization: Bearer`, and that it ignores
    `?token=`."""
    async with aiohttp.ClientSession() as http:
        for query in ("", f"?token={served.token()}"):
            async with http.get(f"{served.http}/api/v1/docs/w1/n1{query}") as response:
                assert response.status == 401
                error = _error(await response.read())
            assert error["code"] == "unauthorized"
            assert "Authorization: Bearer" in error["message"]
            assert "only" in error["message"]
    assert "WebSocket endpoints" in error["message"]


@pytest.mark.parametrize("path", ["/ws/docs/w1/n1", "/ws/live"])
async def test_websocket_401_names_the_token_query(served: Served, path: str) -> None:
    """A WebSocket endpoint without a token is told it takes `?token=` or the header."""
    async with aiohttp.ClientSession() as http, http.get(served.http + path) as response:
        assert response.status == 401
        message = _error(await response.read())["message"]
    assert "?token=" in message
    assert "Authorization: Bearer" in message


async def test_numeric_string_exp_is_refused_with_401(served: Served) -> None:
    """A token whose `exp` is the string "1999999999" is refused on REST and WebSocket."""
    claims = {"sub": "u1", "exp": "1999999999", "workspaces": {"w1": "editor"}}
    token = jwt.encode(claims, TEST_SECRET, algorithm="HS256")
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{served.http}/api/v1/docs/w1/n1", headers={"Authorization": f"Bearer {token}"}
        ) as response:
            assert response.status == 401
            message = _error(await response.read())["message"]
        assert "token claim 'exp' must be a JSON number" in message
        async with http.get(f"{served.http}/ws/docs/w1/n1?token={token}") as response:
            assert response.status == 401


async def test_a_token_just_over_the_limit_gets_the_verifiers_401(served: Served) -> None:
    """A token one byte over the verifier's maximum reaches the verifier in the header and in
    `?token=` (the parser's limits leave room for it) and is refused as too long."""
    oversized = "x" * (MAX_TOKEN_BYTES + 1)
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{served.http}/api/v1/docs/w1/n1", headers={"Authorization": f"Bearer {oversized}"}
        ) as response:
            assert response.status == 401
            assert "longer than" in _error(await response.read())["message"]
        async with http.get(f"{served.http}/ws/docs/w1/n1?token={oversized}") as response:
            assert response.status == 401
            assert "longer than" in _error(await response.read())["message"]


# --- JSON bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
async def test_notification_post_needs_a_json_content_type(
    served: Served, content_type: str | None
) -> None:
    """A notification whose body is not declared JSON is refused with 415 and a JSON error,
    even when the body is valid JSON."""
    headers = {"Authorization": f"Bearer {served.token()}"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    body = orjson.dumps({"workspace": "w1", "recipients": ["u1"], "title": "hi"})
    async with (
        aiohttp.ClientSession(skip_auto_headers=["Content-Type"]) as http,
        http.post(f"{served.http}/api/v1/notifications", data=body, headers=headers) as response,
    ):
        assert response.status == 415
        assert response.content_type == "application/json"
        error = _error(await response.read())
    assert error["code"] == "unsupported_media_type"
    assert "Content-Type: application/json" in error["message"]


async def test_notification_post_with_a_charset_is_json(served: Served) -> None:
    """`application/json; charset=utf-8` is JSON: the body is read (here: 422, not 415)."""
    headers = {
        "Authorization": f"Bearer {served.token()}",
        "Content-Type": "application/json; charset=utf-8",
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{served.http}/api/v1/notifications", data=b"[]", headers=headers) as response,
    ):
        assert response.status == 422


# --- requests the parser refuses --------------------------------------------------------------


async def test_oversized_header_gets_431_json_and_no_token_is_logged(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """A header over the limit is answered 431 with the JSON error body; no log record holds
    any part of the token in it, and none is an error or has a traceback."""
    caplog.set_level(logging.DEBUG)
    token = served.token()
    raw = (
        f"GET /api/v1/docs/w1/n1 HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {token}{'A' * 20_000}\r\n\r\n"
    )
    status, headers, body = await exchange(served, raw.encode())
    assert status == 431
    assert headers["content-type"].startswith("application/json")
    assert _error(body)["code"] == "request_header_fields_too_large"
    assert token[:12] not in body.decode()
    await eventually(lambda: " 431 " in caplog.text, what="the refusal logged")
    _assert_no_token_logged(caplog, token)


async def test_overlong_request_line_gets_414_json_and_no_token_is_logged(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """A request line over the limit (a huge `?token=`) is answered 414 with the JSON error
    body; no log record holds any part of the token."""
    caplog.set_level(logging.DEBUG)
    token = served.token()
    raw = f"GET /ws/docs/w1/n1?token={token}{'A' * 20_000} HTTP/1.1\r\nHost: x\r\n\r\n"
    status, _, body = await exchange(served, raw.encode())
    assert status == 414
    assert _error(body)["code"] == "request_uri_too_long"
    await eventually(lambda: " 414 " in caplog.text, what="the refusal logged")
    _assert_no_token_logged(caplog, token)


async def test_too_many_headers_get_431_json(served: Served) -> None:
    """More headers than the parser allows are answered 431 with the JSON error body."""
    many = "".join(f"X-Filler-{n}: 1\r\n" for n in range(300))
    status, _, body = await exchange(served, f"GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode())
    assert status == 431
    assert "headers" in _error(body)["message"]


async def test_malformed_request_gets_400_json_that_does_not_echo_it(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """A header line without a colon is answered 400 `malformed_request`; neither the answer
    nor the log repeats the request."""
    caplog.set_level(logging.DEBUG)
    token = served.token()
    raw = f"GET /ws/live?token={token} HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n"
    status, _, body = await exchange(served, raw.encode())
    assert status == 400
    assert _error(body)["code"] == "malformed_request"
    assert token[:12] not in body.decode()
    await eventually(lambda: " 400 " in caplog.text, what="the refusal logged")
    _assert_no_token_logged(caplog, token)


# --- clients that hang up -------------------------------------------------------------------


async def test_client_hanging_up_mid_post_is_one_quiet_line_not_a_server_error(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """A POST that announces 1000 bytes, sends a few and closes is logged as one 499 access
    line (no error, no traceback) and counted as 499, never as 500."""
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    head = (
        f"POST /api/v1/notifications HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {served.token()}\r\nContent-Type: application/json\r\n"
        f"Content-Length: 1000\r\n\r\n"
    )
    _, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(head.encode() + b'{"workspace": "w1", "recip')
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    await eventually(
        lambda: "POST /api/v1/notifications 499" in caplog.text, what="the hang-up logged"
    )
    shown = [record for record in caplog.records if record.levelno >= logging.INFO]
    assert [record.getMessage().split()[:3] for record in shown] == [
        ["POST", "/api/v1/notifications", "499"]
    ]
    assert all(record.exc_info is None for record in caplog.records)
    registry = served.app[METRICS].registry
    labels = {"method": "POST", "route": "/api/v1/notifications"}
    assert registry.get_sample_value("collab_http_requests_total", labels | {"status": "499"})
    assert not registry.get_sample_value("collab_http_requests_total", labels | {"status": "500"})


async def test_connections_stay_usable_after_a_refusal(served: Served) -> None:
    """A refused malformed request closes only its own connection: the next request works."""
    status, _, _ = await exchange(served, b"GET / HTTP/1.1\r\nno colon\r\n\r\n")
    assert status == 400
    async with aiohttp.ClientSession() as http, http.get(f"{served.http}/healthz") as response:
        assert response.status == 200
