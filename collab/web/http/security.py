"""HTTP hardening: security headers on every response, explicit CORS for `/api/`, gzip.

- `add_security_headers` (an `on_response_prepare` hook, so it sees every response: handler
  results, JSON errors, static files, WebSocket upgrades) sets `nosniff`, `no-referrer`,
  `X-Frame-Options: DENY`, a Content-Security-Policy (the bundled demo's for HTML, `default-src
  'none'` for everything else; none on a 304, which keeps the cached response's) and
  `Cache-Control: no-store` on `/api/` responses, and the CORS response headers for an allowed
  origin.
- `cors_and_gzip` (a middleware) answers CORS preflights for `/api/` and gzips large API
  bodies; compression must be chosen before aiohttp prepares the headers, which is before
  `on_response_prepare` runs.

CORS is off unless `COLLAB_CORS_ORIGINS` names exact origins: then only those get
`Access-Control-Allow-Origin` (never `*`) and no `Access-Control-Allow-Credentials`, since the
API authenticates with `Authorization: Bearer`, not cookies.
"""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp.web import ContentCoding

from collab.web.http.errors import Handler, error_response
from collab.web.http.security_headers import API_CSP, DEMO_CSP, SECURITY_HEADERS
from collab.web.keys import SETTINGS

API_PREFIX = "/api/"
GZIP_MIN_BYTES = 1024
CORS_ALLOWED_METHODS = "GET, POST, OPTIONS"
CORS_ALLOWED_HEADERS = "Authorization, Content-Type, If-None-Match"
CORS_EXPOSED_HEADERS = "ETag, Retry-After"
CORS_MAX_AGE_S = 600


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.update(SECURITY_HEADERS)
    if response.status != 304:
        # A 304 carries no body to choose a policy by, and its headers replace the stored
        # response's (RFC 9111 4.3.4): without one, the page keeps the policy it was sent with.
        is_html = (response.content_type or "").startswith("text/html")
        headers["Content-Security-Policy"] = DEMO_CSP if is_html else API_CSP
    if request.path.startswith(API_PREFIX):
        # User data: no browser or proxy cache keeps it. Clients that want revalidation keep
        # the ETag themselves and send If-None-Match.
        headers[hdrs.CACHE_CONTROL] = "no-store"
        origin = _allowed_origin(request)
        if origin is not None:
            headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = CORS_EXPOSED_HEADERS
        if request.app[SETTINGS].cors_origins:
            # The answer depends on Origin whenever CORS is on, allowed or not.
            _add_vary(response, "Origin")


@web.middleware
async def cors_and_gzip(request: web.Request, handler: Handler) -> web.StreamResponse:
    if (
        request.method == hdrs.METH_OPTIONS
        and request.path.startswith(API_PREFIX)
        and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
        and request.app[SETTINGS].cors_origins
    ):
        return _preflight(request)
    response = await handler(request)
    if (
        request.path.startswith(API_PREFIX)
        and isinstance(response, web.Response)
        and not response.prepared
        and isinstance(response.body, bytes)
        and len(response.body) > GZIP_MIN_BYTES
        and hdrs.CONTENT_ENCODING not in response.headers
    ):
        _add_vary(response, "Accept-Encoding")
        if "gzip" in request.headers.get(hdrs.ACCEPT_ENCODING, "").lower():
            response.enable_compression(ContentCoding.gzip)
    return response


def _preflight(request: web.Request) -> web.StreamResponse:
    origin = _allowed_origin(request)
    if origin is None:
        return error_response(
            403,
            "cors_origin_not_allowed",
            f"origin {request.headers.get(hdrs.ORIGIN, '')[:100]!r} is not in COLLAB_CORS_ORIGINS",
        )
    # on_response_prepare adds Allow-Origin and Vary: Origin like on any API response.
    return web.Response(
        status=204,
        headers={
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: CORS_ALLOWED_METHODS,
            hdrs.ACCESS_CONTROL_ALLOW_HEADERS: CORS_ALLOWED_HEADERS,
            hdrs.ACCESS_CONTROL_MAX_AGE: str(CORS_MAX_AGE_S),
            hdrs.VARY: "Access-Control-Request-Method, Access-Control-Request-Headers",
        },
    )


def _allowed_origin(request: web.Request) -> str | None:
    """The request's Origin when it is exactly one of COLLAB_CORS_ORIGINS, else None."""
    allowed = request.app[SETTINGS].cors_origins
    origin = request.headers.get(hdrs.ORIGIN)
    if not allowed or origin is None:
        return None
    # Browsers send the origin lowercase and without a trailing slash; compare exactly.
    return origin if origin in allowed else None


def _add_vary(response: web.StreamResponse, value: str) -> None:
    current = [v.strip() for v in response.headers.get(hdrs.VARY, "").split(",") if v.strip()]
    if value.lower() not in (v.lower() for v in current):
        response.headers[hdrs.VARY] = ", ".join([*current, value])
