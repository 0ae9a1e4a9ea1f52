"""REST for a workspace's member directory, `/api/v1/workspaces/{workspace_id}/members`.

Any member lists and reads members (for @-mention and assignee autocomplete); owners put
(provision or change) and remove them, and only owners see emails. Removing a member closes
their connections in the workspace with 4403 on every instance and refuses them there (403)
until an owner puts them back (`collab.rooms.directory`). Errors are JSON like everywhere:
400 for a bad query parameter or cursor (named), 403 without the role, 404 for a user who
is not a member, 415/422 for a bad body.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web

from collab.auth.tokens import Role
from collab.errors import ForbiddenError
from collab.protocol.close_codes import CloseCode
from collab.rooms.directory import (
    MAX_USER_ID_CHARS,
    MemberChange,
    MemberDirectory,
    has_control_characters,
    is_user_id,
)
from collab.settings.email import is_address
from collab.store.members import (
    MAX_MEMBER_EMAIL_CHARS,
    MAX_MEMBER_NAME_CHARS,
    MAX_MEMBER_PAGE,
    Member,
    MemberStore,
)
from collab.web.api.responses import json_body
from collab.web.http.requests import authenticate, decimal, read_json_object, workspace_of
from collab.web.keys import BUS, DIRECTORY, SESSIONS
from collab.web.sockets.recheck import recheck_connections

log = logging.getLogger(__name__)

DEFAULT_MEMBER_PAGE = 50
MAX_PREFIX_CHARS = 100
MAX_MEMBER_REQUEST_BYTES = 16 * 1024


def _bad_parameter(name: str, message: str) -> web.HTTPException:
    return web.HTTPBadRequest(text=f"invalid parameter {name!r}: {message}")


def _unprocessable(message: str) -> web.HTTPException:
    return web.HTTPUnprocessableEntity(text=message)


def _user_of(request: web.Request) -> str:
    user_id = request.match_info["user_id"]
    if not is_user_id(user_id):
        raise web.HTTPNotFound(
            text=f"invalid user id: 1-{MAX_USER_ID_CHARS} characters, no control characters"
        )
    return user_id


def member_json(member: Member, *, with_email: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "user": member.user_id,
        "name": member.name,
        "role": member.role,
        "last_seen_at": member.last_seen_at,
    }
    if with_email:
        body["email"] = member.email
        body["removed_at"] = member.removed_at
    return body


def _cursor(workspace_id: str, prefix: str, user_id: str) -> str:
    raw = orjson.dumps([workspace_id, prefix, user_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(workspace_id: str, prefix: str, cursor: str) -> str:
    """The user id a cursor continues after; 400 for one this listing did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_for, made_prefix, user_id = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise _bad_parameter("cursor", "not a cursor this listing returned") from None
    if made_for != workspace_id or made_prefix != prefix or not isinstance(user_id, str):
        raise _bad_parameter("cursor", "it belongs to another listing (workspace or q)")
    # Plain base64: a forged one may hold any string, which the store must not see.
    if not is_user_id(user_id):
        raise _bad_parameter("cursor", "not a cursor this listing returned")
    return user_id


async def list_members(request: web.Request) -> web.StreamResponse:
    identity = await authenticate(request)
    workspace_id, role = workspace_of(request, identity)
    prefix = request.query.get("q", "")
    if len(prefix) > MAX_PREFIX_CHARS or has_control_characters(prefix):
        raise _bad_parameter("q", f"at most {MAX_PREFIX_CHARS} characters, no control characters")
    limit = decimal(request.query.get("limit", str(DEFAULT_MEMBER_PAGE)))
    if limit is None or not 1 <= limit <= MAX_MEMBER_PAGE:
        raise _bad_parameter("limit", f"an integer from 1 to {MAX_MEMBER_PAGE}")
    cursor = request.query.get("cursor")
    after = "" if cursor is None else _after(workspace_id, prefix, cursor)
    members = await request.app[DIRECTORY].list_members(
        workspace_id, prefix=prefix, after=after, limit=limit + 1
    )
    page = members[:limit]
    next_cursor = _cursor(workspace_id, prefix, page[-1].user_id) if len(members) > limit else None
    with_email = role is Role.OWNER
    return json_body(
        {"members": [member_json(m, with_email=with_email) for m in page], "next": next_cursor}
    )


async def get_member(request: web.Request) -> web.StreamResponse:
    identity = await authenticate(request)
    workspace_id, role = workspace_of(request, identity)
    user_id = _user_of(request)
    member = await request.app[DIRECTORY].get(workspace_id, user_id)
    # Owners see removed members (to put them back); others only active ones.
    if member is None or (member.removed_at is not None and role is not Role.OWNER):
        raise web.HTTPNotFound(text=f"{user_id!r} is not a member of {workspace_id!r}")
    return json_body(member_json(member, with_email=role is Role.OWNER))


