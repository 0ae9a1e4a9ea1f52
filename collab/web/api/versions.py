"""A note's version history over REST, under `/api/v1/docs/{workspace_id}/{note_id}/versions`.

Reading (list, one version's content, a diff) is for whoever may read the note; taking a
named version and restoring one for those who may write it; deleting a named version for
the workspace's owners. Access is decided as for the note's snapshot (`note_of`): a caller the
note does not let read it gets 404, as if it did not exist; a trashed note answers 404
`note_trashed`, a purged one 410 `note_purged` (its versions went with it).

- `GET …/versions?limit=&cursor=` → `{"versions": [version…], "next": cursor | null}`, newest
  first;
- `POST …/versions` `{"name"}` → 201 with the version;
- `GET …/versions/{id}` → `{"room", "version", "roots"}` (the snapshot's shape), or the
  version's whole state as a Yjs v1 update with `Accept: application/octet-stream`;
- `GET …/versions/{id}/diff?against=current|{other id}` → `{"before", "after", "meta",
  "body", "truncated"}`: from `against` (the note now, by default) to the version;
- `POST …/versions/{id}/restore` → `{"version", "backup", "changed"}`;
- `DELETE …/versions/{id}` → 204 (named versions only: 409 `version_not_named`).
"""

from __future__ import annotations

import logging

import orjson
from aiohttp import web

from collab.auth.tokens import Role
from collab.errors import ForbiddenError
from collab.rooms.directory import has_control_characters
from collab.rooms.snapshot import document_to_json
from collab.rooms.versions import CURRENT
from collab.store.versions import MAX_VERSION_PAGE, Version, version_number
from collab.web.api.documents import BINARY, wants_binary
from collab.web.api.note_queries import bad_parameter
from collab.web.api.responses import json_body
from collab.web.http.errors import error_response
from collab.web.http.requests import authenticate, decimal, note_of, read_json_object
from collab.web.keys import CATALOG, HISTORY, ROOMS

log = logging.getLogger(__name__)

DEFAULT_VERSION_PAGE = 50
MAX_VERSION_NAME_CHARS = 200
MAX_NAME_REQUEST_BYTES = 4096


async def _note(request: web.Request, *, write: bool = False) -> tuple[str, str, Role]:
    """The caller, the note's room and their role on it: 404 for a note they cannot read,
    403 when `write` and they cannot write, 404/410 for a trashed or purged note."""
    identity = await authenticate(request)
    room_id, role = await note_of(request, identity)
    if write and not role.can_write:
        raise ForbiddenError(f"role {role.value!r} cannot change this note's history")
    await request.app[CATALOG].check_open(room_id)
    return identity.user_id, room_id, role


def _version_id(request: web.Request) -> str:
    raw = request.match_info["version_id"]
    if not _is_id(raw):
        raise _no_version(request, raw[:40])
    return raw


def _is_id(raw: str) -> bool:
    return version_number(raw) is not None


def _no_version(request: web.Request, version_id: str) -> web.HTTPNotFound:
    note_id = request.match_info["note_id"]
    return web.HTTPNotFound(text=f"no version {version_id!r} of note {note_id!r}")


async def list_versions(request: web.Request) -> web.StreamResponse:
    _, room_id, _ = await _note(request)
    limit = _limit(request)
    before = request.query.get("cursor")
    if before is not None and not _is_id(before):
        raise bad_parameter("cursor", "use the 'next' value of the previous page")
    versions = await request.app[HISTORY].page(room_id, limit=limit, before=before)
    next_cursor = versions[-1].id if len(versions) == limit else None
    return json_body({"versions": [v.to_json() for v in versions], "next": next_cursor})


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return DEFAULT_VERSION_PAGE
    limit = decimal(raw)
    if limit is None or not 1 <= limit <= MAX_VERSION_PAGE:
        raise bad_parameter("limit", f"an integer from 1 to {MAX_VERSION_PAGE}")
    return limit


