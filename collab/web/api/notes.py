"""REST for the notes catalog under `/api/v1/workspaces/{workspace_id}/notes`.

Any role in the workspace lists and reads entries; editors and owners create, trash and
restore notes; only owners purge. Errors are JSON like everywhere (`collab.web.http.errors`):
400 for a bad query parameter (named), 403 without the role, 404 for a note that never
existed, 409 for an id taken, 410 for a purged note, 415/422 for a bad body.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from aiohttp import web

from collab.auth.tokens import Identity, Role
from collab.errors import ForbiddenError, NotePurged
from collab.rooms.note_fields import (
    MAX_ASSIGNEE_CHARS,
    MAX_ASSIGNEES,
    MAX_TAG_CHARS,
    MAX_TAGS,
    MAX_TITLE_CHARS,
    note_content,
    parse_due,
)
from collab.store.catalog import CatalogEntry, Priority, room_parts
from collab.web.api.note_queries import catalog_query, fingerprint, make_cursor
from collab.web.api.responses import dumps
from collab.web.http.requests import (
    authenticate,
    new_note_id,
    note_of,
    read_json_object,
    valid_id,
    workspace_of,
)
from collab.web.keys import CATALOG, CATALOG_STORE, ROOMS

MAX_NOTE_REQUEST_BYTES = 1024 * 1024
MAX_TEXT_CHARS = 256 * 1024
# Each line is a paragraph, about 10 µs of the event loop to write (96-144 ms for 10,000 on
# the 2-vCPU AMD EPYC VM: loadtests/hostile_rest_cost.py, RESULTS.md).
MAX_TEXT_LINES = 10_000
_CREATE_FIELDS = frozenset(
    {"id", "title", "tags", "pinned", "priority", "due", "assignees", "text"}
)


async def _caller(request: web.Request) -> tuple[Identity, str, Role]:
    """The caller, the workspace the URL names and their role in it (the rules of every
    other endpoint: `workspace_of`)."""
    identity = await authenticate(request)
    workspace_id, role = workspace_of(request, identity)
    return identity, workspace_id, role


async def _note_caller(request: web.Request) -> tuple[str, str, Role]:
    """The workspace and note the URL names and the caller's role on it (`note_of`, as the
    document endpoints decide it: 404 for a note whose access does not let them read it)."""
    identity = await authenticate(request)
    room_id, role = await note_of(request, identity)
    workspace_id, note_id = room_parts(room_id)
    return workspace_id, note_id, role


def _require(role: Role, *allowed: Role, to: str) -> None:
    if role not in allowed:
        names = " or ".join(r.value for r in allowed)
        raise ForbiddenError(f"role {role.value!r} cannot {to}: it takes {names}")


def _entry_response(entry: CatalogEntry, status: int = 200) -> web.Response:
    return web.json_response(entry.to_json(), status=status, dumps=dumps)


async def list_notes(request: web.Request) -> web.StreamResponse:
    identity, workspace_id, _ = await _caller(request)
    # Private notes are listed to those their access lets read them only.
    query = replace(catalog_query(workspace_id, request.query), reader=identity.user_id)
    page = await request.app[CATALOG_STORE].list_notes(workspace_id, query)
    next_cursor = None
    if page.next_key is not None:
        next_cursor = make_cursor(page.next_key, fingerprint(workspace_id, query))
    body = {"notes": [entry.to_json() for entry in page.entries], "next": next_cursor}
    return web.json_response(body, dumps=dumps)


async def get_note(request: web.Request) -> web.StreamResponse:
    workspace_id, note_id, _ = await _note_caller(request)
    return _entry_response(await _existing(request, workspace_id, note_id))


async def create_note(request: web.Request) -> web.StreamResponse:
    identity, workspace_id, role = await _caller(request)
    _require(role, Role.EDITOR, Role.OWNER, to="create notes")
    body = await read_json_object(
        request, max_bytes=MAX_NOTE_REQUEST_BYTES, fields=_CREATE_FIELDS, empty=True
    )
    note_id = body.get("id")
    if note_id is None:
        note_id = new_note_id()
    elif not isinstance(note_id, str):
        raise _unprocessable("'id' must be a note id: 1-128 of A-Z a-z 0-9 . _ ~ -")
    else:
        valid_id("note", note_id)
    fields = _content_fields(body)
    budget = request.app[ROOMS].budget
    budget.check(identity.user_id)
    # Writing the document is apply time like an update's, charged to the same budget.
    started = time.perf_counter()
    content = note_content(**fields)
    over = budget.charge(identity.user_id, time.perf_counter() - started)
    if over is not None:
        raise over
    catalog = request.app[CATALOG]
    entry = await catalog.create(workspace_id, note_id, content, identity.user_id)
    if entry is None:
        raise web.HTTPConflict(
            text=f"note id {note_id!r} exists or existed in workspace {workspace_id!r}: "
            "ids are never reused; leave 'id' out to get a new one"
        )
    return _entry_response(entry, status=201)


async def delete_note(request: web.Request) -> web.StreamResponse:
    workspace_id, note_id, role = await _note_caller(request)
    purge = request.query.get("purge", "false")
    if purge not in ("true", "false"):
        raise web.HTTPBadRequest(text="parameter 'purge': use true or false")
    catalog = request.app[CATALOG]
    if purge == "true":
        _require(role, Role.OWNER, to="purge notes")
        await _existing(request, workspace_id, note_id)
        await catalog.purge(workspace_id, note_id)
        return web.Response(status=204)
    _require(role, Role.EDITOR, Role.OWNER, to="delete notes")
    await _existing(request, workspace_id, note_id)
    entry = await catalog.trash(workspace_id, note_id)
    if entry is None:  # purged meanwhile
        raise NotePurged(f"{workspace_id}/{note_id}", "the note was deleted for good")
    return _entry_response(entry)


async def restore_note(request: web.Request) -> web.StreamResponse:
    workspace_id, note_id, role = await _note_caller(request)
    _require(role, Role.EDITOR, Role.OWNER, to="restore notes")
    await _existing(request, workspace_id, note_id)
    entry = await request.app[CATALOG].restore(workspace_id, note_id)
    if entry is None:
        raise NotePurged(f"{workspace_id}/{note_id}", "the note was deleted for good")
    return _entry_response(entry)


async def _existing(request: web.Request, workspace_id: str, note_id: str) -> CatalogEntry:
    """The entry of a note (trashed or not), indexed now if it was edited but not indexed
    yet. Raises 404 for a note that never existed, `NotePurged` (410)."""
    entry = await request.app[CATALOG].entry(workspace_id, note_id)
    if entry is None:
        raise web.HTTPNotFound(text=f"no note {note_id!r} in workspace {workspace_id!r}")
    return entry


def _content_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The new note's content from the request, each field checked (422 naming it)."""
    fields: dict[str, Any] = {}
    title = body.get("title")
    if title is not None:
        if not isinstance(title, str) or len(title) > MAX_TITLE_CHARS:
            raise _unprocessable(f"'title' must be a string of at most {MAX_TITLE_CHARS}")
        fields["title"] = title
    for name, count, limit in (
        ("tags", MAX_TAGS, MAX_TAG_CHARS),
        ("assignees", MAX_ASSIGNEES, MAX_ASSIGNEE_CHARS),
    ):
        values = body.get(name)
        if values is None:
            continue
        if (
            not isinstance(values, list)
            or len(values) > count
            or not all(isinstance(v, str) and 0 < len(v) <= limit for v in values)
        ):
            raise _unprocessable(
                f"{name!r} must be a list of at most {count} strings of 1 to {limit} characters"
            )
        fields[name] = list(dict.fromkeys(values))
    pinned = body.get("pinned")
    if pinned is not None:
        if not isinstance(pinned, bool):
            raise _unprocessable("'pinned' must be true or false")
        fields["pinned"] = pinned
    priority = body.get("priority")
    if priority is not None:
        if not isinstance(priority, str) or Priority.from_label(priority) is None:
            raise _unprocessable("'priority' must be low, medium, high, urgent or null")
        fields["priority"] = priority
    due = body.get("due")
    if due is not None:
        if parse_due(due) is None:
            raise _unprocessable("'due' must be an ISO-8601 date (2026-12-24) or date-time")
        fields["due"] = due
    text = body.get("text")
    if text is not None:
        if not isinstance(text, str) or len(text) > MAX_TEXT_CHARS:
            raise _unprocessable(f"'text' must be a string of at most {MAX_TEXT_CHARS} characters")
        if text.count("\n") >= MAX_TEXT_LINES:
            raise _unprocessable(f"'text' must have at most {MAX_TEXT_LINES} lines")
        fields["text"] = text
    return fields


def _unprocessable(message: str) -> web.HTTPException:
    return web.HTTPUnprocessableEntity(text=message)


def add_routes(app: web.Application) -> None:
    base = "/api/v1/workspaces/{workspace_id}/notes"
    app.router.add_get(base, list_notes)
    app.router.add_post(base, create_note)
    app.router.add_get(base + "/{note_id}", get_note)
    app.router.add_delete(base + "/{note_id}", delete_note)
    app.router.add_post(base + "/{note_id}/restore", restore_note)
