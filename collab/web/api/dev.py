"""Demo sign-in, only with COLLAB_DEV_MODE=1: anyone can get a token for any user.

Never registered otherwise (the routes answer 404), because it hands out credentials.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from collab.auth.tokens import Role, mint_token
from collab.web.http.requests import require_json, valid_id
from collab.web.keys import SETTINGS

DEV_TOKEN_TTL_S = 8 * 3600


async def dev_config(request: web.Request) -> web.StreamResponse:
    return web.json_response({"dev_mode": True})


async def dev_token(request: web.Request) -> web.StreamResponse:
    require_json(request)
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as error:
        raise web.HTTPBadRequest(text=f"the body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise web.HTTPUnprocessableEntity(text="the body must be a JSON object")
    sub, name, workspace = body.get("sub"), body.get("name"), body.get("workspace", "w1")
    if not isinstance(sub, str) or not isinstance(workspace, str):
        raise web.HTTPUnprocessableEntity(text="'sub' and 'workspace' must be strings")
    if name is not None and (not isinstance(name, str) or len(name) > 100):
        raise web.HTTPUnprocessableEntity(text="'name' must be a string of at most 100 characters")
    for kind, value in (("user", sub), ("workspace", workspace)):
        try:
            valid_id(kind, value)
        except web.HTTPNotFound as error:
            raise web.HTTPUnprocessableEntity(text=error.text) from None
    token = mint_token(
        request.app[SETTINGS],
        sub=sub,
        name=name or sub,
        workspaces={workspace: Role.EDITOR},
        ttl_s=DEV_TOKEN_TTL_S,
    )
    return web.json_response({"token": token})


def add_routes(app: web.Application) -> None:
    if not app[SETTINGS].dev_mode:
        return
    app.router.add_get("/api/v1/dev/config", dev_config)
    app.router.add_post("/api/v1/dev/token", dev_token)
