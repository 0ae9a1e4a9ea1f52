"""The JSON bodies of the REST API, encoded with orjson (one encoder for every resource)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


def json_body(value: Any, status: int = 200) -> web.Response:
    """`value` as an `application/json` response (no charset parameter: JSON is UTF-8)."""
    return web.Response(body=orjson.dumps(value), status=status, content_type="application/json")


def dumps(value: object) -> str:
    """orjson as `web.json_response`'s encoder (its responses name `charset=utf-8`)."""
    return orjson.dumps(value).decode()
