"""The `Bus` interface: how instances holding the same room exchange its messages.

A bus message is a y-websocket frame (sync or awareness) for one room. Each instance tags what
it publishes with its `instance_id` and never receives its own messages back. Delivery is at
most once: a bus reports when a room may have lost messages (a gap in another instance's
sequence numbers, a reconnection, a subscription found dead) through the room's resync
handler, and the room heals by exchanging sync step 1 / step 2 with the other instances.
The store, not the bus, is the source of truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

MessageHandler = Callable[[str, bytes], None]
"""Called with `(room_id, frame)` for every message another instance published."""

ResyncHandler = Callable[[str], None]
"""Called with `room_id` when messages of that room may have been lost."""


@dataclass(frozen=True, slots=True)
class BusStats:
    """What a bus counted since it started, as `/metrics` reports it. A backend that cannot
    see something (the in-process bus never reconnects) reports 0 for it."""

    published: int = 0  # messages this instance published
    received: int = 0  # messages from other instances received
    dropped_publishes: int = 0  # dropped before reaching the bus (queue full or refused)
    gaps_detected: int = 0  # gaps seen in another instance's message sequence
    reconnects: int = 0  # reconnections to the backend


class Bus(Protocol):
    instance_id: str

    async def start(self) -> None:
        """Begin connecting. Never raises for an unreachable backend: it retries in the
        background and reports through `ping` meanwhile."""

    async def close(self) -> None:
        """Disconnect and drop every subscription. Safe to call twice."""

    async def subscribe(
        self, room_id: str, on_message: MessageHandler, on_resync: ResyncHandler
    ) -> None:
        """Deliver the room's messages from other instances to `on_message`, and call
        `on_resync` whenever some may have been lost. Works while disconnected: the
        subscription is made (and `on_resync` called) once the backend is reachable."""

    async def unsubscribe(self, room_id: str) -> None:
        """Stop delivering the room's messages."""

    def publish(self, room_id: str, frame: bytes) -> None:
        """Queue `frame` for the other instances holding the room. Never blocks or raises for
        an unreachable backend (a bounded queue drops the oldest; receivers see the gap)."""

    async def ping(self) -> None:
        """Raise `BusError` unless the bus is connected and delivering (used by `/readyz`)."""

    def stats(self) -> BusStats:
        """The counters `/metrics` reports."""
