"""Webhook endpoints, registered by operators (Bearer `COLLAB_ADMIN_TOKEN`, `http.admin`).

- `POST /api/v1/admin/webhooks` `{"url", "events": [...], "workspace"?}` → 201 with the
  endpoint and its `secret`, shown this once;
- `GET /api/v1/admin/webhooks` → `{"webhooks": [endpoint…]}` (no secrets);
- `GET /api/v1/admin/webhooks/{id}` → the endpoint; `DELETE` → 204 (its deliveries too);
- `PATCH /api/v1/admin/webhooks/{id}` `{"url"?, "events"?, "workspace"?, "enabled"?}` → 200
  with the endpoint, each field given changed alone;
- `POST /api/v1/admin/webhooks/{id}/secret/rotate` (no body, or `{"previous_valid_s"}`) → 200
  with the endpoint and its new `secret`, shown this once; the replaced secret keeps signing
  beside it for `previous_valid_s` (default a day, 0 to 7 days);
- `POST /api/v1/admin/webhooks/{id}/test` → 202 with a `webhook.test` delivery to it, due now
  (409 while it is disabled);
- `GET /api/v1/admin/webhooks/{id}/deliveries?limit=&cursor=` → `{"deliveries": [...],
  "next"}`, newest first, each with its latest attempts;
- `POST /api/v1/admin/webhooks/{id}/deliveries/{delivery_id}/retry` → 202 with the delivery,
  due now (and its endpoint enabled again); 409 while an attempt holds it.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from collab.delivery.addresses import UnsafeUrl
from collab.delivery.signing import new_secret
from collab.store.rows import format_timestamp
from collab.store.webhook_events import webhook_test_event
from collab.store.webhooks import (
    EVENT_TYPES,
    KEEP,
    MAX_DELIVERY_PAGE,
    Delivery,
    Endpoint,
    EndpointChange,
)
from collab.web.api.note_queries import bad_parameter
from collab.web.api.responses import json_body
from collab.web.http.admin import check_admin
from collab.web.http.errors import error_response
from collab.web.http.requests import decimal, read_json_object
from collab.web.keys import DATABASE, WEBHOOKS

MAX_ENDPOINTS = 100
MAX_BODY_BYTES = 16 * 1024
DEFAULT_DELIVERY_PAGE = 50
_FIELDS = frozenset({"url", "events", "workspace"})
_ROTATE_FIELDS = frozenset({"previous_valid_s"})
_CHANGE_FIELDS = frozenset({"url", "events", "workspace", "enabled"})
DEFAULT_PREVIOUS_VALID_S = 86400
"""How long a rotated-out secret keeps signing unless the operator says: a day, as hosted
webhook services do, for receivers that are redeployed with the new secret."""
MAX_PREVIOUS_VALID_S = 7 * 86400
_WORKSPACE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,127}")
_ENDPOINT_ID = re.compile(r"ep_[a-z0-9]{1,64}")
_DELIVERY_ID = re.compile(r"[1-9][0-9]{0,18}")
_KNOWN = ", ".join(EVENT_TYPES)


def endpoint_json(endpoint: Endpoint) -> dict[str, Any]:
    """An endpoint as the API lists it: never its secret."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": list(endpoint.events),
        "workspace": endpoint.workspace_id,
        "created_at": endpoint.created_at,
        "last_success_at": endpoint.last_success_at,
        "failing_since": endpoint.failing_since,
        "disabled_at": endpoint.disabled_at,
        "disabled_reason": endpoint.disabled_reason,
        "previous_secret_until": endpoint.previous_secret_until,
    }


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "message_id": delivery.message_id,
        "type": delivery.event_type,
        "state": delivery.state.value,
        "created_at": delivery.created_at,
        "attempt_count": delivery.attempt_count,
        "next_attempt_at": delivery.next_attempt_at,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "finished_at": delivery.finished_at,
        "retried_at": delivery.retried_at,
        "attempts": [{"at": a.at, "status": a.status, "error": a.error} for a in delivery.attempts],
        "payload": orjson.loads(delivery.body),
    }


