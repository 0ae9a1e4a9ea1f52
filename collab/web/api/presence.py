"""REST for presence: who is in a workspace now,
`GET /api/v1/workspaces/{workspace_id}/presence`."""

from __future__ import annotations

from aiohttp import web

from collab.web.api.responses import json_body
from collab.web.http.requests import authenticate, workspace_of
from collab.web.keys import PRESENCE


async def get_presence(request: web.Request) -> web.StreamResponse:
    identity = await authenticate(request)
    workspace_id, _ = workspace_of(request, identity)
    users = await request.app[PRESENCE].snapshot(workspace_id)
    return json_body({"workspace": workspace_id, "users": users})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/workspaces/{workspace_id}/presence", get_presence)
