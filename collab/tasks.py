"""Stopping background tasks reliably."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any] | None]) -> None:
    """Cancel `tasks` and wait until they are done, cancelling again as long as needed:
    on Python 3.11 a cancellation that meets an expiring `asyncio.timeout` (or a redis-py
    command finishing at that moment) is lost and the task goes on (fixed in 3.12)."""
    pending = {task for task in tasks if task is not None and not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