async def post_webhook(request: web.Request) -> web.Response:
    check_admin(request)
    body = await read_json_object(request, max_bytes=MAX_BODY_BYTES, fields=_FIELDS)
    if "url" not in body:
        raise _unprocessable("url: required: the https:// URL to POST events to")
    events = _events(body.get("events"))
    workspace_id = _workspace(body.get("workspace"))
    try:
        target = await request.app[WEBHOOKS].client.check(body["url"])
    except UnsafeUrl as error:
        raise _unprocessable(f"url: {error}") from None
    store = request.app[DATABASE]
    if len(await store.list_endpoints()) >= MAX_ENDPOINTS:
        return error_response(
            409, "too_many_webhooks", f"at most {MAX_ENDPOINTS} webhooks; delete one first"
        )
    endpoint_id = "ep_" + secrets.token_hex(12)
    secret = new_secret()
    endpoint = Endpoint(
        id=endpoint_id,
        url=target.url,
        events=events,
        workspace_id=workspace_id,
        secret=request.app[WEBHOOKS].sealer.seal(secret, endpoint_id),
        created_at=format_timestamp(),
    )
    await store.add_endpoint(endpoint)
    return json_body({**endpoint_json(endpoint), "secret": secret}, status=201)


async def list_webhooks(request: web.Request) -> web.Response:
    check_admin(request)
    endpoints = await request.app[DATABASE].list_endpoints()
    return json_body({"webhooks": [endpoint_json(e) for e in endpoints]})


async def get_webhook(request: web.Request) -> web.Response:
    check_admin(request)
    return json_body(endpoint_json(await _endpoint(request)))


async def delete_webhook(request: web.Request) -> web.Response:
    check_admin(request)
    if not await request.app[DATABASE].delete_endpoint(_endpoint_id(request)):
        raise _no_webhook(request)
    return web.Response(status=204)


async def patch_webhook(request: web.Request) -> web.Response:
    check_admin(request)
    endpoint_id = (await _endpoint(request)).id
    body = await read_json_object(request, max_bytes=MAX_BODY_BYTES, fields=_CHANGE_FIELDS)
    if not body:
        raise _unprocessable("give at least one of url, events, workspace, enabled to change")
    url = None
    if "url" in body:
        try:
            url = (await request.app[WEBHOOKS].client.check(body["url"])).url
        except UnsafeUrl as error:
            raise _unprocessable(f"url: {error}") from None
    enabled = body.get("enabled")
    if "enabled" in body and not isinstance(enabled, bool):
        raise _unprocessable("enabled: true (enable it again) or false (disable it)")
    change = EndpointChange(
        url=url,
        events=_events(body["events"]) if "events" in body else None,
        workspace_id=_workspace(body["workspace"]) if "workspace" in body else KEEP,
        enabled=enabled,
    )
    endpoint = await request.app[DATABASE].update_endpoint(
        endpoint_id, change, at=format_timestamp()
    )
    if endpoint is None:
        raise _no_webhook(request)
    return json_body(endpoint_json(endpoint))


async def send_test_event(request: web.Request) -> web.Response:
    check_admin(request)
    endpoint = await _endpoint(request)
    if endpoint.disabled_at is not None:
        return error_response(
            409,
            "webhook_disabled",
            f"webhook {endpoint.id!r} is disabled ({endpoint.disabled_reason}); enable it first "
            '(PATCH {"enabled": true})',
        )
    event = webhook_test_event(endpoint, format_timestamp())
    delivery = await request.app[DATABASE].add_test_delivery(endpoint.id, event)
    if delivery is None:
        raise _no_webhook(request)
    return json_body(delivery_json(delivery), status=202)


async def rotate_secret(request: web.Request) -> web.Response:
    check_admin(request)
    endpoint_id = _endpoint_id(request)
    # Usually sent without a body: then no Content-Type is asked for either.
    body = (
        await read_json_object(request, max_bytes=MAX_BODY_BYTES, fields=_ROTATE_FIELDS, empty=True)
        if request.body_exists
        else {}
    )
    valid_s = _previous_valid_s(body.get("previous_valid_s", DEFAULT_PREVIOUS_VALID_S))
    secret = new_secret()
    until = format_timestamp(datetime.now(UTC) + timedelta(seconds=valid_s)) if valid_s else None
    sealed = request.app[WEBHOOKS].sealer.seal(secret, endpoint_id)
    endpoint = await request.app[DATABASE].rotate_secret(endpoint_id, sealed, previous_until=until)
    if endpoint is None:
        raise _no_webhook(request)
    return json_body({**endpoint_json(endpoint), "secret": secret})


async def list_deliveries(request: web.Request) -> web.Response:
    check_admin(request)
    endpoint = await _endpoint(request)
    limit, before = _page(request)
    page = await request.app[DATABASE].list_deliveries(endpoint.id, limit=limit + 1, before=before)
    more = len(page) > limit
    page = page[:limit]
    return json_body(
        {
            "deliveries": [delivery_json(d) for d in page],
            "next": page[-1].id if more else None,
        }
    )


