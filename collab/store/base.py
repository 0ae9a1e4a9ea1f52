"""The `Store` interface: where documents live between server runs.

A document is stored as an optional snapshot (a Yjs v1 update of a whole state) plus an
append-only log of Yjs v1 updates written after it. Merging Yjs updates is idempotent and
commutative, so loading = snapshot merged with every logged update, in any order.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """What `Store.load` returns. `snapshot` is None for a document never compacted."""

    snapshot: bytes | None
    updates: list[bytes]

    @property
    def is_empty(self) -> bool:
        return self.snapshot is None and not self.updates


class Store(Protocol):
    """Persistent storage of documents, keyed by room id (`"{workspace_id}/{note_id}"`).

    Every method raises `StoreError` (and nothing else) when the backend fails.
    """

    async def open(self) -> None:
        """Connect and bring the schema up to date (embedded stores migrate themselves)."""

    async def close(self) -> None:
        """Release connections. Safe to call twice."""

    async def load(self, room_id: str) -> StoredDocument:
        """Return the snapshot and the logged updates of a document (empty if unknown)."""

    async def append_updates(
        self,
        batch: Sequence[tuple[str, bytes, str | None]],
        authors: Collection[tuple[str, str]] = (),
    ) -> None:
        """Append `(room_id, update, author)` entries to the log (`author`: the user id that
        wrote the update, None for the server's own changes), and add the `(room_id, user_id)`
        pairs of `authors` to their rooms' authors since the last version (`VersionStore`), in
        one transaction (group commit). What names a purged note is dropped."""

    async def compact(self, room_id: str, state: bytes) -> None:
        """Replace the document's log by one snapshot, in one transaction.

        The new snapshot is `state` merged with the stored snapshot and every logged update,
        so an update logged by someone else since `state` was taken is never lost.
        """

    async def ping(self) -> None:
        """Raise `StoreError` unless the store answers (used by `/readyz`)."""