async def put_member(request: web.Request) -> web.StreamResponse:
    identity = await authenticate(request)
    workspace_id, role = workspace_of(request, identity)
    _require_owner(role, "add or change members")
    user_id = _user_of(request)
    body = await read_json_object(
        request,
        max_bytes=MAX_MEMBER_REQUEST_BYTES,
        fields=frozenset({"role", "name", "email"}),
    )
    raw_role = body.get("role")
    if raw_role not in ("owner", "editor", "viewer"):
        raise _unprocessable("'role' must be 'owner', 'editor' or 'viewer'")
    name = body.get("name")
    if name is not None and (
        not isinstance(name, str)
        or not name.strip()
        or len(name) > MAX_MEMBER_NAME_CHARS
        or has_control_characters(name)
    ):
        raise _unprocessable(
            f"'name' must be null or a non-empty string of at most {MAX_MEMBER_NAME_CHARS} "
            "characters, no control characters"
        )
    email = body.get("email")
    if email is not None and (
        not isinstance(email, str)
        or len(email) > MAX_MEMBER_EMAIL_CHARS
        # The rule the digests send by: an address they would refuse is refused here, not
        # kept to stop the member's digests without a word.
        or not is_address(email)
    ):
        raise _unprocessable(
            f"'email' must be null or an address like ann@example.com "
            f"(at most {MAX_MEMBER_EMAIL_CHARS} characters)"
        )
    if user_id == identity.user_id and raw_role != Role.OWNER.value:
        raise _unprocessable("an owner cannot lower their own role: ask another owner")
    member, added = await request.app[DIRECTORY].put(
        workspace_id,
        user_id,
        role=Role(raw_role),
        name=name.strip() if isinstance(name, str) else None,
        email=email,
    )
    log.info(
        "user %s %s %s in %s as %s",
        identity.user_id,
        "added" if added else "changed",
        user_id,
        workspace_id,
        raw_role,
    )
    return json_body(member_json(member, with_email=True), status=201 if added else 200)


async def delete_member(request: web.Request) -> web.StreamResponse:
    identity = await authenticate(request)
    workspace_id, role = workspace_of(request, identity)
    _require_owner(role, "remove members")
    user_id = _user_of(request)
    if user_id == identity.user_id:
        raise _unprocessable("an owner cannot remove themselves: ask another owner")
    member = await request.app[DIRECTORY].remove(workspace_id, user_id)
    if member is None:
        raise web.HTTPNotFound(text=f"{user_id!r} is not a member of {workspace_id!r}")
    log.info("user %s removed %s from %s", identity.user_id, user_id, workspace_id)
    return json_body(member_json(member, with_email=True))


def _require_owner(role: Role, to: str) -> None:
    if role is not Role.OWNER:
        raise ForbiddenError(f"role {role.value!r} cannot {to}: it takes owner")


def apply_to_connections(app: web.Application, change: MemberChange) -> None:
    """An owner's decision, on this instance's open connections: a removed member's close
    with 4403; a capped or uncapped member's document connections are re-decided (by the
    directory and each note's access: they write or stop writing)."""
    sessions = app[SESSIONS].in_workspace(change.user_id, change.workspace_id)
    if not change.removed:
        recheck_connections(app, [s.room_id for s in sessions if s.room_id is not None])
        return
    reason = f"removed from workspace {change.workspace_id}"
    for session in sessions:
        log.info("%s: %s; closing with %d", session.peer.peer_id, reason, CloseCode.FORBIDDEN)
        session.peer.request_close(CloseCode.FORBIDDEN, reason)


def setup_members(app: web.Application, store: MemberStore) -> None:
    """Add the member directory, kept in `store`, and its endpoints. Call after the bus and
    sessions are set and after the cleanup context that opens the store and starts the bus."""
    app[DIRECTORY] = MemberDirectory(
        store, app[BUS], on_change=lambda change: apply_to_connections(app, change)
    )
    base = "/api/v1/workspaces/{workspace_id}/members"
    app.router.add_get(base, list_members)
    app.router.add_get(base + "/{user_id}", get_member)
    app.router.add_put(base + "/{user_id}", put_member)
    app.router.add_delete(base + "/{user_id}", delete_member)
    app.cleanup_ctx.append(_run_directory)


async def _run_directory(app: web.Application) -> AsyncIterator[None]:
    directory = app[DIRECTORY]
    await directory.start()
    yield
    await directory.close()