async def retry_delivery(request: web.Request) -> web.Response:
    check_admin(request)
    endpoint = await _endpoint(request)
    delivery_id = request.match_info["delivery_id"]
    if not _DELIVERY_ID.fullmatch(delivery_id):
        raise web.HTTPNotFound(text=f"no delivery {delivery_id[:32]!r} of this webhook")
    now = format_timestamp()
    delivery = await request.app[DATABASE].retry_delivery(endpoint.id, delivery_id, now=now)
    if delivery is None:
        raise web.HTTPNotFound(text=f"no delivery {delivery_id!r} of webhook {endpoint.id!r}")
    if delivery.retried_at != now:
        return error_response(
            409, "delivery_in_flight", "an attempt of this delivery is under way; retry later"
        )
    return json_body(delivery_json(delivery), status=202)


def _events(raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise _unprocessable(f"events: required: a non-empty list of event types ({_KNOWN})")
    seen: list[str] = []
    for event_type in raw:
        if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
            shown = repr(event_type)[:80]
            raise _unprocessable(f"events: unknown event type {shown}; known: {_KNOWN}")
        if event_type in seen:
            raise _unprocessable(f"events: {event_type!r} is listed twice")
        seen.append(event_type)
    return tuple(seen)


def _workspace(raw: object) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not _WORKSPACE_ID.fullmatch(raw):
        raise _unprocessable(
            "workspace: a workspace id (1-128 of A-Z a-z 0-9 . _ ~ -, not first of . _ ~ -), "
            "or absent for every workspace"
        )
    return raw


def _previous_valid_s(raw: object) -> int:
    # bool is an int to Python, not to the API.
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw <= MAX_PREVIOUS_VALID_S:
        raise _unprocessable(
            f"previous_valid_s: whole seconds from 0 to {MAX_PREVIOUS_VALID_S} for which the "
            f"replaced secret keeps signing (default {DEFAULT_PREVIOUS_VALID_S})"
        )
    return raw


def _page(request: web.Request) -> tuple[int, str | None]:
    for name in request.query:
        if name not in ("limit", "cursor"):
            raise bad_parameter(name, "unknown; known are cursor, limit")
        if len(request.query.getall(name)) > 1:
            raise bad_parameter(name, "given more than once")
    limit = DEFAULT_DELIVERY_PAGE
    raw_limit = request.query.get("limit")
    if raw_limit is not None:
        parsed = decimal(raw_limit)
        if parsed is None or not 1 <= parsed <= MAX_DELIVERY_PAGE:
            raise bad_parameter("limit", f"an integer from 1 to {MAX_DELIVERY_PAGE}")
        limit = parsed
    cursor = request.query.get("cursor")
    if cursor is not None and not _DELIVERY_ID.fullmatch(cursor):
        raise bad_parameter("cursor", "not a cursor this listing returned")
    return limit, cursor


def _endpoint_id(request: web.Request) -> str:
    endpoint_id = request.match_info["webhook_id"]
    if not _ENDPOINT_ID.fullmatch(endpoint_id):
        raise _no_webhook(request)
    return endpoint_id


async def _endpoint(request: web.Request) -> Endpoint:
    endpoint = await request.app[DATABASE].get_endpoint(_endpoint_id(request))
    if endpoint is None:
        raise _no_webhook(request)
    return endpoint


def _no_webhook(request: web.Request) -> web.HTTPNotFound:
    return web.HTTPNotFound(text=f"no webhook {request.match_info['webhook_id'][:80]!r}")


def _unprocessable(message: str) -> web.HTTPUnprocessableEntity:
    return web.HTTPUnprocessableEntity(text=message)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/admin/webhooks", post_webhook)
    app.router.add_get("/api/v1/admin/webhooks", list_webhooks)
    app.router.add_get("/api/v1/admin/webhooks/{webhook_id}", get_webhook)
    app.router.add_delete("/api/v1/admin/webhooks/{webhook_id}", delete_webhook)
    app.router.add_patch("/api/v1/admin/webhooks/{webhook_id}", patch_webhook)
    app.router.add_post("/api/v1/admin/webhooks/{webhook_id}/secret/rotate", rotate_secret)
    app.router.add_post("/api/v1/admin/webhooks/{webhook_id}/test", send_test_event)
    app.router.add_get("/api/v1/admin/webhooks/{webhook_id}/deliveries", list_deliveries)
    app.router.add_post(
        "/api/v1/admin/webhooks/{webhook_id}/deliveries/{delivery_id}/retry", retry_delivery
    )