async def create_version(request: web.Request) -> web.StreamResponse:
    user_id, room_id, _ = await _note(request, write=True)
    body = await read_json_object(
        request, max_bytes=MAX_NAME_REQUEST_BYTES, fields=frozenset({"name"})
    )
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise web.HTTPUnprocessableEntity(text="'name' must be a non-empty string")
    name = name.strip()
    if len(name) > MAX_VERSION_NAME_CHARS:
        raise web.HTTPUnprocessableEntity(
            text=f"'name' is longer than {MAX_VERSION_NAME_CHARS} characters"
        )
    if has_control_characters(name):
        raise web.HTTPUnprocessableEntity(text="'name' must not contain control characters")
    version = await request.app[HISTORY].name(room_id, name, user_id)
    if version is None:
        note_id = request.match_info["note_id"]
        raise web.HTTPNotFound(
            text=f"note {note_id!r} has no content: nothing to version (a note exists from "
            "its first edit)"
        )
    return json_body(version.to_json(), status=201)


async def get_version(request: web.Request) -> web.StreamResponse:
    _, room_id, _ = await _note(request)
    version_id = _version_id(request)
    history = request.app[HISTORY]
    version = await history.get(room_id, version_id)
    state = None if version is None else await history.state(room_id, version_id)
    if version is None or state is None:
        raise _no_version(request, version_id)
    # A version never changes: its content may be cached for as long as it exists.
    headers = {"Cache-Control": "private, max-age=3600", "Vary": "Accept"}
    if wants_binary(request):
        return web.Response(body=state, content_type=BINARY, headers=headers)
    body = orjson.dumps(
        {"room": room_id, "version": version.to_json(), "roots": document_to_json(state)}
    )
    return web.Response(body=body, content_type="application/json", headers=headers)


async def diff_version(request: web.Request) -> web.StreamResponse:
    _, room_id, _ = await _note(request)
    version_id = _version_id(request)
    against = request.query.get("against", CURRENT)
    if against != CURRENT and not _is_id(against):
        raise bad_parameter("against", "'current' or the id of another version of this note")
    diff = await request.app[HISTORY].diff(room_id, version_id, against)
    if diff is None:
        missing = (
            version_id if await request.app[HISTORY].get(room_id, version_id) is None else against
        )
        raise _no_version(request, missing)
    return json_body({"before": against, "after": version_id, **diff})


async def restore_version(request: web.Request) -> web.StreamResponse:
    user_id, room_id, _ = await _note(request, write=True)
    version_id = _version_id(request)
    request.app[ROOMS].budget.check(user_id)
    restored = await request.app[HISTORY].restore(room_id, version_id, user_id)
    if restored is None:
        raise _no_version(request, version_id)
    version, backup, changed = restored
    return json_body({"version": version.to_json(), "backup": backup.to_json(), "changed": changed})


async def delete_version(request: web.Request) -> web.StreamResponse:
    _, room_id, role = await _note(request)
    if role is not Role.OWNER:
        raise ForbiddenError("only the workspace's owners delete versions")
    version_id = _version_id(request)
    history = request.app[HISTORY]
    version: Version | None = await history.get(room_id, version_id)
    if version is None:
        raise _no_version(request, version_id)
    if version.kind != "named":
        return error_response(
            409,
            "version_not_named",
            f"version {version_id} is {version.kind}: only named versions are deleted by hand; "
            "automatic ones are thinned by retention, restore ones kept until the note is purged",
        )
    await history.delete(room_id, version_id)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    base = "/api/v1/docs/{workspace_id}/{note_id}/versions"
    app.router.add_get(base, list_versions)
    app.router.add_post(base, create_version)
    app.router.add_get(base + "/{version_id}", get_version)
    app.router.add_delete(base + "/{version_id}", delete_version)
    app.router.add_get(base + "/{version_id}/diff", diff_version)
    app.router.add_post(base + "/{version_id}/restore", restore_version)
