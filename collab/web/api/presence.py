"""REST for presence: who is in a workspace now,
`GET /api/v1/workspaces/{workspace_id}/presence`."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from collab.web.http.requests import authenticate, valid_id
from collab.web.keys import NOTIFIER, PRESENCE


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(value), status=status, content_type="application/json")


async def get_presence(request: web.Request) -> web.StreamResponse:
    identity = authenticate(request)
    workspace_id = valid_id("workspace", request.match_info["workspace_id"])
    identity.role_in(workspace_id)
    await request.app[NOTIFIER].remember_identity(
        identity.user_id, identity.name, identity.workspaces
    )
    users = await request.app[PRESENCE].snapshot(workspace_id)
    return _json({"workspace": workspace_id, "users": users})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/workspaces/{workspace_id}/presence", get_presence)
