"""Waiting for conditions, never for time. Every bound scales with COLLAB_TEST_TIMEOUT_FACTOR."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

TIMEOUT_FACTOR_ENV = "COLLAB_TEST_TIMEOUT_FACTOR"


def timeout_factor() -> float:
    """`COLLAB_TEST_TIMEOUT_FACTOR` (default 1), read at each call; raises ValueError unless it
    is a number > 0."""
    raw = os.environ.get(TIMEOUT_FACTOR_ENV, "").strip() or "1"
    try:
        factor = float(raw)
    except ValueError:
        raise ValueError(f"{TIMEOUT_FACTOR_ENV} must be a number, got {raw!r}") from None
    if not factor > 0:
        raise ValueError(f"{TIMEOUT_FACTOR_ENV} must be > 0, got {raw!r}")
    return factor


def scaled(seconds: float) -> float:
    """`seconds` multiplied by the test timeout factor."""
    return seconds * timeout_factor()


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
