"""The HTTP surface's edges: tokens of bytes that are not UTF-8, compressed request bodies
that do not decompress, requests the parser refuses, webhook hosts that are no DNS names, and
user ids no store can hold. Served as `collab serve` serves the app (its runner, JSON errors
for parser refusals), on the memory store; the last tests on both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from collab.settings import Secret
from tests.conftest import RunningServer, StartServer, make_settings
from tests.support.rest import rest_call
from tests.support.served import Served, exchange, served_app

ADMIN = "admin-token-for-the-edge-tests-0123456789abcdef"
METRICS_TOKEN = "metrics-token-for-the-edge-tests-0123456789"


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    settings = make_settings(admin_token=Secret(ADMIN), metrics_token=Secret(METRICS_TOKEN))
    async with served_app(settings) as app:
        yield app


def request(method: str, target: bytes, headers: dict[str, bytes], body: bytes = b"") -> bytes:
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [name.encode() + b": " + value for name, value in headers.items()]
    lines += [b"Connection: close", b"Content-Length: " + str(len(body)).encode()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def error_of(body: bytes) -> dict[str, Any]:
    error: dict[str, Any] = orjson.loads(body)["error"]
    return error


# --- a bearer token that is not UTF-8 (obs-text in the header) ------------------------------

NOT_UTF8_BEARER = b"Bearer \xff\xfe.\xff.\xff"


async def test_rest_request_with_a_non_utf8_bearer_token_is_401(served: Served) -> None:
    """README (Close codes): no, malformed or wrongly signed token -> 401. A header value of
    bytes that are not UTF-8 is a malformed token, not a server error."""
    status, _, body = await exchange(
        served, request("GET", b"/api/v1/docs/w1/n1", {"Authorization": NOT_UTF8_BEARER})
    )
    assert status == 401, body[:300]
    assert error_of(body)["code"] == "unauthorized"


async def test_websocket_upgrade_with_a_non_utf8_bearer_token_is_401(served: Served) -> None:
    """The same token on a WebSocket upgrade (outside /api/, verified by the handler)."""
    status, _, body = await exchange(
        served,
        request(
            "GET",
            b"/ws/docs/w1/n1",
            {
                "Authorization": NOT_UTF8_BEARER,
                "Upgrade": b"websocket",
                "Sec-WebSocket-Version": b"13",
                "Sec-WebSocket-Key": b"dGhlIHNhbXBsZSBub25jZQ==",
            },
        ),
    )
    assert status == 401, body[:300]


async def test_metrics_with_a_non_utf8_bearer_token_is_401(served: Served) -> None:
    """README (Observability): with COLLAB_METRICS_TOKEN, a request without it gets 401."""
    status, _, body = await exchange(
        served, request("GET", b"/metrics", {"Authorization": b"Bearer \xff"})
    )
    assert status == 401, body[:300]


async def test_admin_api_with_a_non_utf8_bearer_token_is_refused(served: Served) -> None:
    """README (Webhooks): the admin API answers 401 without a token, 403 with another one."""
    for method, target in (
        ("GET", b"/api/v1/admin/webhooks"),
        ("POST", b"/api/v1/admin/revocations"),
    ):
        status, _, body = await exchange(
            served, request(method, target, {"Authorization": b"Bearer \xff"})
        )
        assert status in (401, 403), (target, status, body[:300])


# --- compressed request bodies that do not decompress -----------------------------------------


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate"])
async def test_a_request_body_that_does_not_decompress_is_400(
    served: Served, encoding: bytes
) -> None:
    """README (Close codes): 400 for a malformed body, on every endpoint. aiohttp inflates a
    request body sent with Content-Encoding; one that does not inflate is the client's
    error, not a 500 with a traceback."""
    garbage = b"this is not compressed at all" * 4
    status, _, body = await exchange(
        served,
        request(
            "POST",
            b"/api/v1/docs/w1/n1/updates",
            {
                "Authorization": f"Bearer {served.token()}".encode(),
                "Content-Type": b"application/octet-stream",
                "Content-Encoding": encoding,
            },
            garbage,
        ),
    )
    assert status == 400, body[:300]


async def test_a_json_body_that_does_not_decompress_is_400(served: Served) -> None:
    """The same on a JSON endpoint (notifications)."""
    status, _, body = await exchange(
        served,
        request(
            "POST",
            b"/api/v1/notifications",
            {
                "Authorization": f"Bearer {served.token()}".encode(),
                "Content-Type": b"application/json",
                "Content-Encoding": b"gzip",
            },
            b'{"workspace": "w1"}' * 3,
        ),
    )
    assert status == 400, body[:300]


# --- parser refusals and the security headers ----------------------------------------------


async def test_parser_refusals_carry_the_security_headers(served: Served) -> None:
    """README (HTTP security headers): nosniff, no-referrer, frame denial and a CSP are on
    every HTTP response, errors included. The JSON answers to requests the parser refuses
    (431, 414, 400) are HTTP responses too."""
    cases = [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"A" * 20_000 + b"\r\n\r\n",
        b"GET /healthz?" + b"A" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    ]
    for raw in cases:
        status, headers, _ = await exchange(served, raw)
        assert status in (400, 414, 431)
        assert headers.get("x-content-type-options") == "nosniff", status
        assert headers.get("x-frame-options") == "DENY", status
        assert "frame-ancestors 'none'" in headers.get("content-security-policy", ""), status


# --- webhook hosts that cannot be resolved ---------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["a" * 64 + ".example.com", "hooks..example.com", "x" * 300],
)
async def test_webhook_host_that_cannot_be_encoded_is_422(served: Served, host: str) -> None:
    """README (Webhooks): 422 naming the field for an unsafe url; a host name is checked by
    resolving it at registration. A label over 63 characters (or an empty one) is no DNS
    name: Python's resolver raises UnicodeError (not OSError) for it, which must become the
    422 `url:` answer, not a 500."""
    body = orjson.dumps({"url": f"https://{host}/hook", "events": ["note.created"]})
    status, _, answer = await exchange(
        served,
        request(
            "POST",
            b"/api/v1/admin/webhooks",
            {"Authorization": f"Bearer {ADMIN}".encode(), "Content-Type": b"application/json"},
            body,
        ),
    )
    assert status == 422, answer[:300]
    assert error_of(answer)["message"].startswith("url:")


# --- user ids no store can hold ----------------------------------------------------------------


@pytest.fixture
async def server(start_server: StartServer) -> RunningServer:
    return await start_server(make_settings(admin_token=Secret(ADMIN)))


async def test_a_notification_to_a_recipient_id_with_a_nul_is_422(server: RunningServer) -> None:
    """A user id never holds a control character; PostgreSQL refused the NUL in the member
    query, and the client was told to retry (503) a request that never succeeds."""
    status, body = await rest_call(
        server.http,
        server.token("u1", {"w1": "owner"}),
        "POST",
        "/api/v1/notifications",
        json={"workspace": "w1", "recipients": ["u2\u0000"], "title": "hi"},
    )
    assert status == 422, (status, body)
    assert "'recipients'" in body["error"]["message"]


async def test_a_revocation_of_a_user_id_with_a_nul_is_400(server: RunningServer) -> None:
    """PostgreSQL answered 503 "nothing was revoked"; SQLite stored a revocation no token
    can match (201)."""
    status, body = await rest_call(
        server.http,
        ADMIN,
        "POST",
        "/api/v1/admin/revocations",
        json={"user": "u1\u0000", "until": 3600},
    )
    assert status == 400, (status, body)
    assert "'user'" in body["error"]["message"]
