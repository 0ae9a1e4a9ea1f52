"""What handlers read from a request: credentials, room ids and origins, all validated."""

from __future__ import annotations

import re
import secrets
import string
from typing import Any

import orjson
from aiohttp import hdrs, web

from collab.auth.tokens import Identity, Role
from collab.errors import AuthError, ForbiddenError
from collab.web.keys import CATALOG, DIRECTORY, SETTINGS, VERIFIER

JSON = "application/json"
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,127}")
_ID_ALPHABET = string.ascii_letters + string.digits
NEW_NOTE_ID_CHARS = 16


def bearer_token(request: web.Request, *, allow_query: bool) -> str:
    """The token from `Authorization: Bearer` or, for WebSocket upgrades, `?token=`."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthError("Authorization header must be 'Bearer <token>'")
        token = value.strip()
    elif allow_query:
        token = request.query.get("token", "")
    else:
        return ""
    # aiohttp hands header bytes that are not UTF-8 over as lone surrogates, which no token
    # holds and which fail every encoding on the way to a check.
    if not token.isascii() or not token.isprintable():
        raise AuthError("the token must be printable ASCII (a JWT is letters, digits, -, _ and .)")
    return token


def offered_token(request: web.Request, *, allow_query: bool) -> str:
    """`bearer_token`, but "" for a malformed header: for callers that refuse with a message
    of their own, or only peek at the token."""
    try:
        return bearer_token(request, allow_query=allow_query)
    except AuthError:
        return ""


async def authenticate(request: web.Request, *, allow_query: bool = False) -> Identity:
    """Verify the request's token (`allow_query` for the WebSocket endpoints, which also take
    `?token=`) and record its user as seen in the workspaces it names (the member directory).
    Raises `AuthError`, saying where this endpoint takes the token when none came."""
    token = bearer_token(request, allow_query=allow_query)
    if not token:
        raise AuthError(_missing_token_message(request, allow_query=allow_query))
    identity = request.app[VERIFIER].verify(token)
    await request.app[DIRECTORY].seen(identity)
    return identity


def _missing_token_message(request: web.Request, *, allow_query: bool) -> str:
    if allow_query:
        return (
            "missing token: pass ?token=<JWT> in the URL or an Authorization: Bearer <JWT> header"
        )
    message = "missing token: the REST API takes it only as an Authorization: Bearer <JWT> header"
    if "token" in request.query:
        message += " (?token= is read only by the WebSocket endpoints /ws/docs and /ws/live)"
    return message


def require_json(request: web.Request) -> None:
    """Refuse a body not declared `Content-Type: application/json` (415), so a browser form
    or a mislabeled upload is never parsed as JSON."""
    if request.content_type == JSON:
        return
    declared = request.headers.get(hdrs.CONTENT_TYPE)
    got = f"got {declared[:100]!r}" if declared else "got no Content-Type"
    raise web.HTTPUnsupportedMediaType(text=f"send the body as Content-Type: {JSON} ({got})")


async def read_json_object(
    request: web.Request, *, max_bytes: int, fields: frozenset[str], empty: bool = False
) -> dict[str, Any]:
    """The request's JSON object body: declared as JSON (415), at most `max_bytes` (413,
    refused from Content-Length before reading when it says so), valid JSON (400), an object
    of no other keys than `fields` (422). An empty body is `{}` when `empty` allows it."""
    require_json(request)
    if request.content_length is not None and request.content_length > max_bytes:
        raise web.HTTPRequestEntityTooLarge(max_size=max_bytes, actual_size=request.content_length)
    raw = await request.read()
    if len(raw) > max_bytes:
        raise web.HTTPRequestEntityTooLarge(max_size=max_bytes, actual_size=len(raw))
    if not raw and empty:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise web.HTTPBadRequest(text=f"the body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise web.HTTPUnprocessableEntity(text="the body must be a JSON object")
    unknown = set(body) - fields
    if unknown:
        listed = ", ".join(sorted(unknown)[:10])
        raise web.HTTPUnprocessableEntity(text=f"unknown field(s): {listed}")
    return body


def decimal(raw: str, *, max_digits: int = 18) -> int | None:
    """`raw` as a non-negative integer when it is 1 to `max_digits` ASCII digits, else None
    (`str.isdigit` alone admits "²" and other digits that `int` refuses)."""
    if 0 < len(raw) <= max_digits and raw.isascii() and raw.isdigit():
        return int(raw)
    return None


def new_note_id() -> str:
    """A fresh note id: 16 letters and digits (95 random bits). Always a valid id, which
    `secrets.token_urlsafe` is not: one in 32 of its ids started with `-` or `_`, which the id
    rule refuses, so such a note was created but could never be opened or addressed."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(NEW_NOTE_ID_CHARS))


def valid_id(kind: str, value: str) -> str:
    """Return `value` if it is a valid workspace or note id; raise `HTTPNotFound` otherwise."""
    if not _ID_PATTERN.fullmatch(value):
        raise web.HTTPNotFound(
            text=f"invalid {kind} id {value[:64]!r}: use 1-128 of A-Z a-z 0-9 . _ ~ -"
        )
    return value


def role_in(request: web.Request, identity: Identity, workspace_id: str) -> Role:
    """The caller's role in a workspace: the token's, as the member directory caps it.
    Raises `ForbiddenError` without one, or for a member an owner removed."""
    return request.app[DIRECTORY].role(identity, workspace_id)


def workspace_of(request: web.Request, identity: Identity) -> tuple[str, Role]:
    """The workspace id named by the URL and the caller's role in it (`role_in`).

    Raises `HTTPNotFound` for a malformed id and `ForbiddenError` without a role.
    """
    workspace_id = valid_id("workspace", request.match_info["workspace_id"])
    return workspace_id, role_in(request, identity, workspace_id)


def room_of(request: web.Request, identity: Identity) -> tuple[str, Role]:
    """The room id named by the URL and the caller's role in its workspace (`role_in`).

    Raises `HTTPNotFound` for malformed ids and `ForbiddenError` without a role.
    """
    workspace_id = request.match_info["workspace_id"]
    note_id = request.match_info["note_id"]
    valid_id("workspace", workspace_id)
    valid_id("note", note_id)
    return f"{workspace_id}/{note_id}", role_in(request, identity, workspace_id)


async def note_of(request: web.Request, identity: Identity) -> tuple[str, Role]:
    """`room_of`, then the note's own access: the caller's role on the note (at most their
    workspace role). Raises `HTTPNotFound` for a note whose access does not let them read it,
    exactly as for a note that never existed (`RoomUnavailable` when the store fails)."""
    room_id, role, _ = await private_note_of(request, identity)
    return room_id, role


async def private_note_of(request: web.Request, identity: Identity) -> tuple[str, Role, bool]:
    """`note_of`, and whether the note is private."""
    room_id, role = room_of(request, identity)
    note_role, access = await request.app[CATALOG].role_on(room_id, identity.user_id, role)
    private = access is not None and access.readers() is not None
    if note_role is None:
        workspace_id, _, note_id = room_id.partition("/")
        raise web.HTTPNotFound(text=f"no note {note_id!r} in workspace {workspace_id!r}")
    return room_id, note_role, private


def check_origin(request: web.Request) -> None:
    """Refuse a browser upgrade from an origin that is not on the allowlist (when set)."""
    allowed = request.app[SETTINGS].allowed_origins
    if not allowed:
        return
    origin = request.headers.get("Origin")
    if origin is not None and origin.rstrip("/") not in allowed:
        raise ForbiddenError(f"origin {origin[:100]!r} is not allowed")
