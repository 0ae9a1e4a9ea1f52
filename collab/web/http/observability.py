"""The HTTP side of observability: request ids, request metrics and `GET /metrics`.

`observe_requests` is the outermost middleware: it gives each request an id (the client's
`X-Request-Id` when it is sane, a new one otherwise), echoed in the response's `X-Request-Id`
and carried by every log line of the request, and counts the request by route pattern and
status once the inner middlewares have turned errors into responses.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import time
import uuid

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from collab.errors import AuthError
from collab.observability.logging import conn_id_var, request_id_var
from collab.web.http.errors import Handler
from collab.web.http.metrics import Metrics
from collab.web.http.requests import offered_token
from collab.web.keys import (
    BUS,
    CATALOG,
    EMAIL_DIGESTS,
    HISTORY,
    METRICS,
    REMINDERS,
    ROOMS,
    SESSIONS,
    SETTINGS,
    WEBHOOKS,
)

REQUEST_ID = web.RequestKey("request_id", str)
REQUEST_ID_HEADER = "X-Request-Id"
# What tracing proxies and load balancers send (UUIDs, hex, ULIDs, "trace-span" pairs);
# anything else (too long, spaces, control characters) is replaced, never logged.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
UNMATCHED_ROUTE = "unmatched"


def request_id_of(request: web.Request) -> str:
    """The id of `request`: the client's `X-Request-Id` when sane, else a new random one."""
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    if _SANE_REQUEST_ID.fullmatch(offered):
        return offered
    return uuid.uuid4().hex


def route_of(request: web.Request) -> str:
    """The route pattern that matched (`/ws/docs/{workspace_id}/{note_id}`), never the raw
    path, so a scanner's random paths add no series."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


@web.middleware
async def observe_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request_id_of(request)
    request[REQUEST_ID] = request_id
    request_token = request_id_var.set(request_id)
    # A WebSocket handler sets its connection id; it must not outlive the request.
    conn_token = conn_id_var.set(None)
    started = time.perf_counter()
    # An exception other than an HTTP error becomes aiohttp's 500.
    status: int | None = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as error:
        status = error.status
        raise
    except asyncio.CancelledError:
        status = None  # the client went away or the server stops: no answer to count
        raise
    finally:
        if status is not None:
            elapsed_s = None if status == 101 else time.perf_counter() - started
            request.app[METRICS].observe_http(request.method, route_of(request), status, elapsed_s)
        conn_id_var.reset(conn_token)
        request_id_var.reset(request_token)


async def _echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    # A signal rather than the middleware: a WebSocket's 101 is sent before its handler returns.
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id


class MetricsTokenError(AuthError):
    """`/metrics` is protected and the request lacks its token (401, like any auth failure)."""

    reason = "metrics_token"


async def metrics_endpoint(request: web.Request) -> web.StreamResponse:
    token = request.app[SETTINGS].metrics_token
    if token is not None:
        offered = offered_token(request, allow_query=False)
        if not offered or not hmac.compare_digest(offered.encode(), token.reveal().encode()):
            raise MetricsTokenError(
                "GET /metrics needs Authorization: Bearer <COLLAB_METRICS_TOKEN>"
            )
    body = generate_latest(request.app[METRICS].registry)
    response = web.Response(body=body)
    # CONTENT_TYPE_LATEST carries its own charset; set it whole rather than via content_type.
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def setup_observability(app: web.Application) -> None:
    """Add the metrics registry, `/metrics`, request ids and request metrics to `app` (after
    its rooms and bus are set). `observe_requests` goes first among the middlewares, so it sees
    the final status of every request."""
    app[METRICS] = Metrics(
        app[ROOMS],
        app[BUS],
        app[SESSIONS],
        app[CATALOG].indexer,
        app[HISTORY],
        app.get(WEBHOOKS),
        reminders=app[REMINDERS],
        digests=app.get(EMAIL_DIGESTS),
    )
    app.middlewares.insert(0, observe_requests)
    app.on_response_prepare.append(_echo_request_id)
    app.router.add_get("/metrics", metrics_endpoint)
