"""Stopping background tasks reliably."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
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


_RUNNING: set[asyncio.Task[Any]] = set()


def spawn(coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
    """Run `coro` as a task the event loop cannot lose: asyncio keeps only weak references
    to tasks, so one started from a callback needs an owner until it ends."""
    task = asyncio.ensure_future(coro)
    task.set_name(name)
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    return task
