"""`MemoryStore`: the in-memory `Store`, for `memory://` and as the test fake."""

from __future__ import annotations

from collections.abc import Sequence

import pycrdt

from collab.errors import StoreError
from collab.store.base import StoredDocument


class MemoryStore:
    """A `Store` in process memory; documents survive `close()` + `open()` but not the process.

    Like a real backend it refuses calls before `open()` and after `close()` (`StoreError`).

    Fault injection for tests:

    - `fail_with`: while set to a `StoreError`, every call (including `open` and `close`)
      raises it and changes nothing.
    - `fail_next`: when set, the next call raises it and changes nothing; it is then cleared.
    """

    def __init__(self) -> None:
        self.fail_with: StoreError | None = None
        self.fail_next: StoreError | None = None
        self._is_open = False
        self._snapshots: dict[str, bytes] = {}
        self._updates: dict[str, list[bytes]] = {}

    async def open(self) -> None:
        self._raise_injected_fault()
        self._is_open = True

    async def close(self) -> None:
        self._raise_injected_fault()
        self._is_open = False

    async def load(self, room_id: str) -> StoredDocument:
        self._check_callable()
        return StoredDocument(
            snapshot=self._snapshots.get(room_id),
            updates=list(self._updates.get(room_id, ())),
        )

    async def append_updates(self, batch: Sequence[tuple[str, bytes]]) -> None:
        self._check_callable()
        for room_id, update in batch:
            self._updates.setdefault(room_id, []).append(bytes(update))

    async def compact(self, room_id: str, state: bytes) -> None:
        self._check_callable()
        snapshot = self._snapshots.get(room_id)
        parts = [] if snapshot is None else [snapshot]
        parts += self._updates.get(room_id, [])
        try:
            merged = pycrdt.merge_updates(*parts, bytes(state))
        except ValueError as exc:
            raise StoreError(
                f"memory store: room {room_id!r} holds an update that does not merge: {exc}"
            ) from exc
        self._snapshots[room_id] = merged
        self._updates.pop(room_id, None)

    async def ping(self) -> None:
        self._check_callable()

    def _check_callable(self) -> None:
        self._raise_injected_fault()
        if not self._is_open:
            raise StoreError("memory store: the store is not open")

    def _raise_injected_fault(self) -> None:
        if self.fail_next is not None:
            fault, self.fail_next = self.fail_next, None
            raise fault.with_traceback(None)
        if self.fail_with is not None:
            raise self.fail_with.with_traceback(None)
