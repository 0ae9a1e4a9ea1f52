"""Group commit: the applied updates of every room reach the store in batches.

Applied updates queue per room (`note`); one flusher task appends them to the store in one
transaction every `flush_interval_s` after the first change, or as soon as
`flush_max_batch` are waiting, and compacts a room's log into a snapshot once it reaches
`compact_after_updates` (or when the room's document holds changes the log lacks). A store
failure keeps everything queued and retries with a growing delay; a room whose backlog
passes `max_pending_per_room` collapses it into "write a snapshot", so memory stays bounded
by the documents, not by the outage.

Rows are appended, and rooms compacted, as each room's writer (`LiveRoom.writer`), under one
lock: a compaction's store neither reads nor merges what the room itself logged or last
stored, its state holds it (`Store.compact`).

Updates a connection asked to have echoed (`note_saved`) are handed to `on_saved` once the
store holds them: after the append that wrote them, or the compaction that stored them when
their backlog collapsed (see `collab.rooms.saved`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from collab.errors import StoreError
from collab.observability.counters import LatencyHistogram
from collab.rooms.live import LiveRoom, RoomLimits
from collab.rooms.saved import SavedEcho
from collab.store.base import Held, Store
from collab.tasks import cancel_and_wait

log = logging.getLogger(__name__)

LoggedUpdate = tuple[str, bytes, str | None]
"""`(room_id, update, author)` as the store logs it."""

STORE_RETRY_MAX_S = 5.0


def store_retry_s(previous_s: float, least_s: float) -> float:
    """How long to wait before trying a failed store write again: twice the last wait, at
    least `least_s`, at most STORE_RETRY_MAX_S."""
    return min(max(previous_s * 2, least_s), STORE_RETRY_MAX_S)


SavedListener = Callable[[LiveRoom, list[SavedEcho]], None]
"""Told of the echoes the store now holds, oldest first, on the event loop; must not block."""


@dataclass(frozen=True, slots=True)
class StoreStats:
    """How the store has fared for the group commit, as `/metrics` and `/readyz` report it."""

    healthy: bool  # the last store operation succeeded
    failures: int  # writes (appends, compactions) that failed and were retried
    backlog: int  # applied updates not yet written
    flush_time: LatencyHistogram  # one append transaction's time


class GroupCommit:
    """Writes the rooms' applied updates to `store` in batches; see the module docstring.

    `store_healthy`, `store_failures` and `flush_time` are read by the metrics collector and
    `/readyz`; loading a room reports its store result here too (`note_store_result`)."""

    def __init__(
        self, store: Store, limits: RoomLimits, *, on_saved: SavedListener | None = None
    ) -> None:
        self._store = store
        self._limits = limits
        self._on_saved = on_saved
        self._dirty: dict[str, LiveRoom] = {}
        self._pending_count = 0
        self._wakeup = asyncio.Event()
        # Armed by the first change after a flush (or by a failed flush, for its retry): an
        # idle server has no flush timer, a busy one one per interval.
        self._timer: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()
        # Rooms whose compaction under way stores changes no log holds (`_compact`).
        self._storing_state: set[str] = set()
        self._flusher: asyncio.Task[None] | None = None
        self.store_healthy = True
        self.store_failures = 0
        self.flush_time = LatencyHistogram()

    @property
    def pending_updates(self) -> int:
        """Applied updates not yet written to the store."""
        return self._pending_count

    def stats(self) -> StoreStats:
        return StoreStats(
            self.store_healthy, self.store_failures, self._pending_count, self.flush_time
        )

    @property
    def has_pending(self) -> bool:
        return bool(self._dirty)

    def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_loop(), name="room-flusher")

    async def stop(self) -> None:
        """Stop the flusher and its timer; what is queued stays queued (`flush` writes it)."""
        await cancel_and_wait([self._flusher])
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def note(self, live: LiveRoom, update: bytes, author: str | None = None) -> None:
        """Queue an update applied to `live` by `author` (on the path of every edit)."""
        self._dirty[live.room_id] = live
        if author is not None and author not in live.authors_recorded:
            # Recorded with the next batch (a set: once per version period, not per edit).
            live.authors_new.add(author)
        if self._timer is None:
            self._flush_in(self._limits.flush_interval_s)
        if len(live.pending) >= self._limits.max_pending_per_room:
            # The store is down or slow. The document itself holds every update, so the
            # backlog collapses into "write a snapshot" and memory stays bounded by documents.
            # New lists, not cleared ones: an append in flight took its updates from the old
            # ones, and must not count what is queued after this as written (`flush`).
            self._pending_count -= len(live.pending)
            live.pending = []
            live.pending_authors = []
            live.unsaved_state = True
            live.saved_echoes.need_snapshot()
            log.warning(
                "room %s: store backlog over its bound; a snapshot will be written", live.room_id
            )
            return
        live.pending.append(update)
        live.pending_authors.append(author)
        self._pending_count += 1
        if self._pending_count >= self._limits.flush_max_batch:
            self._wakeup.set()

    def note_saved(self, live: LiveRoom, peer_id: str, update: bytes, *, queued: bool) -> None:
        """Hand `update` (from `peer_id`) to `on_saved` once the store holds it. Called right
        after `note` when that queued all `update` brought (`queued`), else for an update that
        brought nothing new, or part of it: it is in the room's document already."""
        if queued:
            # `note` queued it last, or collapsed the backlog instead.
            needs_snapshot = not live.pending
        else:
            # Already in the log (before what is queued now), unless the room holds changes
            # no log here has: then the next flush stores them, and the echo with them. A
            # compaction under way storing such changes may still fail, and one that started
            # before this echo does not release it: the next one must.
            needs_snapshot = (
                live.unsaved_state
                or live.remote_changes_at is not None
                or live.room_id in self._storing_state
            )
            if needs_snapshot:
                live.unsaved_state = True
        position = live.written_updates + len(live.pending)
        echoes = live.saved_echoes
        echoes.add(peer_id, update, None if needs_snapshot else position)
        if len(echoes) > self._limits.max_pending_per_room:
            echoes.fold()
        self._dirty[live.room_id] = live
        if self._timer is None:
            self._flush_in(self._limits.flush_interval_s)

    def _saved(self, live: LiveRoom, echoes: list[SavedEcho]) -> None:
        if echoes and self._on_saved is not None:
            self._on_saved(live, echoes)

    def forget(self, live: LiveRoom) -> None:
        """Stop tracking a room that is being dropped (after its final flush)."""
        self._dirty.pop(live.room_id, None)

    def note_store_result(self, ok: bool) -> None:
        """Another use of the store (loading a room) succeeded or failed."""
        if not ok:
            self.store_healthy = False
        elif not self._dirty:
            self.store_healthy = True

    def _flush_in(self, delay_s: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay_s, self._flush_due)

    def _flush_due(self) -> None:
        self._timer = None
        self._wakeup.set()

    async def _flush_loop(self) -> None:
        """Flush when the timer armed by a change is due, or at once when `flush_max_batch`
        updates wait; after a store failure, retry with a growing delay."""
        retry_s = 0.0
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._dirty:
                continue
            try:
                await self.flush()
                retry_s = 0.0
            except StoreError as error:
                retry_s = store_retry_s(retry_s, max(self._limits.flush_interval_s * 2, 0.2))
                log.warning("store write failed, retrying in %.1f s: %s", retry_s, error)
                # Replaces the timer a change may have armed meanwhile: the retry waits.
                self._flush_in(retry_s)

    async def flush(self) -> None:
        """Write every pending update (in batches of `flush_max_batch`), then compact rooms
        whose log grew past the threshold or whose backlog collapsed. Raises `StoreError`;
        nothing is dropped on failure."""
        async with self._lock:
            while self._dirty:
                batch: list[LoggedUpdate] = []
                authors: list[tuple[LiveRoom, set[str]]] = []
                # Each room, how many of its queued updates the batch holds, and the queue.
                taken: list[tuple[LiveRoom, int, list[bytes]]] = []
                for live in list(self._dirty.values()):
                    room_budget = self._limits.flush_max_batch - len(batch)
                    if room_budget <= 0:
                        break
                    count = min(room_budget, len(live.pending))
                    room_id = live.room_id
                    batch.extend(
                        zip(
                            itertools.repeat(room_id, count),
                            live.pending[:count],
                            live.pending_authors[:count],
                            strict=True,
                        )
                    )
                    taken.append((live, count, live.pending))
                    if live.authors_new:
                        authors.append((live, set(live.authors_new)))
                if batch or authors:
                    pairs = [(live.room_id, user) for live, users in authors for user in users]
                    writers = {live.room_id: live.writer for live, _, _ in taken}
                    await self._append(batch, pairs, writers)
                for live, users in authors:
                    live.authors_recorded |= users
                    live.authors_new -= users
                for live, count, queue in taken:
                    live.logged_updates += count
                    if live.pending is not queue:
                        # Its backlog collapsed meanwhile: what the batch took is gone from
                        # the queue and the count already, and only a snapshot stores the
                        # echoes waiting then; updates queued since start a new count.
                        continue
                    del live.pending[:count]
                    del live.pending_authors[:count]
                    live.written_updates += count
                    self._pending_count -= count
                    if live.saved_echoes:
                        self._saved(live, live.saved_echoes.take_written(live.written_updates))
                for live, _, _ in taken:
                    if (
                        live.unsaved_state
                        or live.logged_updates >= self._limits.compact_after_updates
                        or self._remote_backup_due(live)
                    ):
                        await self._compact(live)
                        # A compaction encodes the document, and merges what other
                        # instances stored, on the event loop; busy rooms reach the threshold
                        # together: let the edits waiting meanwhile through between two.
                        await asyncio.sleep(0)
                    # A snapshot owed since (an echo added while it compacted) keeps it.
                    if not live.pending and not live.unsaved_state:
                        self._dirty.pop(live.room_id, None)

    async def _append(
        self,
        batch: list[LoggedUpdate],
        authors: list[tuple[str, str]],
        writers: dict[str, int],
    ) -> None:
        started = time.perf_counter()
        try:
            await self._store.append_updates(batch, authors, writers)
        except StoreError:
            self.store_healthy = False
            self.store_failures += 1
            raise
        self.store_healthy = True
        elapsed_s = time.perf_counter() - started
        self.flush_time.observe(elapsed_s)
        log.debug("flushed %d updates in %.1f ms", len(batch), elapsed_s * 1e3)

    def _remote_backup_due(self, live: LiveRoom) -> bool:
        changed_at = live.remote_changes_at
        return (
            changed_at is not None and time.monotonic() - changed_at >= self._limits.remote_backup_s
        )

    async def compact(self, live: LiveRoom) -> None:
        """Merge the room's whole state into the stored snapshot and drop its log."""
        # Under the lock that every append takes: no row of this document is logged between
        # the encoding of its state and the store's read of the log, so all of its rows
        # that the store reads are in that state (`Store.compact`).
        async with self._lock:
            await self._compact(live)

    async def _compact(self, live: LiveRoom) -> None:
        if live.logged_updates == 0 and not live.unsaved_state and live.remote_changes_at is None:
            return
        storing_state = live.unsaved_state or live.remote_changes_at is not None
        # Cleared before the await: a change arriving meanwhile sets them again.
        live.unsaved_state = False
        remote_changes_at, live.remote_changes_at = live.remote_changes_at, None
        # The state encoded below holds every update echoes were added for so far.
        saved_below = live.saved_echoes.next_serial
        if storing_state:
            self._storing_state.add(live.room_id)
        try:
            held = Held(live.writer, live.loaded)
            await self._store.compact(live.room_id, live.room.encode_state(), held)
        except StoreError:
            live.unsaved_state = True
            if live.remote_changes_at is None:
                live.remote_changes_at = remote_changes_at
            self.store_healthy = False
            self.store_failures += 1
            raise
        finally:
            self._storing_state.discard(live.room_id)
        self.store_healthy = True
        live.logged_updates = 0
        # What it was loaded from is merged into the snapshot or deleted: the writer's own.
        live.loaded = None
        if live.saved_echoes:
            self._saved(live, live.saved_echoes.take_snapshotted(saved_below))
