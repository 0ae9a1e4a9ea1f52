"""Per-note access over REST, `/api/v1/workspaces/{workspace_id}/notes/{note_id}/access`, and
access changes applied to open document connections.

`GET` (whoever may read the note, and the workspace's owners) and `PUT` (the workspace's
owners and the note's creator) with `{"visibility": "workspace" | "private", "users": {user:
"editor" | "viewer"}}`. A change applies at once on every instance (`NotesCatalog.set_access`
publishes it; `web/sockets/recheck.py` runs on each): a user the note no longer lets read it is
closed with 4403, the others write or not by their new role. Errors are JSON like everywhere:
404 for a note the caller cannot read (as if it did not exist) or that never existed, 410 for
a purged one, 403 for a reader who may not change it, 415/422 for a bad body.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from collab.auth.tokens import Role
from collab.errors import ForbiddenError
from collab.rooms.directory import MAX_USER_ID_CHARS, is_user_id
from collab.store.catalog import MAX_SHARED_USERS, NoteAccess, Visibility, room_parts
from collab.web.api.responses import json_body
from collab.web.http.requests import authenticate, read_json_object, room_of
from collab.web.keys import CATALOG

log = logging.getLogger(__name__)

MAX_ACCESS_REQUEST_BYTES = 64 * 1024


def access_json(access: NoteAccess) -> dict[str, Any]:
    return {
        "visibility": access.visibility.value,
        "users": dict(sorted(access.users.items())),
        "created_by": access.created_by,
    }


async def _access_of(request: web.Request) -> tuple[str, str, str, Role, NoteAccess]:
    """The caller, the note, their workspace role and the note's access. 404 for a note
    with no entry (410 purged) and for one they cannot read unless they own the workspace."""
    identity = await authenticate(request)
    room_id, role = room_of(request, identity)
    workspace_id, note_id = room_parts(room_id)
    catalog = request.app[CATALOG]
    missing = web.HTTPNotFound(text=f"no note {note_id!r} in workspace {workspace_id!r}")
    # Indexes a note edited but not indexed yet; raises NotePurged.
    if await catalog.entry(workspace_id, note_id) is None:
        raise missing
    # The role on the note is decided where every surface has it decided; owners manage
    # access even to a private note they cannot read.
    on_note, access = await catalog.role_on(room_id, identity.user_id, role)
    if access is None or (on_note is None and role is not Role.OWNER):
        raise missing
    return identity.user_id, workspace_id, note_id, role, access


async def get_access(request: web.Request) -> web.StreamResponse:
    _, _, _, _, access = await _access_of(request)
    return json_body(access_json(access))


async def put_access(request: web.Request) -> web.StreamResponse:
    user_id, workspace_id, note_id, role, access = await _access_of(request)
    if role is not Role.OWNER and user_id != access.created_by:
        raise ForbiddenError(
            "only the workspace's owners and the note's creator change who may read it"
        )
    body = await read_json_object(
        request,
        max_bytes=MAX_ACCESS_REQUEST_BYTES,
        fields=frozenset({"visibility", "users"}),
    )
    raw_visibility = body.get("visibility")
    if raw_visibility not in ("workspace", "private"):
        raise web.HTTPUnprocessableEntity(text="'visibility' must be 'workspace' or 'private'")
    users = _users(body.get("users", {}))
    changed = await request.app[CATALOG].set_access(
        workspace_id, note_id, visibility=Visibility(raw_visibility), users=users
    )
    if changed is None:
        raise web.HTTPNotFound(text=f"no note {note_id!r} in workspace {workspace_id!r}")
    log.info(
        "user %s made %s/%s %s with %d listed users",
        user_id,
        workspace_id,
        note_id,
        raw_visibility,
        len(users),
    )
    return json_body(access_json(changed))


def _users(raw: object) -> dict[str, str]:
    problem = (
        f"'users' must be an object of at most {MAX_SHARED_USERS} user ids "
        f"(1-{MAX_USER_ID_CHARS} characters, no control characters), each 'editor' or 'viewer'"
    )
    if not isinstance(raw, dict) or len(raw) > MAX_SHARED_USERS:
        raise web.HTTPUnprocessableEntity(text=problem)
    for user_id, listed_role in raw.items():
        if not is_user_id(user_id) or listed_role not in ("editor", "viewer"):
            raise web.HTTPUnprocessableEntity(text=problem)
    return dict(raw)


def add_routes(app: web.Application) -> None:
    path = "/api/v1/workspaces/{workspace_id}/notes/{note_id}/access"
    app.router.add_get(path, get_access)
    app.router.add_put(path, put_access)
