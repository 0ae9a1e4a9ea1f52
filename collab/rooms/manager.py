"""The room manager: loads rooms once, connects peers, carries out room effects, persists.

It is the asyncio layer around the pure `DocumentRoom`:

- **Single-flight load.** The first `acquire` of a room loads it from the store; every
  concurrent `acquire` awaits that same load. A failed load raises `RoomUnavailable` to all of
  them and leaves nothing behind, so no client ever syncs against an empty stand-in.
- **Group commit.** Applied updates queue per room; one flusher task appends them to the store
  in one transaction every `flush_interval_ms` or as soon as `flush_max_batch` are waiting, and
  compacts a room's log into a snapshot once it reaches `compact_after_updates`.
- **Unload.** A room nobody holds is flushed, compacted and dropped after `room_grace_s`.
  If the store is down, the room stays loaded and the unload is retried.
- **Bounded apply cost.** Every update is read (`read_update`) before the CRDT library sees
  it. Small ones are applied on the event loop; a large one, one of many structs, or any from
  a user whose updates proved slow is read and tried in the trial worker first, within
  `max_apply_s` (see `collab.rooms.trial`). Apply time is charged to the user's
  `ApplyBudget`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from collab.bus.base import Bus
from collab.errors import ProtocolError, RoomUnavailable, StoreError
from collab.observability.counters import DocTraffic, LatencyHistogram
from collab.protocol.close_codes import CloseCode
from collab.protocol.messages import (
    Message,
    SyncStep2,
    Update,
    decode_message,
    encode_sync_step1,
    update_payload,
)
from collab.protocol.updates import UpdateShape, read_text_insert, read_update
from collab.protocol.websocket import OutgoingFrame
from collab.rooms.budget import ApplyBudget
from collab.rooms.document import DocumentRoom, PartlyApplied
from collab.rooms.effects import (
    Broadcast,
    BusOrigin,
    Edit,
    Effect,
    Origin,
    PeerOrigin,
    Publish,
    Reply,
    ServerOrigin,
)
from collab.rooms.peer import Peer
from collab.rooms.trial import TrialWorker, UpdateTooCostly
from collab.store.base import Store
from collab.tasks import cancel_and_wait, spawn

log = logging.getLogger(__name__)

STORE_RETRY_MAX_S = 5.0
# Updates up to this size and struct count are read and applied on the event loop: reading
# one costs at most a few milliseconds, and keystrokes and ordinary pastes are far below.
# So is an insert of one run of text of any size (reading it is a UTF-8 check; integrating
# it, one struct). Others go through the trial worker (measurements: loadtests/RESULTS.md,
# "Hostile updates").
INLINE_MAX_UPDATE_BYTES = 16 * 1024
INLINE_MAX_STRUCTS = 16
MAX_BUS_BACKLOG = 10_000
KNOWN_UPDATES_PER_ROOM = 32
UNCHARGED_APPLY_S = 0.0001


@dataclass(frozen=True, slots=True)
class RoomLimits:
    flush_interval_s: float = 0.1
    flush_max_batch: int = 512
    compact_after_updates: int = 1000
    grace_s: float = 10.0
    max_awareness_state_bytes: int = 64 * 1024
    max_document_bytes: int = 0
    max_pending_per_room: int = 10_000
    awareness_timeout_s: float = 30.0
    max_apply_s: float = 0.1
    apply_s_per_s: float = 0.25
    apply_burst_s: float = 1.0
    throttle_s: float = 60.0


@dataclass(eq=False)
class LiveRoom:
    """A loaded room with its local peers and the updates not yet in the store."""

    room: DocumentRoom
    peers: dict[str, Peer] = field(default_factory=dict)
    holders: int = 0
    pending: list[bytes] = field(default_factory=list)
    logged_updates: int = 0
    # The document holds changes neither the log nor `pending` has (updates from other
    # instances, or a backlog collapsed while the store was down): compaction writes them.
    unsaved_state: bool = False
    unload_timer: asyncio.TimerHandle | None = None
    unloading: asyncio.Task[None] | None = None
    # Bus frames that arrived while a large bus update was read in the trial worker, and
    # whether some were dropped for going over MAX_BUS_BACKLOG (then a resync follows).
    bus_backlog: list[bytes] | None = None
    bus_resync_due: bool = False
    # Digests of large updates the room took whole, most recent last (see `_edit_tried`).
    known_updates: OrderedDict[bytes, None] = field(default_factory=OrderedDict)

    @property
    def room_id(self) -> str:
        return self.room.room_id


ChangeListener = Callable[[LiveRoom, str | None], None]
"""Called after a local change (a peer's or the server's) with the acting user's id."""


