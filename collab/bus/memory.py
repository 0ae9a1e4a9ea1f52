"""`MemoryBus`: the in-process bus of a single instance (and of several in one test process)."""

from __future__ import annotations

import asyncio
import uuid

from collab.bus.base import BusStats, MessageHandler, ResyncHandler
from collab.errors import BusError


class MemoryBroker:
    """Connects the `MemoryBus`es created with it, as Redis connects instances."""

    def __init__(self) -> None:
        self.buses: set[MemoryBus] = set()


class MemoryBus:
    """Delivers to the other buses of its broker on the next loop iteration, like a network."""

    def __init__(self, broker: MemoryBroker | None = None, instance_id: str | None = None) -> None:
        self.instance_id = instance_id or uuid.uuid4().hex
        self._broker = broker or MemoryBroker()
        self._handlers: dict[str, MessageHandler] = {}
        self._started = False
        self.published = 0
        self.received = 0

    def stats(self) -> BusStats:
        return BusStats(published=self.published, received=self.received)

    async def start(self) -> None:
        self._broker.buses.add(self)
        self._started = True

    async def close(self) -> None:
        self._broker.buses.discard(self)
        self._handlers.clear()
        self._started = False

    async def subscribe(
        self, room_id: str, on_message: MessageHandler, on_resync: ResyncHandler
    ) -> None:
        # In process nothing is ever lost, so `on_resync` is never called.
        self._handlers[room_id] = on_message

    async def unsubscribe(self, room_id: str) -> None:
        self._handlers.pop(room_id, None)

    def publish(self, room_id: str, frame: bytes) -> None:
        if not self._started:
            raise BusError("the bus is not started")
        self.published += 1
        for bus in self._broker.buses:
            handler = bus._handlers.get(room_id)
            if bus is not self and handler is not None:
                bus.received += 1
                # Looked up only when delivering: a single instance publishes every edit to
                # no one, and on Python 3.11 each lookup is a getpid() system call.
                asyncio.get_running_loop().call_soon(handler, room_id, frame)

    async def ping(self) -> None:
        if not self._started:
            raise BusError("the bus is not started")
