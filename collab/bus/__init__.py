"""Buses between instances: `MemoryBus` in process; a Redis bus for several instances."""

from collab.bus.base import Bus, BusHandler
from collab.bus.memory import MemoryBroker, MemoryBus

__all__ = ["Bus", "BusHandler", "MemoryBroker", "MemoryBus"]
