"""The `Store` interface: where documents live between server runs.

A document is stored as an optional snapshot (a Yjs v1 update of a whole state) plus an
append-only log of Yjs v1 updates written after it. Merging Yjs updates is idempotent and
commutative, so loading = snapshot merged with every logged update, in any order.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import pycrdt

from collab.errors import StoreError


@dataclass(frozen=True, slots=True)
class Held:
    """What a compaction's state holds of what is stored, by the word of the live document
    it was encoded from (`Store.compact`).

    - `writer`: that document's number. Its rows (appended with it in `writers`) and a
      snapshot that is exactly its state carry it. The caller vouches that no row carrying
      it is appended after the state was encoded and before the compaction returns.
    - `loaded`: until its first compaction, the `stored_digest` of what it was loaded from
      (the snapshot, then the log, as `load` returned them): when everything stored besides
      its own rows is exactly that, the state holds it too."""

    writer: int
    loaded: bytes | None = None


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """What `Store.load` returns. `snapshot` is None for a document never compacted."""

    snapshot: bytes | None
    updates: list[bytes]

    @property
    def is_empty(self) -> bool:
        return self.snapshot is None and not self.updates

    @property
    def parts(self) -> list[bytes]:
        """The snapshot (if any), then the logged updates: what loading applies, in order,
        and what `stored_digest` is taken over."""
        return self.updates if self.snapshot is None else [self.snapshot, *self.updates]


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
        writers: Mapping[str, int] | None = None,
    ) -> None:
        """Append `(room_id, update, author)` entries to the log (`author`: the user id that
        wrote the update, None for the server's own changes), and add the `(room_id, user_id)`
        pairs of `authors` to their rooms' authors since the last version (`VersionStore`), in
        one transaction (group commit). What names a purged note is dropped.

        `writers`: for a room, the number of the live document that holds the batch's updates
        of that room already (see `Held`); its rows carry it."""

    async def compact(self, room_id: str, state: bytes, held: Held | None = None) -> None:
        """Replace the document's log by one snapshot, in one transaction.

        The new snapshot is `state` merged with the stored snapshot and every logged update,
        so an update logged by someone else since `state` was taken is never lost.

        `held`: what `state` is known to hold of what is stored (see `Held`); that is
        neither merged nor, for the writer's own, read. When nothing else is stored the
        snapshot is `state` itself, marked as the writer's.
        """

    async def ping(self) -> None:
        """Raise `StoreError` unless the store answers (used by `/readyz`)."""


def stored_digest(parts: Sequence[bytes]) -> bytes:
    """A digest of stored parts (a snapshot, logged updates) in order: equal digests mean
    the same parts, byte for byte, in the same order."""
    digest = hashlib.blake2b(digest_size=32)
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.digest()


# Above this many bytes a digest of stored parts is taken in a thread (hashlib lets go of the
# GIL for large buffers): about 25 ms for 20 MiB that the event loop need not wait.
DIGEST_IN_THREAD_BYTES = 1024 * 1024


async def stored_digest_off_loop(parts: Sequence[bytes]) -> bytes:
    """`stored_digest(parts)`, in a thread when they are large."""
    if sum(len(part) for part in parts) < DIGEST_IN_THREAD_BYTES:
        return stored_digest(parts)
    return await asyncio.to_thread(stored_digest, parts)


async def compacted_state_off_loop(
    state: bytes, stored: Sequence[bytes], where: str, loaded: bytes | None = None
) -> tuple[bytes, bool]:
    """`compacted_state`, with a large digest of `stored` taken in a thread: for a store
    whose compaction may await (its transaction keeps the log as read meanwhile)."""
    if stored and loaded is not None and await stored_digest_off_loop(stored) == loaded:
        return state, True
    return compacted_state(state, stored, where)


def compacted_state(
    state: bytes, stored: Sequence[bytes], where: str, loaded: bytes | None = None
) -> tuple[bytes, bool]:
    """The snapshot a compaction writes, and whether it is `state` itself: `state`, merged
    with the stored parts (snapshot and logged updates, in that order) unless there are
    none or they are exactly the parts `state`'s document was loaded from (`loaded`).
    Raises `StoreError` naming the room (`where`) for a stored part that does not merge."""
    if not stored or (loaded is not None and stored_digest(stored) == loaded):
        return state, True
    try:
        return pycrdt.merge_updates(*stored, state), False
    except ValueError as exc:
        raise StoreError(f"{where} holds an update that does not merge: {exc}") from exc
