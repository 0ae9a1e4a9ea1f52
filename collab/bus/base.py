"""The `Bus` interface: how instances holding the same room exchange its messages.

A bus message is a y-websocket frame (sync or awareness) for one room. Each instance tags what
it publishes with its `instance_id` and never receives its own messages back. Delivery is
best effort (at most once); the rooms heal gaps by exchanging sync step 1 on subscription.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

BusHandler = Callable[[str, bytes], None]
"""Called with `(room_id, frame)` for every message another instance published."""


class Bus(Protocol):
    instance_id: str

    async def start(self) -> None:
        """Connect. Raises `BusError` if the bus cannot be reached."""

    async def close(self) -> None:
        """Disconnect and drop every subscription. Safe to call twice."""

    async def subscribe(self, room_id: str, handler: BusHandler) -> None:
        """Deliver the room's messages from other instances to `handler`."""

    async def unsubscribe(self, room_id: str) -> None:
        """Stop delivering the room's messages."""

    def publish(self, room_id: str, frame: bytes) -> None:
        """Queue `frame` for the other instances holding the room. Never blocks."""

    async def ping(self) -> None:
        """Raise `BusError` unless the bus answers (used by `/readyz`)."""
