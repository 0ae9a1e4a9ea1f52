"""REST: document snapshots and server-side updates under `/api/v1/docs`."""

from __future__ import annotations

import hashlib
import logging

import orjson
from aiohttp import web

from collab.errors import ForbiddenError
from collab.rooms.snapshot import document_to_json
from collab.web.api.responses import dumps
from collab.web.http.requests import authenticate, note_of
from collab.web.keys import CATALOG, ROOMS

log = logging.getLogger(__name__)

BINARY = "application/octet-stream"


def _etag(kind: str, version_key: bytes) -> str:
    return '"' + kind + "-" + hashlib.sha256(version_key).hexdigest()[:32] + '"'


def _matches(if_none_match: str, etag: str) -> bool:
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


def wants_binary(request: web.Request) -> bool:
    """Whether the client asked for the Yjs update itself rather than JSON."""
    accept = request.headers.get("Accept", "")
    return BINARY in accept and "application/json" not in accept


async def get_document(request: web.Request) -> web.StreamResponse:
    identity = await authenticate(request)
    room_id, _ = await note_of(request, identity)
    await request.app[CATALOG].check_open(room_id)
    async with request.app[ROOMS].holding(room_id) as live:
        state = live.room.encode_state()
    binary = wants_binary(request)
    etag = _etag("bin" if binary else "json", state)
    headers = {"ETag": etag, "Cache-Control": "private, no-cache", "Vary": "Accept"}
    if _matches(request.headers.get("If-None-Match", ""), etag):
        return web.Response(status=304, headers=headers)
    if binary:
        return web.Response(body=state, content_type=BINARY, headers=headers)
    body = orjson.dumps({"room": room_id, "roots": document_to_json(state)})
    return web.Response(body=body, content_type="application/json", headers=headers)


async def post_update(request: web.Request) -> web.StreamResponse:
    identity = await authenticate(request)
    room_id, role = await note_of(request, identity)
    if not role.can_write:
        raise ForbiddenError(f"role {role.value!r} cannot change documents")
    if request.content_type != BINARY:
        raise web.HTTPUnsupportedMediaType(text=f"send the Yjs v1 update as Content-Type: {BINARY}")
    update = await request.read()
    if not update:
        raise web.HTTPBadRequest(text="empty body: send a Yjs v1 update")
    rooms = request.app[ROOMS]
    rooms.budget.check(identity.user_id)
    await request.app[CATALOG].check_open(room_id)
    async with rooms.holding(room_id) as live:
        changed = await rooms.apply_server_update(live, update, identity.user_id)
    return web.json_response({"room": room_id, "changed": changed}, dumps=dumps)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/docs/{workspace_id}/{note_id}", get_document)
    app.router.add_post("/api/v1/docs/{workspace_id}/{note_id}/updates", post_update)