class RoomManager:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        limits: RoomLimits,
        *,
        on_change: ChangeListener | None = None,
    ) -> None:
        self._on_change = on_change
        self._store = store
        self._bus = bus
        self._limits = limits
        self._rooms: dict[str, LiveRoom] = {}
        self._loading: dict[str, asyncio.Future[LiveRoom]] = {}
        self._dirty: dict[str, LiveRoom] = {}
        self._pending_count = 0
        self._flush_wakeup = asyncio.Event()
        # Armed by the first change after a flush (or by a failed flush, for its retry): an
        # idle server has no flush timer, a busy one one per interval.
        self._flush_timer: asyncio.TimerHandle | None = None
        self._flush_lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False
        self.store_healthy = True
        self.slow_consumer_disconnects = 0
        self.bus_resyncs = 0
        # Read by the metrics collector at scrape time; the per-message paths only add to them.
        self.traffic = DocTraffic()
        self.apply_time = LatencyHistogram()
        self.flush_time = LatencyHistogram()
        self.store_failures = 0
        self.budget = ApplyBudget(
            rate_s_per_s=limits.apply_s_per_s,
            burst_s=limits.apply_burst_s,
            throttle_s=limits.throttle_s,
        )
        self._trials = TrialWorker()
        self.tried_updates = 0
        self.costly_updates = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_loop(), name="room-flusher")
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="room-sweeper")

    async def _sweep_loop(self) -> None:
        """Expire awareness states of clients on instances that died (bus rooms only)."""
        interval = max(self._limits.awareness_timeout_s / 6, 0.05)
        while True:
            await asyncio.sleep(interval)
            for live in list(self._rooms.values()):
                self._execute(
                    live, live.room.expire_remote_awareness(self._limits.awareness_timeout_s)
                )

    async def close(self, *, close_code: CloseCode = CloseCode.SERVICE_RESTART) -> None:
        """Close every peer with `close_code`, flush every room, then stop. Never loses a
        flushed update; updates the store refused stay logged as errors. Idempotent."""
        if self._closed:
            return
        self._closed = True
        peers = [peer for live in self._rooms.values() for peer in live.peers.values()]
        for peer in peers:
            peer.request_close(close_code, "server shutting down; reconnect")
        await asyncio.gather(*(peer.wait_closed() for peer in peers), return_exceptions=True)
        await cancel_and_wait([self._flusher, self._sweeper])
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        for live in list(self._rooms.values()):
            if live.unload_timer is not None:
                live.unload_timer.cancel()
        try:
            await self._flush()
            for live in list(self._rooms.values()):
                await self._compact(live)
        except StoreError:
            log.exception("final flush failed; %d updates not stored", self._pending_count)
        for live in list(self._rooms.values()):
            await self._drop(live)
        await self._trials.close()

    @property
    def loaded_rooms(self) -> int:
        return len(self._rooms)

    @property
    def pending_updates(self) -> int:
        """Applied updates not yet written to the store."""
        return self._pending_count

    def get(self, room_id: str) -> LiveRoom | None:
        return self._rooms.get(room_id)

    # -- holding rooms -----------------------------------------------------------------------

    async def acquire(self, room_id: str) -> LiveRoom:
        """Hold a room (loading it once if needed). Raises `RoomUnavailable`."""
        while True:
            if self._closed:
                raise RoomUnavailable("the server is shutting down")
            live = self._rooms.get(room_id)
            if live is None:
                loading = self._loading.get(room_id)
                if loading is None:
                    loading = asyncio.ensure_future(self._load(room_id))
                    self._loading[room_id] = loading
                live = await asyncio.shield(loading)
            if live.unloading is not None:
                await asyncio.shield(live.unloading)
                continue
            live.holders += 1
            if live.unload_timer is not None:
                live.unload_timer.cancel()
                live.unload_timer = None
            return live

    def release(self, live: LiveRoom) -> None:
        live.holders -= 1
        if live.holders == 0 and not self._closed:
            self._schedule_unload(live)

    @contextlib.asynccontextmanager
    async def holding(self, room_id: str) -> AsyncIterator[LiveRoom]:
        live = await self.acquire(room_id)
        try:
            yield live
        finally:
            self.release(live)

    async def _load(self, room_id: str) -> LiveRoom:
        try:
            try:
                stored = await self._store.load(room_id)
            except StoreError as error:
                self.store_healthy = False
                raise RoomUnavailable(f"could not load {room_id}: {error}") from error
            if not self._dirty:
                self.store_healthy = True
            try:
                room = DocumentRoom.from_stored(
                    room_id, stored, max_document_bytes=self._limits.max_document_bytes
                )
            except ProtocolError as error:
                log.error("room %s: stored document does not decode: %s", room_id, error)
                raise RoomUnavailable(f"stored document {room_id} is corrupt") from error
            await self._index_values(room)
            live = LiveRoom(room, logged_updates=len(stored.updates))
            self._rooms[room_id] = live
            await self._bus.subscribe(room_id, self._on_bus_message, self._on_bus_resync)
            # Ask other instances for what we miss; they answer with sync step 2.
            self._bus.publish(room_id, encode_sync_step1(room.doc.get_state()))
            self._schedule_unload(live)
            log.debug("room %s loaded (%d logged updates)", room_id, len(stored.updates))
            return live
        finally:
            self._loading.pop(room_id, None)

    async def _index_values(self, room: DocumentRoom) -> None:
        """Tell a loaded room where its document's values are, reading its state in the
        trial worker when it is large. A state the reader refuses (written before a rule
        existed) leaves the index empty: the room works, text among those values passes."""
        state = room.encoded_state()
        try:
            shape = _read_here(state)
            if shape is None:
                shape = await self._trials.read(state)
        except ProtocolError as error:
            log.warning("room %s: stored state not indexed: %s", room.room_id, error)
            return
        room.index_values(shape)

    def _schedule_unload(self, live: LiveRoom) -> None:
        if live.unload_timer is not None:
            live.unload_timer.cancel()
        loop = asyncio.get_running_loop()
        live.unload_timer = loop.call_later(self._limits.grace_s, self._start_unload, live)

    def _start_unload(self, live: LiveRoom) -> None:
        live.unload_timer = None
        if live.holders == 0 and live.unloading is None and not self._closed:
            live.unloading = asyncio.create_task(self._unload(live), name=f"unload-{live.room_id}")

    async def _unload(self, live: LiveRoom) -> None:
        try:
            await self._flush()
            await self._compact(live)
        except StoreError as error:
            log.warning("room %s: unload postponed, store failed: %s", live.room_id, error)
            live.unloading = None
            self._schedule_unload(live)
            return
        await self._drop(live)

    async def _drop(self, live: LiveRoom) -> None:
        self._rooms.pop(live.room_id, None)
        self._dirty.pop(live.room_id, None)
        with contextlib.suppress(Exception):
            await self._bus.unsubscribe(live.room_id)
        live.room.close()
        log.debug("room %s unloaded", live.room_id)

    # -- peers and messages ------------------------------------------------------------------

    def join(self, live: LiveRoom, peer: Peer) -> None:
        """Attach a connected peer: it gets our sync step 1 and the awareness states."""
        live.peers[peer.peer_id] = peer
        self._execute(live, live.room.join(peer.peer_id))

    def leave(self, live: LiveRoom, peer: Peer) -> None:
        if live.peers.pop(peer.peer_id, None) is not None:
            self._execute(live, live.room.leave(peer.peer_id))

    def receive(self, live: LiveRoom, peer: Peer, frame: bytes) -> Coroutine[Any, Any, bool] | None:
        """Handle one binary frame from a peer. Raises `ProtocolError` for bad input.

        Returns None when the frame was handled, or a coroutine the caller must await before
        the peer's next frame: the frame is an update that is read and tried in the trial
        worker before it is applied (it raises `ProtocolError` too)."""
        update = update_payload(frame)
        if update is None:
            message = decode_message(
                frame, max_awareness_state_bytes=self._limits.max_awareness_state_bytes
            )
            if not isinstance(message, SyncStep2):
                self._execute(live, self._receive_timed(live, message, peer.origin))
                return None
            update, relayed = message.update, None
        else:
            # Most frames are edits: no message object, effect list or dispatch for them.
            relayed = frame
        origin = peer.origin
        if not origin.can_write:
            return None
        must_try, shape = self._route(live, update, peer.user_id)
        if must_try:
            return self._edit_tried(live, update, origin, peer.user_id, relayed, shape)
        self._edit(live, update, origin, peer.user_id, relayed, shape)
        return None

    async def apply_server_update(
        self, live: LiveRoom, update: bytes, actor: str | None = None
    ) -> bool:
        """Apply an update from the server itself (on behalf of `actor`). Returns whether it
        changed the document. Raises `ProtocolError`: `InvalidUpdate`,
        `MissingDependencies`, `UpdateTooCostly`, `ApplyBudgetExceeded`."""
        origin = ServerOrigin()
        must_try, shape = self._route(live, update, actor)
        if must_try:
            return await self._edit_tried(live, update, origin, actor, None, shape)
        return self._edit(live, update, origin, actor, None, shape)

    def _route(
        self, live: LiveRoom, update: bytes, actor: str | None
    ) -> tuple[bool, UpdateShape | None]:
        """Whether `update` must be tried in the worker before it is applied, and its shape
        when it was read here."""
        if self.budget.is_suspect(actor):
            return True, None
        shape = _read_here(update)
        if shape is None:
            return True, None
        many_structs = shape.struct_count > INLINE_MAX_STRUCTS
        return many_structs and live.room.carries_new_structs(shape), shape

    async def _edit_tried(
        self,
        live: LiveRoom,
        update: bytes,
        origin: PeerOrigin | ServerOrigin,
        actor: str | None,
        frame: bytes | None,
        shape: UpdateShape | None,
    ) -> bool:
        """Read `update` in the trial worker if not read yet and try it on a replica of the
        room's document there, unless it brings nothing new; then `_edit` it. A large update
        this room already took whole (a client re-sending it) is known by its digest and
        costs neither a read nor a trial."""
        digest = None
        if len(update) > INLINE_MAX_UPDATE_BYTES:
            # hashlib lets go of the GIL for large inputs: the event loop goes on meanwhile.
            digest = await asyncio.to_thread(_digest_of, update)
            if digest in live.known_updates:
                live.known_updates.move_to_end(digest)
                return False
        self.tried_updates += 1
        room = live.room
        if shape is None or (
            room.missing_dependencies(shape) is None and room.carries_new_structs(shape)
        ):
            try:
                result = await self._trials.trial(
                    live.room_id, room.state_since, update, self._limits.max_apply_s
                )
            except UpdateTooCostly:
                self.costly_updates += 1
                self.budget.throttle(actor)
                raise
            shape = result.shape
            # The budget counts event-loop time, charged by `_edit`; the worker's time is
            # bounded by the deadline. A slow trial marks the user a suspect all the same.
            if result.apply_s is not None:
                self.budget.note_apply(actor, result.apply_s)
        if self._rooms.get(live.room_id) is not live:
            return False  # unloaded meanwhile: its holder is gone, the update with it
        changed = self._edit(live, update, origin, actor, frame, shape)
        if digest is not None and room.missing_dependencies(shape) is None:
            if not room.carries_new_structs(shape):  # all of it is in the room now
                live.known_updates[digest] = None
                if len(live.known_updates) > KNOWN_UPDATES_PER_ROOM:
                    live.known_updates.popitem(last=False)
        return changed

    def _edit(
        self,
        live: LiveRoom,
        update: bytes,
        origin: PeerOrigin | ServerOrigin,
        actor: str | None,
        frame: bytes | None = None,
        shape: UpdateShape | None = None,
    ) -> bool:
        """Apply an update made on this instance (that came in `frame`, if any) and carry out
        its edit; charge its apply time to `actor`. Returns whether it changed the document.
        Raises `ApplyBudgetExceeded` after the edit when the actor went over their budget."""
        started = time.perf_counter()
        try:
            edit = live.room.apply_local_update(update, origin, frame, shape)
        except PartlyApplied as partial:
            # What the library kept of a refused update is the room's now: everyone gets it.
            self._carry_out_edit(live, partial.edit)
            if self._on_change is not None:
                self._on_change(live, actor)
            raise
        elapsed_s = time.perf_counter() - started
        # Applies this short are not charged: the message rates bound what they can add up
        # to (COLLAB_USER_MESSAGES_PER_S x 0.1 ms: 40 ms/s by default), and keystrokes skip
        # the bookkeeping.
        over = self.budget.charge(actor, elapsed_s) if elapsed_s > UNCHARGED_APPLY_S else None
        if isinstance(edit, Edit):
            self.apply_time.observe(elapsed_s)
            self._carry_out_edit(live, edit)
            if self._on_change is not None:
                self._on_change(live, actor)
        elif edit is not None:
            self._execute(live, [edit])  # the update left a gap: ask the peer for it
        if over is not None:
            raise over
        return isinstance(edit, Edit)

    def _receive_timed(self, live: LiveRoom, message: Message, origin: Origin) -> list[Effect]:
        """`live.room.receive`, timed into `apply_time` when it changed the document."""
        return self._timed(live, live.room.receive, message, origin)

    def _timed(
        self, live: LiveRoom, apply: Callable[[Any, Any], list[Effect]], *args: Any
    ) -> list[Effect]:
        """`apply(*args)`, timed into `apply_time` when it changed the room's document."""
        version = live.room.version
        started = time.perf_counter()
        effects = apply(*args)
        if live.room.version != version:
            self.apply_time.observe(time.perf_counter() - started)
        return effects

    def _on_bus_message(self, room_id: str, frame: bytes) -> None:
        live = self._rooms.get(room_id)
        if live is None:
            return
        backlog = live.bus_backlog
        if backlog is None:
            self._receive_from_bus(live, frame)
        elif len(backlog) < MAX_BUS_BACKLOG:
            backlog.append(frame)
        else:
            # Dropped, as pub/sub may drop: the resync after the read asks for all of it.
            live.bus_resync_due = True

    def _receive_from_bus(self, live: LiveRoom, frame: bytes) -> None:
        """Apply a bus frame; a large update is read in the trial worker first, and the
        room's later bus frames wait for it, in order."""
        try:
            message = decode_message(frame)
            version = live.room.version
            if isinstance(message, Update | SyncStep2):
                update = message.update
                shape = _read_here(update)
                if shape is None:
                    live.bus_backlog = []
                    spawn(self._read_bus_update(live, update), name="bus-read")
                    return
                effects = self._timed(live, live.room.apply_bus_update, update, shape)
            else:
                effects = self._receive_timed(live, message, BusOrigin())
        except ProtocolError as error:
            self._refused_from_bus(live, error)
            return
        self._carry_out_bus_effects(live, effects, version)

    async def _read_bus_update(self, live: LiveRoom, update: bytes) -> None:
        try:
            shape = await self._trials.read(update)
            if self._rooms.get(live.room_id) is live:
                version = live.room.version
                effects = live.room.apply_bus_update(update, shape)
                self._carry_out_bus_effects(live, effects, version)
        except ProtocolError as error:
            self._refused_from_bus(live, error)
        backlog, live.bus_backlog = live.bus_backlog or [], None
        for index, frame in enumerate(backlog):
            self._receive_from_bus(live, frame)
            if live.bus_backlog is not None:  # another read: the rest waits behind it
                live.bus_backlog.extend(backlog[index + 1 :])
                return
        if live.bus_resync_due:
            live.bus_resync_due = False
            self._on_bus_resync(live.room_id)

    def _refused_from_bus(self, live: LiveRoom, error: ProtocolError) -> None:
        log.warning("room %s: dropped an invalid bus message: %s", live.room_id, error)
        if isinstance(error, PartlyApplied):
            live.unsaved_state = True
            self._broadcast(live, error.edit.frame, None)

    def _carry_out_bus_effects(
        self, live: LiveRoom, effects: list[Effect], version_before: int
    ) -> None:
        if live.room.version != version_before:
            live.unsaved_state = True  # another instance's change: compaction stores it
        self._execute(live, effects)

    def _on_bus_resync(self, room_id: str) -> None:
        """Messages may have been lost: ask the other instances for what we miss. They notice
        what *they* missed from us by the same mechanism and ask in turn."""
        live = self._rooms.get(room_id)
        if live is not None:
            self.bus_resyncs += 1
            self._bus.publish(room_id, encode_sync_step1(live.room.doc.get_state()))

    def _execute(self, live: LiveRoom, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Reply):
                peer = live.peers.get(effect.peer_id)
                if peer is not None:
                    self.traffic.count_sent(effect.frame, 1)
                    if not peer.enqueue(OutgoingFrame(effect.frame)):
                        self._close_slow(peer)
            elif isinstance(effect, Edit):
                self._carry_out_edit(live, effect)
            elif isinstance(effect, Broadcast):
                self._broadcast(live, effect.frame, effect.exclude)
            elif isinstance(effect, Publish):
                self._bus.publish(live.room_id, effect.frame)

    def _carry_out_edit(self, live: LiveRoom, edit: Edit) -> None:
        self._broadcast(live, edit.frame, edit.exclude)
        self._bus.publish(live.room_id, edit.frame)
        self._persist(live, edit.update)

    def _broadcast(self, live: LiveRoom, frame: bytes, exclude: str | None) -> None:
        # One frame object for the room: its wire bytes are built once.
        outgoing = OutgoingFrame(frame)
        peers = live.peers
        for peer_id, peer in peers.items():
            if peer_id != exclude and not peer.enqueue(outgoing):
                self._close_slow(peer)
        # Counted once per broadcast, not per delivery: the loop above stays as it was.
        self.traffic.count_sent(frame, len(peers) - (exclude in peers))

    def _persist(self, live: LiveRoom, update: bytes) -> None:
        self._dirty[live.room_id] = live
        if self._flush_timer is None:
            self._flush_in(self._limits.flush_interval_s)
        if len(live.pending) >= self._limits.max_pending_per_room:
            # The store is down or slow. The document itself holds every update, so the
            # backlog collapses into "write a snapshot" and memory stays bounded by documents.
            self._pending_count -= len(live.pending)
            live.pending.clear()
            live.unsaved_state = True
            log.warning(
                "room %s: store backlog over its bound; a snapshot will be written", live.room_id
            )
            return
        live.pending.append(update)
        self._pending_count += 1
        if self._pending_count >= self._limits.flush_max_batch:
            self._flush_wakeup.set()

    def _close_slow(self, peer: Peer) -> None:
        self.slow_consumer_disconnects += 1
        log.warning(
            "peer %s: outbox over its bound (%d bytes queued); closing as too slow",
            peer.peer_id,
            peer.queued_bytes,
        )
        peer.request_close(CloseCode.TRY_AGAIN_LATER, "client too slow: outbox full")

    # -- persistence -------------------------------------------------------------------------

    def _flush_in(self, delay_s: float) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        self._flush_timer = asyncio.get_running_loop().call_later(delay_s, self._flush_due)

    def _flush_due(self) -> None:
        self._flush_timer = None
        self._flush_wakeup.set()

    async def _flush_loop(self) -> None:
        """Flush when the timer armed by a change is due, or at once when `flush_max_batch`
        updates wait; after a store failure, retry with a growing delay."""
        retry_s = 0.0
        while True:
            await self._flush_wakeup.wait()
            self._flush_wakeup.clear()
            if not self._dirty:
                continue
            try:
                await self._flush()
                retry_s = 0.0
            except StoreError as error:
                retry_s = min(
                    max(retry_s * 2, self._limits.flush_interval_s * 2, 0.2), STORE_RETRY_MAX_S
                )
                log.warning("store write failed, retrying in %.1f s: %s", retry_s, error)
                # Replaces the timer a change may have armed meanwhile: the retry waits.
                self._flush_in(retry_s)

    async def _flush(self) -> None:
        """Write every pending update (in batches of `flush_max_batch`), then compact rooms
        whose log grew past the threshold or whose backlog collapsed. Raises `StoreError`;
        nothing is dropped on failure."""
        async with self._flush_lock:
            while self._dirty:
                batch: list[tuple[str, bytes]] = []
                taken: list[tuple[LiveRoom, int]] = []
                for live in list(self._dirty.values()):
                    room_budget = self._limits.flush_max_batch - len(batch)
                    if room_budget <= 0:
                        break
                    updates = live.pending[:room_budget]
                    batch.extend((live.room_id, update) for update in updates)
                    taken.append((live, len(updates)))
                if batch:
                    await self._append(batch)
                for live, count in taken:
                    del live.pending[:count]
                    live.logged_updates += count
                    self._pending_count -= count
                for live, _ in taken:
                    if (
                        live.unsaved_state
                        or live.logged_updates >= self._limits.compact_after_updates
                    ):
                        await self._compact(live)
                        # A compaction merges up to `compact_after_updates` updates on the
                        # event loop, and busy rooms reach the threshold together: let the
                        # edits waiting meanwhile through between two compactions.
                        await asyncio.sleep(0)
                    if not live.pending:
                        self._dirty.pop(live.room_id, None)

    async def _append(self, batch: list[tuple[str, bytes]]) -> None:
        started = time.perf_counter()
        try:
            await self._store.append_updates(batch)
        except StoreError:
            self.store_healthy = False
            self.store_failures += 1
            raise
        self.store_healthy = True
        elapsed_s = time.perf_counter() - started
        self.flush_time.observe(elapsed_s)
        log.debug("flushed %d updates in %.1f ms", len(batch), elapsed_s * 1e3)

    async def _compact(self, live: LiveRoom) -> None:
        """Merge the room's whole state into the stored snapshot and drop its log."""
        if live.logged_updates == 0 and not live.unsaved_state:
            return
        # Cleared before the await: a change arriving meanwhile sets it again.
        live.unsaved_state = False
        try:
            await self._store.compact(live.room_id, live.room.encode_state())
        except StoreError:
            live.unsaved_state = True
            self.store_healthy = False
            self.store_failures += 1
            raise
        self.store_healthy = True
        live.logged_updates = 0


def _digest_of(update: bytes) -> bytes:
    return hashlib.blake2b(update, digest_size=16).digest()


def _read_here(update: bytes) -> UpdateShape | None:
    """`read_update(update)` when reading it on the event loop costs at most a few
    milliseconds (up to INLINE_MAX_UPDATE_BYTES, or one run of text of any size); None when
    it is to be read in the trial worker. Raises `InvalidUpdate`."""
    if len(update) <= INLINE_MAX_UPDATE_BYTES:
        return read_update(update)
    return read_text_insert(update)
