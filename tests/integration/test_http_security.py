"""Origin allowlist on both WebSocket endpoints, CORS for /api/, security headers, gzip."""

from __future__ import annotations

import aiohttp
import orjson
import pytest
from pycrdt import Doc, Text

from collab.web.static import static_root
from tests.conftest import RunningServer, StartServer, make_settings
from tests.support.yclient import connect_http_error

ALLOWED = "https://app.example.com"
LOOKALIKES = [
    "https://app.example.com.evil.net",
    "https://evilapp.example.com",
    "http://app.example.com",
    "https://app.example.com:8443",
    "null",
]
ENDPOINTS = ["docs", "live"]


def _ws_url(server: RunningServer, endpoint: str) -> str:
    path = "/ws/docs/w1/n1" if endpoint == "docs" else "/ws/live"
    return f"{server.ws}{path}?token={server.token()}"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("origin", LOOKALIKES)
async def test_lookalike_origins_are_refused_with_403(
    start_server: StartServer, endpoint: str, origin: str
) -> None:
    """An origin that is not exactly an allowed scheme+host+port gets 403 and no socket."""
    server = await start_server(make_settings(allowed_origins=(ALLOWED,)))
    status, body = await connect_http_error(_ws_url(server, endpoint), headers={"Origin": origin})
    assert status == 403
    assert orjson.loads(body)["error"]["code"] == "forbidden"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_the_exact_allowed_origin_is_accepted(
    start_server: StartServer, endpoint: str
) -> None:
    """The allowed origin itself opens a socket on both endpoints."""
    server = await start_server(make_settings(allowed_origins=(ALLOWED,)))
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(_ws_url(server, endpoint), origin=ALLOWED) as ws,
    ):
        assert not ws.closed


async def test_security_headers_are_on_every_response(server: RunningServer) -> None:
    """Success, error, API and health responses all carry the security headers."""
    token = server.token()
    requests = [
        ("/healthz", {}),
        ("/api/v1/docs/w1/n1", _auth(token)),
        ("/api/v1/docs/w1/n1", {}),  # 401
        ("/api/v1/no-such-route", {}),  # 404
    ]
    if static_root() is not None:
        requests.append(("/", {}))
    async with aiohttp.ClientSession() as http:
        for path, headers in requests:
            async with http.get(server.http + path, headers=headers) as response:
                got = response.headers
                assert got["X-Content-Type-Options"] == "nosniff", path
                assert got["Referrer-Policy"] == "no-referrer", path
                assert got["X-Frame-Options"] == "DENY", path
                assert "frame-ancestors 'none'" in got["Content-Security-Policy"], path
                if path.startswith("/api/"):
                    assert got["Cache-Control"] == "no-store", path
                if path == "/":
                    assert "script-src 'self'" in got["Content-Security-Policy"]


async def test_a_revalidated_page_keeps_its_content_security_policy(
    server: RunningServer,
) -> None:
    """A 304 for the demo page sends no policy: browsers merge a 304's headers into the cached
    page's, and the API's `default-src 'none'` would block its script on every reload."""
    if static_root() is None:
        pytest.skip("the demo bundle is not built")
    async with aiohttp.ClientSession() as http:
        async with http.get(server.http + "/") as response:
            assert response.status == 200
            etag = response.headers["ETag"]
        async with http.get(server.http + "/", headers={"If-None-Match": etag}) as response:
            assert response.status == 304
            assert "Content-Security-Policy" not in response.headers
            assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_without_cors_origins_no_cors_headers_are_sent(server: RunningServer) -> None:
    """CORS is off by default: no Access-Control-* header, and no preflight answer."""
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{server.http}/api/v1/docs/w1/n1",
            headers={**_auth(server.token()), "Origin": ALLOWED},
        ) as response:
            assert response.status == 200
            assert not [h for h in response.headers if h.lower().startswith("access-control-")]
        async with http.options(
            f"{server.http}/api/v1/docs/w1/n1",
            headers={"Origin": ALLOWED, "Access-Control-Request-Method": "GET"},
        ) as response:
            assert response.status == 405
            assert "Access-Control-Allow-Origin" not in response.headers


async def test_cors_answers_exact_origins_only(start_server: StartServer) -> None:
    """An allowed origin gets its own origin back (never *), Vary: Origin and a preflight
    answer; a lookalike gets no CORS header and a refused preflight."""
    server = await start_server(make_settings(cors_origins=(ALLOWED,)))
    url = f"{server.http}/api/v1/docs/w1/n1"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers={**_auth(server.token()), "Origin": ALLOWED}) as response:
            assert response.status == 200
            assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
            assert "Origin" in response.headers["Vary"]
            assert "ETag" in response.headers["Access-Control-Expose-Headers"]
            assert "Access-Control-Allow-Credentials" not in response.headers
        async with http.options(
            url,
            headers={
                "Origin": ALLOWED,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization, if-none-match",
            },
        ) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
            assert "GET" in response.headers["Access-Control-Allow-Methods"]
            allowed_headers = response.headers["Access-Control-Allow-Headers"].lower()
            for header in ("authorization", "content-type", "if-none-match"):
                assert header in allowed_headers
            assert "Origin" in response.headers["Vary"]
        for origin in LOOKALIKES:
            async with http.get(url, headers={**_auth(server.token()), "Origin": origin}) as got:
                assert "Access-Control-Allow-Origin" not in got.headers, origin
                assert "Origin" in got.headers["Vary"], origin
            async with http.options(
                url, headers={"Origin": origin, "Access-Control-Request-Method": "GET"}
            ) as got:
                assert got.status == 403, origin
                assert (await got.json())["error"]["code"] == "cors_origin_not_allowed"


async def test_large_api_bodies_are_gzipped_when_accepted(server: RunningServer) -> None:
    """A JSON snapshot above 1 KiB is gzipped for a client that accepts gzip, not otherwise;
    a small one never is."""
    url = f"{server.http}/api/v1/docs/w1/n1"
    headers = _auth(server.token())
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers={**headers, "Accept-Encoding": "gzip"}) as small:
            assert small.status == 200
            assert "Content-Encoding" not in small.headers
        big = Doc()
        big.get("t", type=Text).insert(0, "lorem ipsum " * 400)
        async with http.post(
            f"{url}/updates",
            data=big.get_update(),
            headers={**headers, "Content-Type": "application/octet-stream"},
        ) as posted:
            assert posted.status == 200
        expected = str(big.get("t", type=Text))
        async with http.get(url, headers={**headers, "Accept-Encoding": "gzip"}) as response:
            assert response.status == 200
            assert response.headers["Content-Encoding"] == "gzip"
            assert "Accept-Encoding" in response.headers["Vary"]
            assert int(response.headers["Content-Length"]) < len(expected)
            assert (await response.json())["roots"]["t"] == expected
        async with http.get(url, headers={**headers, "Accept-Encoding": "identity"}) as plain:
            assert "Content-Encoding" not in plain.headers
            assert (await plain.json())["roots"]["t"] == expected
