"""Buses between instances: `MemoryBus` in process; a Redis bus for several instances."""

from collab.bus.base import Bus, MessageHandler, ResyncHandler
from collab.bus.memory import MemoryBroker, MemoryBus

__all__ = ["Bus", "MemoryBroker", "MemoryBus", "MessageHandler", "ResyncHandler"]
