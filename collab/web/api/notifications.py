"""REST for notifications under `/api/v1/notifications`: send, list, mark read."""

from __future__ import annotations

from aiohttp import web

from collab.errors import ForbiddenError
from collab.rooms.directory import MAX_USER_ID_CHARS, is_user_id
from collab.store.notifications import MAX_PAGE, NewNotification
from collab.web.api.responses import json_body
from collab.web.http.requests import (
    authenticate,
    decimal,
    read_json_object,
    role_in,
    valid_id,
)
from collab.web.keys import DIRECTORY, NOTIFICATIONS, NOTIFIER

MAX_RECIPIENTS = 100
MAX_TITLE_CHARS = 200
MAX_BODY_CHARS = 4000
MAX_LINK_CHARS = 1000
MAX_NOTIFICATION_REQUEST_BYTES = 64 * 1024


def _unprocessable(message: str) -> web.HTTPException:
    return web.HTTPUnprocessableEntity(text=message)


async def post_notification(request: web.Request) -> web.StreamResponse:
    identity = await authenticate(request)
    body = await read_json_object(
        request,
        max_bytes=MAX_NOTIFICATION_REQUEST_BYTES,
        fields=frozenset({"workspace", "recipients", "title", "body", "link"}),
    )
    workspace_id = body.get("workspace")
    if not isinstance(workspace_id, str):
        raise _unprocessable("'workspace' must be a workspace id")
    valid_id("workspace", workspace_id)
    role_in(request, identity, workspace_id)
    recipients = body.get("recipients")
    if (
        not isinstance(recipients, list)
        or not recipients
        or len(recipients) > MAX_RECIPIENTS
        or not all(is_user_id(r) for r in recipients)
    ):
        raise _unprocessable(
            f"'recipients' must be a list of 1 to {MAX_RECIPIENTS} user ids "
            f"(1-{MAX_USER_ID_CHARS} characters, no control characters)"
        )
    title = body.get("title")
    if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE_CHARS:
        raise _unprocessable(f"'title' must be a non-empty string of at most {MAX_TITLE_CHARS}")
    text = body.get("body", "")
    if not isinstance(text, str) or len(text) > MAX_BODY_CHARS:
        raise _unprocessable(f"'body' must be a string of at most {MAX_BODY_CHARS} characters")
    link = body.get("link")
    if link is not None and (not isinstance(link, str) or len(link) > MAX_LINK_CHARS):
        raise _unprocessable(f"'link' must be a string of at most {MAX_LINK_CHARS} characters")
    notifier = request.app[NOTIFIER]
    unique = list(dict.fromkeys(recipients))
    strangers = await request.app[DIRECTORY].non_members(workspace_id, unique)
    if strangers:
        raise ForbiddenError(
            f"not members of workspace {workspace_id!r}: {', '.join(strangers[:10])} "
            "(a member has opened the workspace or was added by an owner, and not removed)"
        )
    payload = {
        "title": title,
        "body": text,
        "link": link,
        "actor": identity.user_id,
        "actor_name": identity.name,
    }
    created = await notifier.notify(
        [NewNotification(r, workspace_id, "message", payload) for r in unique]
    )
    return json_body({"notifications": [n.to_json() for n in created]}, status=201)


async def list_notifications(request: web.Request) -> web.StreamResponse:
    identity = await authenticate(request)
    after = _int_query(request, "after", 0)
    limit = _int_query(request, "limit", 100)
    if not 1 <= limit <= MAX_PAGE:
        raise web.HTTPBadRequest(text=f"?limit must be between 1 and {MAX_PAGE}")
    unread_raw = request.query.get("unread", "false").lower()
    if unread_raw not in ("true", "false", "1", "0"):
        raise web.HTTPBadRequest(text="?unread must be true or false")
    store = request.app[NOTIFICATIONS]
    page = await store.list_notifications(
        identity.user_id, after_id=after, unread_only=unread_raw in ("true", "1"), limit=limit
    )
    return json_body(
        {
            "notifications": [n.to_json() for n in page],
            "unread": await store.unread_count(identity.user_id),
            "next_after": page[-1].id if page else after,
            "more": len(page) == limit,
        }
    )


async def read_notification(request: web.Request) -> web.StreamResponse:
    identity = await authenticate(request)
    raw_id = request.match_info["notification_id"]
    notification_id = decimal(raw_id)
    if notification_id is None:
        raise web.HTTPNotFound(text=f"no notification {raw_id[:32]!r}")
    changed, unread = await request.app[NOTIFIER].mark_read(identity.user_id, [notification_id])
    return json_body({"read": changed, "unread": unread})


async def read_all_notifications(request: web.Request) -> web.StreamResponse:
    identity = await authenticate(request)
    changed, unread = await request.app[NOTIFIER].mark_read(identity.user_id, None)
    return json_body({"read": changed, "unread": unread})


def _int_query(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    value = decimal(raw)
    if value is None:
        raise web.HTTPBadRequest(text=f"?{name} must be a non-negative integer")
    return value


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/notifications", post_notification)
    app.router.add_get("/api/v1/notifications", list_notifications)
    app.router.add_post("/api/v1/notifications/read-all", read_all_notifications)
    app.router.add_post("/api/v1/notifications/{notification_id}/read", read_notification)
