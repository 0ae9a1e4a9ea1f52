"""One REST request as a user, for the integration tests of the API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp


async def rest_call(
    base_url: str,
    token: str,
    method: str,
    path: str,
    *,
    json: Any = None,
    data: bytes | None = None,
    params: Mapping[str, str] | list[tuple[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, Any]:
    """The status and the body: parsed JSON for a JSON answer, bytes otherwise. `data` goes
    as a Yjs update (`application/octet-stream`) unless `headers` say otherwise."""
    sent = {"Authorization": f"Bearer {token}", **(headers or {})}
    if data is not None:
        sent.setdefault("Content-Type", "application/octet-stream")
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, f"{base_url}{path}", headers=sent, json=json, data=data, params=params
        ) as response,
    ):
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.read()
