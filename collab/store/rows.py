"""What every backend (memory, SQLite, Postgres) writes and reads the same way: the JSON text
of a notification payload, the text of a timestamp, and the bounds that turn a caller's ids,
replay position and page size into values every backend's columns and queries accept.

Shared so that the backends store, return and refuse exactly the same things; the in-memory
fake uses them too, so a test passing on it is not passing on an encoding of its own."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from collab.errors import StoreError
from collab.store.notifications import MAX_PAGE

# Notification ids are positive and fit a signed 64-bit column in every backend.
MAX_NOTIFICATION_ID = 2**63 - 1


def encode_payload(payload: Mapping[str, Any]) -> str:
    """The JSON text of a notification payload.

    Raises `TypeError` unless `payload` is a mapping that serializes to a JSON object (string
    keys; JSON values, or values orjson turns into JSON such as datetimes, which then read
    back as their JSON form).
    """
    if not isinstance(payload, Mapping):
        raise TypeError(f"a notification payload must be a mapping, not {type(payload).__name__}")
    try:
        return orjson.dumps(dict(payload)).decode()
    except orjson.JSONEncodeError as exc:
        raise TypeError(f"a notification payload must serialize to a JSON object: {exc}") from exc


def decode_payload(payload_json: str | bytes) -> dict[str, Any]:
    """The payload stored as `payload_json`; raise `StoreError` unless it is a JSON object."""
    try:
        payload = orjson.loads(payload_json)
    except orjson.JSONDecodeError as exc:
        raise StoreError(f"a stored notification payload is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise StoreError("a stored notification payload is not a JSON object")
    return payload


def page_size(limit: int) -> int:
    """`limit` capped at `MAX_PAGE`; raise `ValueError` if it is below 1."""
    if limit < 1:
        raise ValueError(f"a page of notifications holds at least 1, not {limit}")
    return min(limit, MAX_PAGE)


def clamp_after_id(after_id: int) -> int:
    """`after_id` within the id range, so any integer works as a replay position."""
    return min(max(after_id, 0), MAX_NOTIFICATION_ID)


def requested_ids(ids: Iterable[int]) -> list[int]:
    """The distinct ids of `ids` that can name a notification, ascending."""
    return sorted({i for i in ids if 0 < i <= MAX_NOTIFICATION_ID})


def format_timestamp(moment: datetime | None = None) -> str:
    """`moment` (default: now) as stored and returned for notifications and members: ISO-8601
    in UTC with microseconds and a `+00:00` offset, e.g. `2024-05-01T12:00:00.000000+00:00`.

    Fixed width, so these strings sort like the times they denote.
    """
    moment = datetime.now(UTC) if moment is None else moment
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
