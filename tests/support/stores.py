"""`ScriptedStore`: a real memory store that a test steers, for the paths taken when the store
is slow or fails: appends and compactions can wait at a gate, appends can fail a given number
of times and compactions while a flag is set, and it counts what it did."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence

from collab.errors import StoreError
from collab.store.base import Held
from collab.store.memory import MemoryStore


class ScriptedStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.append_gate: asyncio.Event | None = None  # appends wait while it is unset
        self.appends_waiting = 0
        self.append_failures = 0  # the next this many appends fail
        self.appends_failed = 0
        self.appends = 0
        self.batches: list[int] = []  # the size of every append batch
        self.compact_gate: asyncio.Event | None = None
        self.compactions_waiting = 0
        self.fail_compactions = False
        self.failed_compactions = 0
        self.compactions = 0

    async def append_updates(
        self,
        batch: Sequence[tuple[str, bytes, str | None]],
        authors: Collection[tuple[str, str]] = (),
        writers: Mapping[str, int] | None = None,
    ) -> None:
        if (gate := self.append_gate) is not None:
            self.appends_waiting += 1
            await gate.wait()
        if self.append_failures > 0:
            self.append_failures -= 1
            self.appends_failed += 1
            raise StoreError("connection to the database was reset")
        self.batches.append(len(batch))
        await super().append_updates(batch, authors, writers)
        self.appends += 1

    async def compact(self, room_id: str, state: bytes, held: Held | None = None) -> None:
        if (gate := self.compact_gate) is not None:
            self.compactions_waiting += 1
            await gate.wait()
        if self.fail_compactions:
            self.failed_compactions += 1
            raise StoreError("compaction refused for the test")
        self.compactions += 1
        await super().compact(room_id, state, held)
