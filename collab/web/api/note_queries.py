"""The query string of `GET /api/v1/workspaces/{workspace_id}/notes`, read strictly, and its
page cursors.

Every parameter is checked; a bad one is a 400 whose message names it (an unknown or repeated
parameter too: a typo never silently lists everything). A cursor is the sort key of the last
note of a page with a fingerprint of the query it belongs to, base64url-encoded and
checksummed: a cursor that was altered, or is used with other filters or another order, is a
400. It carries nothing the caller could not list anyway.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import replace
from typing import Any

import orjson
from aiohttp import web
from multidict import MultiMapping

from collab.rooms.note_fields import CONTROL_CHARACTERS, parse_due
from collab.store.catalog import MAX_CATALOG_PAGE, CatalogQuery, Priority, SearchRank, SortKey
from collab.web.http.requests import decimal

DEFAULT_LIMIT = 50
MAX_QUERY_CHARS = 500
MAX_TAG_FILTERS = 10
MAX_FILTER_CHARS = 256
MAX_CURSOR_CHARS = 2048
_PARAMETERS = frozenset(
    {
        "q",
        "tag",
        "assignee",
        "pinned",
        "priority",
        "due_before",
        "due_after",
        "trashed",
        "sort",
        "order",
        "limit",
        "cursor",
    }
)
_SORTS = {key.value: key for key in SortKey if key not in (SortKey.DEFAULT, SortKey.RELEVANCE)}
# The order each sort takes when `order` is not given: the most useful end first.
_DEFAULT_DESCENDING = {
    SortKey.UPDATED: True,
    SortKey.CREATED: True,
    SortKey.DUE: False,
    SortKey.PRIORITY: True,
    SortKey.TITLE: False,
}
_CHECKSUM_BYTES = 12
# What each sort's key holds (`collab.store.catalog`): a string, or an integer in a range
# (the columns' own: a boolean `pinned`, `priority` 0-4, `SearchRank`, a BIGINT `seq`).
_TEXT = str
_PINNED = range(2)
_PRIORITY = range(max(Priority) + 1)
_RANK = range(max(SearchRank) + 1)
_SEQ = range(2**63)
_KEY_PARTS: dict[SortKey, tuple[type[str] | range, ...]] = {
    SortKey.DEFAULT: (_PINNED, _TEXT, _TEXT),
    SortKey.RELEVANCE: (_RANK, _SEQ),
    SortKey.UPDATED: (_TEXT, _TEXT),
    SortKey.CREATED: (_TEXT, _TEXT),
    SortKey.DUE: (_TEXT, _TEXT),
    SortKey.PRIORITY: (_PRIORITY, _TEXT),
    SortKey.TITLE: (_TEXT, _TEXT),
}


def bad_parameter(name: str, problem: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=f"parameter {name!r}: {problem}")


def catalog_query(workspace_id: str, params: MultiMapping[str]) -> CatalogQuery:
    """The `CatalogQuery` a query string asks for; raises `HTTPBadRequest` naming the first
    bad parameter."""
    for name in params:
        if name not in _PARAMETERS:
            raise bad_parameter(name, f"unknown; known are {', '.join(sorted(_PARAMETERS))}")
        if name != "tag" and len(params.getall(name)) > 1:
            raise bad_parameter(name, "given more than once")
    text = params.get("q")
    if text is not None:
        if len(text) > MAX_QUERY_CHARS:
            raise bad_parameter("q", f"longer than {MAX_QUERY_CHARS} characters")
        text = text.strip() or None
    tags = tuple(dict.fromkeys(params.getall("tag", [])))
    if len(tags) > MAX_TAG_FILTERS:
        raise bad_parameter("tag", f"more than {MAX_TAG_FILTERS} tags")
    for tag in tags:
        _check_text("tag", tag)
    assignee = params.get("assignee")
    if assignee is not None:
        _check_text("assignee", assignee)
    priority = None
    if "priority" in params:
        priority = Priority.from_label(params["priority"])
        if priority is None:
            raise bad_parameter("priority", "use low, medium, high or urgent")
    sort, descending = _sort(params, has_text=text is not None)
    query = CatalogQuery(
        text=text,
        tags=tags,
        assignee=assignee,
        pinned=_boolean(params, "pinned"),
        priority=priority,
        due_before=_instant(params, "due_before"),
        due_after=_instant(params, "due_after"),
        trashed=_boolean(params, "trashed") or False,
        sort=sort,
        descending=descending,
        limit=_limit(params),
    )
    cursor = params.get("cursor")
    if cursor is None:
        return query
    return replace(query, after=read_cursor(cursor, query, fingerprint(workspace_id, query)))


def fingerprint(workspace_id: str, query: CatalogQuery) -> str:
    """What a cursor is bound to: the workspace, the filters and the order (not the limit)."""
    parts = [
        workspace_id,
        query.text,
        list(query.tags),
        query.assignee,
        query.pinned,
        None if query.priority is None else int(query.priority),
        query.due_before,
        query.due_after,
        query.trashed,
        query.sort.value,
        query.descending,
    ]
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:16]


def make_cursor(key: tuple[Any, ...], query_fingerprint: str) -> str:
    payload = orjson.dumps({"k": list(key), "f": query_fingerprint})
    checksum = hashlib.sha256(payload).digest()[:_CHECKSUM_BYTES]
    return base64.urlsafe_b64encode(checksum + payload).decode().rstrip("=")


def read_cursor(cursor: str, query: CatalogQuery, query_fingerprint: str) -> tuple[Any, ...]:
    if len(cursor) > MAX_CURSOR_CHARS:
        raise bad_parameter("cursor", "too long: pass the 'next' of the previous page")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise bad_parameter("cursor", "not a cursor this server made") from None
    checksum, payload = raw[:_CHECKSUM_BYTES], raw[_CHECKSUM_BYTES:]
    if hashlib.sha256(payload).digest()[:_CHECKSUM_BYTES] != checksum:
        raise bad_parameter("cursor", "not a cursor this server made (altered or truncated)")
    try:
        decoded = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise bad_parameter("cursor", "not a cursor this server made") from None
    if not isinstance(decoded, dict) or decoded.get("f") != query_fingerprint:
        raise bad_parameter(
            "cursor", "made for other filters or another order: keep the query of its page"
        )
    key = decoded.get("k")
    # The checksum is no secret: the key's shape and values are checked as well before the
    # store sees them, so a forged key is a 400, not a database error.
    if not isinstance(key, list) or not _fits(key, _KEY_PARTS[query.sort]):
        raise bad_parameter("cursor", "not a cursor this server made")
    return tuple(key)


def _fits(key: list[Any], parts: tuple[type[str] | range, ...]) -> bool:
    if len(key) != len(parts):
        return False
    for value, part in zip(key, parts, strict=True):
        if isinstance(part, range):
            if type(value) is not int or value not in part:  # `type`: True is no number
                return False
        elif not isinstance(value, str) or CONTROL_CHARACTERS.search(value):
            # None the server makes holds one (the catalog keeps them as spaces), and
            # databases refuse some (PostgreSQL text holds no NUL).
            return False
    return True


def _check_text(name: str, value: str) -> None:
    if not value or len(value) > MAX_FILTER_CHARS or CONTROL_CHARACTERS.search(value):
        raise bad_parameter(name, f"must be 1 to {MAX_FILTER_CHARS} characters, none a control")


def _boolean(params: MultiMapping[str], name: str) -> bool | None:
    raw = params.get(name)
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise bad_parameter(name, "use true or false")
    return raw == "true"


def _instant(params: MultiMapping[str], name: str) -> str | None:
    raw = params.get(name)
    if raw is None:
        return None
    due = parse_due(raw)
    if due is None:
        raise bad_parameter(name, "not an ISO-8601 date (2026-12-24) or date-time")
    return due[1]


def _sort(params: MultiMapping[str], *, has_text: bool) -> tuple[SortKey, bool]:
    raw_sort = params.get("sort")
    raw_order = params.get("order")
    if raw_order is not None and raw_order not in ("asc", "desc"):
        raise bad_parameter("order", "use asc or desc")
    if raw_sort is None:
        if raw_order is not None:
            raise bad_parameter("order", "needs a sort (updated, created, due, priority, title)")
        return (SortKey.RELEVANCE if has_text else SortKey.DEFAULT), True
    sort = _SORTS.get(raw_sort)
    if sort is None:
        raise bad_parameter("sort", f"use one of {', '.join(_SORTS)}")
    descending = _DEFAULT_DESCENDING[sort] if raw_order is None else raw_order == "desc"
    return sort, descending


def _limit(params: MultiMapping[str]) -> int:
    raw = params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    limit = decimal(raw)
    if limit is None or not 1 <= limit <= MAX_CATALOG_PAGE:
        raise bad_parameter("limit", f"an integer from 1 to {MAX_CATALOG_PAGE}")
    return limit
