"""Waiting for conditions, never for time. Every bound scales with COLLAB_TEST_TIMEOUT_FACTOR."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

TIMEOUT_FACTOR = float(os.environ.get("COLLAB_TEST_TIMEOUT_FACTOR", "1"))


def scaled(seconds: float) -> float:
    return seconds * TIMEOUT_FACTOR


async def eventually(
    predicate: Callable[[], bool | Awaitable[bool]], *, timeout: float = 10.0, what: str = ""
) -> None:
    """Poll `predicate` until it holds; raise AssertionError after `timeout` (scaled)."""
    deadline = asyncio.get_running_loop().time() + scaled(timeout)
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {scaled(timeout):.1f} s: {what}")
        await asyncio.sleep(0.01)
