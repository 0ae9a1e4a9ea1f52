"""The room manager: loads rooms once, connects peers, carries out room effects, persists.

It is the asyncio layer around the pure `DocumentRoom`:

- **Loaded rooms.** `RoomRegistry` (`collab.rooms.registry`) loads each room once, holds it
  while used and unloads it when nobody does; the manager subscribes a loaded room to the bus
  and indexes its values (`_on_loaded`).
- **Group commit.** Applied updates go to `GroupCommit` (`collab.rooms.commit`), which
  writes them to the store in batches and compacts rooms' logs.
- **Change listeners.** Every change applied to a loaded room (a client's edit, a REST edit,
  another instance's update) is told to the listeners registered at construction, in order,
  from one place (`_changed`), with the room, the acting user and whether it was made here;
  the unload listeners are told of each room as it is unloaded.
- **Bounded apply cost.** Every update is read (`read_update`) before the CRDT library sees
  it. Small ones are applied on the event loop; a large one, one of many structs, or any from
  a user whose updates proved slow is read and tried in the trial worker first, within
  `max_apply_s` (see `collab.rooms.trial`). Apply time is charged to the user's
  `ApplyBudget`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from collab.bus.base import Bus
from collab.errors import BusError, ProtocolError, StoreError
from collab.observability.counters import DocTraffic, LatencyHistogram
from collab.protocol.close_codes import CloseCode
from collab.protocol.messages import (
    EMPTY_UPDATE,
    Message,
    SyncStep2,
    Update,
    decode_message,
    encode_sync_step1,
    update_payload,
)
from collab.protocol.updates import UpdateShape
from collab.protocol.websocket import OutgoingFrame
from collab.rooms.budget import ApplyBudget
from collab.rooms.commit import GroupCommit, StoreStats, store_retry_s
from collab.rooms.crdt_errors import PartlyApplied
from collab.rooms.document import DocumentRoom
from collab.rooms.drain import drain_peers
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
from collab.rooms.live import (
    ChangeListener,
    DocumentChange,
    LiveRoom,
    RoomLimits,
    UnloadListener,
)
from collab.rooms.peer import Peer
from collab.rooms.reading import INLINE_MAX_STRUCTS, INLINE_MAX_UPDATE_BYTES, digest_of, read_here
from collab.rooms.registry import RoomRegistry
from collab.rooms.saved import SavedEcho, by_peer, echo_frames
from collab.rooms.sync_gate import LARGE_SYNC_BYTES, SyncGate
from collab.rooms.trial import TrialWorker, UpdateTooCostly
from collab.store.base import Store
from collab.tasks import cancel_and_wait, spawn

__all__ = ["ChangeListener", "DocumentChange", "LiveRoom", "RoomLimits", "RoomManager"]

log = logging.getLogger(__name__)

MAX_BUS_BACKLOG = 10_000
KNOWN_UPDATES_PER_ROOM = 32
UNCHARGED_APPLY_S = 0.0001
# At shutdown, a failed store write is tried again after this, then twice as long each time
# (`store_retry_s`).
FINAL_FLUSH_FIRST_RETRY_S = 0.05


class RoomManager:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        limits: RoomLimits,
        *,
        listeners: Sequence[ChangeListener] = (),
        unload_listeners: Sequence[UnloadListener] = (),
    ) -> None:
        self._listeners = tuple(listeners)
        self._unload_listeners = tuple(unload_listeners)
        self._store = store
        self._bus = bus
        self._limits = limits
        self._commit = GroupCommit(store, limits, on_saved=self._send_saved)
        self._rooms = RoomRegistry(
            store, self._commit, limits, on_loaded=self._on_loaded, on_dropped=self._on_dropped
        )
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False
        self._drain_jobs: dict[str, asyncio.Task[None]] = {}
        self.slow_consumer_disconnects = 0
        self.bus_resyncs = 0
        self.saved_echoes = 0
        # Read by the metrics collector at scrape time; the per-message paths only add to them.
        self.traffic = DocTraffic()
        self.apply_time = LatencyHistogram()
        self.budget = ApplyBudget(
            rate_s_per_s=limits.apply_s_per_s,
            burst_s=limits.apply_burst_s,
            throttle_s=limits.throttle_s,
        )
        self._trials = TrialWorker()
        self.initial_syncs = SyncGate(limits.max_initial_syncs, self._close_slow)
        self.tried_updates = 0
        self.costly_updates = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._commit.start()
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="room-sweeper")

    async def _sweep_loop(self) -> None:
        """Expire awareness states of clients on instances that died (bus rooms only)."""
        interval = max(self._limits.awareness_timeout_s / 6, 0.05)
        while True:
            await asyncio.sleep(interval)
            for live in self._rooms.loaded():
                self._execute(
                    live, live.room.expire_remote_awareness(self._limits.awareness_timeout_s)
                )

    async def close(
        self,
        *,
        close_code: CloseCode = CloseCode.SERVICE_RESTART,
        drain_s: float = 0.0,
        shutdown_timeout_s: float = 10.0,
    ) -> None:
        """Close every peer with `close_code`, in waves over `drain_s` (0: all at once; see
        `collab.rooms.drain`), flush every room, then stop. Never loses a flushed update; a
        store write that fails is retried, with backoff, until `shutdown_timeout_s` after
        the call, and what the store still refuses then is logged as an error. Idempotent."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + shutdown_timeout_s
        # The registry refuses new holds and schedules no unloads from here on.
        self._rooms.close()
        peers = await drain_peers(
            self._rooms.loaded, drain_s, self._between_waves, close_code=close_code
        )
        await asyncio.gather(*(peer.wait_closed() for peer in peers), return_exceptions=True)
        await asyncio.gather(*self._drain_jobs.values())
        await cancel_and_wait([self._sweeper])
        await self._commit.stop()
        await self._final_flush(deadline)
        await self._rooms.drop_all()
        await self._trials.close()
        await self.initial_syncs.close()

    async def _final_flush(self, deadline: float) -> None:
        """Write what every room holds, retrying a failed write with backoff until
        `deadline`: a database restarting under a deploy answers again a moment later, and
        an edit made over REST has no client holding a copy."""
        retry_s = 0.0
        while True:
            try:
                await self._commit.flush()
                for live in self._rooms.loaded():
                    await self._commit.compact(live)
                return
            except StoreError as error:
                left_s = deadline - time.monotonic()
                if left_s <= 0:
                    log.error(
                        "final flush failed; %d updates not stored: %s",
                        self._commit.pending_updates,
                        error,
                    )
                    return
                retry_s = store_retry_s(retry_s, FINAL_FLUSH_FIRST_RETRY_S)
                wait_s = min(retry_s, left_s)
                log.warning("final flush failed, retrying in %.1f s: %s", wait_s, error)
                await asyncio.sleep(wait_s)

    async def _between_waves(self, until_next_s: float) -> None:
        """While draining: store what the clients closed so far sent, and unload the rooms
        they left, waiting for both until the next wave at most. A flush writes until
        nothing is pending, which lasts as long as the remaining clients keep editing, and a
        store may be slow: a job still running goes on beside the next waves, which do not
        start it again."""
        jobs = {"drain-flush": self._commit.flush, "drain-unload": self._rooms.unload_unheld}
        for name, job in jobs.items():
            running = self._drain_jobs.get(name)
            if running is None or running.done():
                self._drain_jobs[name] = asyncio.create_task(self._drain_job(job), name=name)
        await asyncio.wait(self._drain_jobs.values(), timeout=max(0.0, until_next_s))

    async def _drain_job(self, job: Callable[[], Awaitable[None]]) -> None:
        try:
            await job()
        except StoreError as error:
            log.warning("drain: store write failed; retried at the end: %s", error)

    @property
    def shutting_down(self) -> bool:
        """Whether `close` has begun: the instance is draining its connections."""
        return self._closed

    @property
    def loaded_rooms(self) -> int:
        return len(self._rooms)

    @property
    def pending_updates(self) -> int:
        """Applied updates not yet written to the store."""
        return self._commit.pending_updates

    @property
    def store_healthy(self) -> bool:
        return self._commit.store_healthy

    def store_stats(self) -> StoreStats:
        """How the store has fared for the group commit (read by `/metrics`)."""
        return self._commit.stats()

    async def flush(self) -> None:
        """Write every applied update to the store now. Raises `StoreError`."""
        await self._commit.flush()

    def get(self, room_id: str) -> LiveRoom | None:
        return self._rooms.get(room_id)

    def close_peers(self, room_id: str, close_code: CloseCode, reason: str) -> int:
        """Close every local peer of a room (its note was deleted, say); return how many.
        The room then unloads like any room nobody holds."""
        live = self._rooms.get(room_id)
        if live is None:
            return 0
        peers = list(live.peers.values())
        for peer in peers:
            peer.request_close(close_code, reason)
        return len(peers)

    # -- holding rooms -----------------------------------------------------------------------

    async def acquire(self, room_id: str) -> LiveRoom:
        """Hold a room (loading it once if needed). Raises `RoomUnavailable`."""
        return await self._rooms.acquire(room_id)

    def release(self, live: LiveRoom) -> None:
        self._rooms.release(live)

    def holding(self, room_id: str) -> contextlib.AbstractAsyncContextManager[LiveRoom]:
        return self._rooms.holding(room_id)

    async def _on_loaded(self, live: LiveRoom) -> None:
        await self._index_values(live.room)
        await self._bus.subscribe(live.room_id, self._on_bus_message, self._on_bus_resync)
        # Ask other instances for what we miss; they answer with sync step 2.
        self._bus.publish(live.room_id, encode_sync_step1(live.room.doc.get_state()))

    async def _index_values(self, room: DocumentRoom) -> None:
        """Tell a loaded room where its document's values are, reading its state in the
        trial worker when it is large. A state the reader refuses (written before a rule
        existed) leaves the index empty: the room works, text among those values passes."""
        state = room.encoded_state()
        try:
            shape = read_here(state)
            if shape is None:
                shape = await self._trials.read(state)
        except ProtocolError as error:
            log.warning("room %s: stored state not indexed: %s", room.room_id, error)
            return
        room.index_values(shape)

    async def _on_dropped(self, live: LiveRoom) -> None:
        # What the room's last peers changed (their removals, above all) still goes out.
        self._send_awareness_batch(live)
        for listener in self._unload_listeners:
            try:
                listener(live)
            except Exception:
                log.exception("room %s: an unload listener failed", live.room_id)
        try:
            await self._bus.unsubscribe(live.room_id)
        except BusError as error:
            # The bus drops this instance's subscriptions when it reconnects anyway; a
            # message for the room meanwhile finds no room and is ignored.
            log.warning("room %s: bus unsubscribe failed: %s", live.room_id, error)

    # -- peers and messages ------------------------------------------------------------------

    def join(self, live: LiveRoom, peer: Peer) -> None:
        """Attach a connected peer: it gets our sync step 1 and the awareness states."""
        live.peers[peer.peer_id] = peer
        if peer.saved_echo:
            live.saved_peers.add(peer.peer_id)
        self._execute(live, live.room.join(peer.peer_id))

    def leave(self, live: LiveRoom, peer: Peer) -> None:
        self.initial_syncs.forget(peer)
        live.saved_peers.discard(peer.peer_id)
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
            return self._edit_tried(live, update, peer, peer.user_id, relayed, shape)
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
        shape = read_here(update)
        if shape is None:
            return True, None
        many_structs = shape.struct_count > INLINE_MAX_STRUCTS
        return many_structs and live.room.carries_new_structs(shape), shape

    async def _edit_tried(
        self,
        live: LiveRoom,
        update: bytes,
        sender: Peer | ServerOrigin,
        actor: str | None,
        frame: bytes | None,
        shape: UpdateShape | None,
    ) -> bool:
        """Read `update` in the trial worker if not read yet and try it on a replica of the
        room's document there, unless it brings nothing new; then `_edit` it. A large update
        this room already took whole (a client re-sending it) is known by its digest and
        costs neither a read nor a trial.

        A peer's right to write is read again after the wait: its role may have stopped
        writing, or the server may have begun closing it (access withdrawn, token expired or
        revoked), meanwhile. Then nothing is applied. A peer that hung up itself still has
        its update applied: it was sent while the peer could write."""
        origin = sender.origin if isinstance(sender, Peer) else sender
        digest = None
        if len(update) > INLINE_MAX_UPDATE_BYTES:
            # hashlib lets go of the GIL for large inputs: the event loop goes on meanwhile.
            digest = await asyncio.to_thread(digest_of, update)
            if digest in live.known_updates:
                live.known_updates.move_to_end(digest)
                if live.saved_peers:
                    self._note_saved(live, origin, update, queued=False)  # nothing new in it
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
        if isinstance(sender, Peer):
            if sender.closing or not sender.can_write:
                log.info(
                    "room %s: conn %s may no longer write; its tried update is dropped",
                    live.room_id,
                    sender.peer_id,
                )
                return False
            origin = sender.origin
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
            self._carry_out_edit(live, partial.edit, actor)
            raise
        elapsed_s = time.perf_counter() - started
        # Applies this short are not charged: the message rates bound what they can add up
        # to (COLLAB_USER_MESSAGES_PER_S x 0.1 ms: 40 ms/s by default), and keystrokes skip
        # the bookkeeping.
        over = self.budget.charge(actor, elapsed_s) if elapsed_s > UNCHARGED_APPLY_S else None
        if isinstance(edit, Edit):
            self.apply_time.observe(elapsed_s)
            self._carry_out_edit(live, edit, actor)
            if live.saved_peers:  # the one check every edit pays for the saved echo
                self._note_saved(live, origin, update, queued=edit.update == update)
        elif edit is not None:
            self._execute(live, [edit])  # the update left a gap: ask the peer for it
        elif live.saved_peers:
            self._note_saved(live, origin, update, queued=False)  # nothing new in it
        if over is not None:
            raise over
        return isinstance(edit, Edit)

    def _note_saved(
        self, live: LiveRoom, origin: PeerOrigin | ServerOrigin, update: bytes, *, queued: bool
    ) -> None:
        """Echo `update` to the peer that sent it once the store holds it, if it asked for
        that (see `collab.rooms.saved`)."""
        if (
            isinstance(origin, PeerOrigin)
            and origin.peer_id in live.saved_peers
            and update != EMPTY_UPDATE
        ):
            self._commit.note_saved(live, origin.peer_id, update, queued=queued)

    def _send_saved(self, live: LiveRoom, echoes: list[SavedEcho]) -> None:
        """Send each peer its updates the store now holds, merged; a peer that left meanwhile
        gets nothing."""
        for peer_id, updates in by_peer(echoes).items():
            peer = live.peers.get(peer_id)
            if peer is None:
                continue
            for frame in echo_frames(updates):
                self.saved_echoes += 1
                self.traffic.count_sent(frame, 1)
                if not peer.enqueue(OutgoingFrame(frame)):
                    self._close_slow(peer)
                    break

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
                shape = read_here(update)
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
            self._changed(live, None, local=False)

    def _carry_out_bus_effects(
        self, live: LiveRoom, effects: list[Effect], version_before: int
    ) -> None:
        changed = live.room.version != version_before
        if changed and live.remote_changes_at is None:
            live.remote_changes_at = time.monotonic()  # see `LiveRoom.remote_changes_at`
        self._execute(live, effects)
        if changed:
            self._changed(live, None, local=False)

    def _on_bus_resync(self, room_id: str) -> None:
        """Messages may have been lost: ask the other instances for what we miss. They notice
        what *they* missed from us by the same mechanism and ask in turn."""
        live = self._rooms.get(room_id)
        if live is not None:
            self.bus_resyncs += 1
            self._execute(live, live.room.resync())

    def _execute(self, live: LiveRoom, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Reply):
                peer = live.peers.get(effect.peer_id)
                if peer is not None:
                    self.traffic.count_sent(effect.frame, 1)
                    if len(effect.frame) >= LARGE_SYNC_BYTES:
                        self.initial_syncs.send(peer, effect.frame)
                    elif not peer.enqueue(OutgoingFrame(effect.frame)):
                        self._close_slow(peer)
            elif isinstance(effect, Edit):
                self._carry_out_edit(live, effect, None)
            elif isinstance(effect, Broadcast):
                self._broadcast(live, effect.frame, effect.exclude)
            elif isinstance(effect, Publish):
                self._bus.publish(live.room_id, effect.frame)
        if live.awareness_timer is None and live.room.awareness.due:
            live.awareness_timer = asyncio.get_running_loop().call_later(
                self._limits.awareness_batch_s, self._send_awareness_batch, live
            )

    def _send_awareness_batch(self, live: LiveRoom) -> None:
        """The room's awareness tick (see `collab.rooms.awareness`)."""
        if live.awareness_timer is not None:
            live.awareness_timer.cancel()
            live.awareness_timer = None
        if live.dropped:
            # Unloaded: nobody here to tell; the other instances still learn of it.
            for effect in live.room.awareness.take_batch():
                if isinstance(effect, Publish):
                    self._bus.publish(live.room_id, effect.frame)
            return
        self._execute(live, live.room.awareness.take_batch())

    def _carry_out_edit(self, live: LiveRoom, edit: Edit, actor: str | None) -> None:
        """Relay, publish and store a change made on this instance (by `actor`)."""
        self._broadcast(live, edit.frame, edit.exclude)
        self._bus.publish(live.room_id, edit.frame)
        self._commit.note(live, edit.update, actor)
        self._changed(live, actor, local=True)

    def _changed(self, live: LiveRoom, actor: str | None, *, local: bool) -> None:
        """The one place every applied change is told to the listeners. A listener's bug
        is logged and the others are still told: the change itself is already done."""
        if not self._listeners:
            return
        change = DocumentChange(live, actor, local)
        for listener in self._listeners:
            try:
                listener(change)
            except Exception:
                log.exception("room %s: a change listener failed", live.room_id)

    def _broadcast(self, live: LiveRoom, frame: bytes, exclude: str | None) -> None:
        # One frame object for the room: its wire bytes are built once.
        outgoing = OutgoingFrame(frame)
        peers = live.peers
        for peer_id, peer in peers.items():
            if peer_id != exclude and not peer.enqueue(outgoing):
                self._close_slow(peer)
        # Counted once per broadcast, not per delivery: the loop above stays as it was.
        self.traffic.count_sent(frame, len(peers) - (exclude in peers))

    def _close_slow(self, peer: Peer) -> None:
        self.slow_consumer_disconnects += 1
        log.warning(
            "peer %s: outbox over its bound (%d bytes queued); closing as too slow",
            peer.peer_id,
            peer.queued_bytes,
        )
        peer.request_close(CloseCode.TRY_AGAIN_LATER, "client too slow: outbox full")
