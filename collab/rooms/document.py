"""The document room: one pycrdt document, its awareness states and who may change them.

`DocumentRoom` is pure: `join`, `receive` and `leave` apply a message to the room's state and
return the effects the I/O layer must carry out. It never awaits and imports no I/O library,
so every rule here is tested without sockets.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pycrdt import Doc, TransactionEvent, merge_updates

from collab.errors import DocumentTooLarge, MissingDependencies, PolicyViolation, ProtocolError
from collab.protocol.messages import (
    EMPTY_UPDATE,
    AwarenessUpdate,
    Message,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    Update,
    encode_sync_step1,
    encode_sync_step2,
    encode_update,
)
from collab.protocol.updates import (
    InvalidUpdate,
    UpdateShape,
    add_values,
    admit,
    advance,
    carries_new_structs,
    misplaced_text,
    missing_dependencies,
    read_state_vector,
    read_update,
)
from collab.rooms.awareness import RoomAwareness
from collab.rooms.crdt_errors import (
    INVALID_UPDATE,
    PartlyApplied,
    contained_pycrdt_errors,
)
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
from collab.rooms.native_apply import updater
from collab.rooms.note_watch import NoteWatch
from collab.store.base import StoredDocument

# The state vector of an empty document: no clients (var_uint 0).
EMPTY_STATE_VECTOR = b"\x00"
# An update's struct section with no clients: put before a delete set, an update of deletes only.
EMPTY_STRUCTS = b"\x00"

# A stock client sends its updates in order and answers our sync step 1 with what we miss,
# so it leaves a gap at most once per reconnection; a connection that keeps leaving gaps
# is not a stock client.
MAX_GAPS_PER_PEER = 16


class DocumentRoom:
    """A loaded document and the awareness of its clients, keyed by `room_id`."""

    def __init__(
        self,
        room_id: str,
        doc: Doc[Any] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_document_bytes: int = 0,
        awareness_batch_s: float = 0.0,
        awareness_max_per_s: float = 0.0,
    ) -> None:
        self.room_id = room_id
        # The size cap (0: none), checked without encoding the document on every update:
        # the encoded size at the last exact measurement plus the size of every change
        # applied since is the running estimate; only when it would pass the cap is the
        # document measured (and, if still needed, the update tried on a copy).
        self.max_document_bytes = max_document_bytes
        self._measured_bytes = 0
        self._unmeasured_bytes = 0
        self.awareness = RoomAwareness(
            clock=clock, batch_s=awareness_batch_s, max_per_s=awareness_max_per_s
        )
        self.doc: Doc[Any] = doc if doc is not None else Doc()
        # Bumped on every change of the document; REST caches and ETags key on it.
        self.version = 0
        self._peers: set[str] = set()
        self._captured_updates: list[bytes] = []
        # The whole state and sync step 2 for a client with an empty document, with the
        # version they encode: a join storm on a big document (or a run of trials of large
        # updates) costs one encode per change, not one per client.
        self._full_state: tuple[int, bytes] | None = None
        self._full_state_step2: tuple[int, bytes] | None = None
        # Whether a change may have reached the note's catalog fields (read by the indexer).
        self.note_watch = NoteWatch(self.doc)
        self._subscription = self.doc.observe(self._capture_update)
        self._apply_update = updater(self.doc)
        # The document's state vector, kept beside it: every update is checked against it
        # for missing dependencies and duplicates without asking the CRDT library.
        self._clocks: dict[int, int] = read_state_vector(self.doc.get_state())
        # Updates with missing dependencies each peer sent (see MAX_GAPS_PER_PEER).
        self._gaps: dict[str, int] = {}
        # Where the document's items of value content are (see `misplaced_text`): filled by
        # `index_values` when the room is loaded, then by every update applied.
        self._values: dict[int, list[tuple[int, int]]] = {}

    @classmethod
    def from_stored(
        cls,
        room_id: str,
        stored: StoredDocument,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_document_bytes: int = 0,
        awareness_batch_s: float = 0.0,
        awareness_max_per_s: float = 0.0,
    ) -> DocumentRoom:
        """Build a room from what the store holds. Raises `ProtocolError` on corrupt data.
        A stored document above `max_document_bytes` loads; it only refuses growth."""
        room = cls(
            room_id,
            clock=clock,
            max_document_bytes=max_document_bytes,
            awareness_batch_s=awareness_batch_s,
            awareness_max_per_s=awareness_max_per_s,
        )
        for part in stored.parts:
            room._apply(part)
        room._clocks = read_state_vector(room.doc.get_state())
        return room

    @property
    def peer_ids(self) -> frozenset[str]:
        return frozenset(self._peers)

    def encode_state(self) -> bytes:
        """The whole document as one Yjs v1 update."""
        return self.doc.get_update()

    def index_values(self, shape: UpdateShape) -> None:
        """Record where the values of the document's state (`shape` is its reading) are."""
        add_values(self._values, shape)

    def state_since(self, state_vector: bytes | None) -> bytes:
        """What the document has beyond `state_vector`, as one Yjs v1 update (the whole
        state, encoded once per version, for None)."""
        if state_vector is None:
            return self.encoded_state()
        return self.doc.get_update(state_vector)

    @property
    def content_clock(self) -> int:
        """How far the document's content has come: the sum of its state vector, as the
        update checks keep it (no encoding). Grows with every struct added."""
        return sum(self._clocks.values())

    def encoded_state(self) -> bytes:
        """`encode_state()`, encoded once per version of the document."""
        cached = self._full_state
        if cached is None or cached[0] != self.version:
            cached = self._full_state = (self.version, self.doc.get_update())
        return cached[1]

    def join(self, peer_id: str) -> list[Effect]:
        """Register a peer; it gets our sync step 1 and the current awareness states."""
        self._peers.add(peer_id)
        effects: list[Effect] = [Reply(peer_id, encode_sync_step1(self.doc.get_state()))]
        return effects + self.awareness.greeting(peer_id)

    def leave(self, peer_id: str) -> list[Effect]:
        """Unregister a peer and remove, for everyone, the awareness states it introduced."""
        self._peers.discard(peer_id)
        self._gaps.pop(peer_id, None)
        return self.awareness.leave(peer_id)

    def receive(self, message: Message, origin: Origin) -> list[Effect]:
        """Apply one decoded message. Raises `ProtocolError` when its content is invalid."""
        # Most messages are updates: checked first.
        if isinstance(message, Update):
            return self._receive_update(message.update, origin)
        if isinstance(message, SyncStep1):
            return self._answer_step1(message.state_vector, origin)
        if isinstance(message, SyncStep2):
            return self._receive_update(message.update, origin)
        if isinstance(message, AwarenessUpdate):
            return self.awareness.receive(message, origin)
        if isinstance(message, QueryAwareness):
            if isinstance(origin, PeerOrigin):
                return self.awareness.greeting(origin.peer_id)
            return []
        raise ProtocolError(f"unexpected message {type(message).__name__}")

    def _answer_step1(self, state_vector: bytes, origin: Origin) -> list[Effect]:
        if state_vector == EMPTY_STATE_VECTOR:
            frame = self._full_state_sync_step2()
        else:
            with contained_pycrdt_errors("invalid state vector in sync step 1"):
                diff = self.doc.get_update(state_vector)
            frame = encode_sync_step2(diff)
        if isinstance(origin, PeerOrigin):
            return [Reply(origin.peer_id, frame)]
        if isinstance(origin, BusOrigin):
            if self._lacks_some_of(state_vector):
                # The other instance holds changes this one lacks. Its step 1 was sent
                # because it missed messages (a reconnection, a gap); ours may have gone
                # unheard (published while it was not subscribed), and what it published
                # meanwhile may have been dropped from its bounded queue: ask again.
                return [Publish(frame), Publish(encode_sync_step1(self.doc.get_state()))]
            return [Publish(frame)]
        return []

    def resync(self) -> list[Effect]:
        """What to publish when bus messages may have been lost (a gap, a reconnection): this
        room's step 1, so the other instances send what it lacks, and its deletions, which a
        state vector does not show: an instance whose only missed edits were deletions would
        otherwise never be asked for them."""
        state = self.doc.get_state()
        effects: list[Effect] = [Publish(encode_sync_step1(state))]
        deletions = self.doc.get_update(state)  # no structs: the delete set alone
        if deletions != EMPTY_UPDATE:
            effects.append(Publish(encode_update(deletions)))
        return effects

    def _lacks_some_of(self, state_vector: bytes) -> bool:
        """Whether a peer with `state_vector` holds changes this document lacks."""
        try:
            theirs = read_state_vector(state_vector)
        except InvalidUpdate:
            return False
        ours = self._clocks
        return any(clock > ours.get(client, 0) for client, clock in theirs.items())

    def _full_state_sync_step2(self) -> bytes:
        cached = self._full_state_step2
        if cached is None or cached[0] != self.version:
            cached = (self.version, encode_sync_step2(self.encoded_state()))
            self._full_state_step2 = cached
        return cached[1]

    def _receive_update(self, update: bytes, origin: Origin) -> list[Effect]:
        if isinstance(origin, BusOrigin):
            return self.apply_bus_update(update)
        effect = self.apply_local_update(update, origin)
        return [] if effect is None else [effect]

    def apply_bus_update(self, update: bytes, shape: UpdateShape | None = None) -> list[Effect]:
        """Apply an update another instance published (`shape` is `read_update(update)` when
        the caller has it). Raises `InvalidUpdate`."""
        if update == EMPTY_UPDATE:
            return []
        if shape is None:
            shape = read_update(update)
        if self.missing_dependencies(shape) is not None:
            # A message of another instance was lost: ask them all for what we miss rather
            # than apply part of it.
            return [Publish(encode_sync_step1(self.doc.get_state()))]
        if not self.carries_new_structs(shape) and not shape.deletes:
            return []
        # No size cap: another instance already accepted it, refusing it would diverge.
        applied = self._apply_checked(update, shape)
        return [] if applied is None else [Broadcast(encode_update(applied))]

    def apply_local_update(
        self,
        update: bytes,
        origin: PeerOrigin | ServerOrigin,
        frame: bytes | None = None,
        shape: UpdateShape | None = None,
    ) -> Edit | Reply | None:
        """Apply an update made on this instance: by a peer or by the server. Returns the
        `Edit` to carry out, a `Reply` with our sync step 1 when a peer's update depends on
        changes the room does not have (not applied: the peer answers with what we miss),
        or None when the update changes nothing (or the peer may not write). Raises
        `ProtocolError`: `InvalidUpdate`, `MissingDependencies` (server updates),
        `PolicyViolation` (a peer that keeps leaving gaps), `DocumentTooLarge`.

        `frame` is the Update message `update` arrived in, if any: when the whole update
        is new to the document, as a typed edit is, that frame is relayed as it came.
        `shape` is `read_update(update)` when the caller already has it.

        The path of every edit a client types: `receive` with less around it."""
        if isinstance(origin, PeerOrigin) and not origin.can_write:
            return None
        if update == EMPTY_UPDATE:
            return None
        if shape is None:
            shape = read_update(update)
        missing, new = admit(shape, self._clocks)
        if missing is not None:
            return self._answer_gap(missing, origin)
        if shape.text_neighbours:
            misplaced = misplaced_text(shape, self._values)
            if misplaced is not None:
                raise InvalidUpdate(f"invalid Yjs update: {misplaced}")
        if not new:
            if not shape.deletes:
                return None  # a duplicate: nothing to integrate, nothing to measure
            # Only the deletions can be new: the CRDT library reads just those.
            update, frame = EMPTY_STRUCTS + update[shape.delete_set_offset :], None
        elif (
            self.max_document_bytes
            and self._measured_bytes + self._unmeasured_bytes + len(update)
            > self.max_document_bytes
        ):
            measured_bytes = self._size_with(update)
            self._measured_bytes, self._unmeasured_bytes = measured_bytes, 0
        applied = self._apply_checked(update, shape)
        if applied is None:
            return None
        exclude = origin.peer_id if isinstance(origin, PeerOrigin) else None
        if frame is None or applied != update:
            frame = encode_update(applied)
        return Edit(frame, applied, exclude)

    def missing_dependencies(self, shape: UpdateShape) -> str | None:
        """What the room lacks to apply an update of `shape` whole, or None if nothing."""
        return missing_dependencies(shape, self._clocks)

    def carries_new_structs(self, shape: UpdateShape) -> bool:
        """Whether an update of `shape` has structs the room does not have yet."""
        return carries_new_structs(shape, self._clocks)

    def _answer_gap(self, missing: str, origin: PeerOrigin | ServerOrigin) -> Reply:
        if isinstance(origin, ServerOrigin):
            raise MissingDependencies(
                f"update depends on changes the server does not have: {missing}"
            )
        gaps = self._gaps[origin.peer_id] = self._gaps.get(origin.peer_id, 0) + 1
        if gaps > MAX_GAPS_PER_PEER:
            raise PolicyViolation(
                f"more than {MAX_GAPS_PER_PEER} updates that depend on changes the server "
                f"does not have ({missing})"
            )
        return Reply(origin.peer_id, encode_sync_step1(self.doc.get_state()))

    def _apply_checked(self, update: bytes, shape: UpdateShape) -> bytes | None:
        """`_apply` an update whose dependencies the room has, and advance the room's clocks."""
        applied = self._apply(update)
        advance(shape, self._clocks, self._values)
        return applied

    def _size_with(self, update: bytes) -> int:
        """The encoded size of the document once `update` is applied, found without applying
        it here. Raises `DocumentTooLarge` above the cap, `ProtocolError` for an invalid update.

        Costs one encode of the document; when even that exact size plus the update's passes
        the cap, also a decode and an encode of a copy with the update applied (the update
        may still fit: much of it can be content the document already has)."""
        cap = self.max_document_bytes
        state = self.doc.get_update()
        self._measured_bytes, self._unmeasured_bytes = len(state), 0
        if len(state) + len(update) <= cap:
            # The estimate's own rule: an update grows the encoding by about its size at
            # most, usually far less (typing merges into existing runs). Deletions that split
            # many runs can add a little more; the next measurement counts it.
            return len(state) + len(update)
        trial: Doc[Any] = Doc()
        with INVALID_UPDATE:
            trial.apply_update(state)
            trial.apply_update(update)
        size = len(trial.get_update())
        if size > cap:
            raise DocumentTooLarge(
                f"document over COLLAB_MAX_DOCUMENT_BYTES ({cap}): the update would make it "
                f"{size} bytes; not applied"
            )
        return size

    def _apply(self, update: bytes) -> bytes | None:
        """Apply `update`; return what it changed (None if nothing). Raises ProtocolError:
        `PartlyApplied` when the library changed the document before refusing the update."""
        captured = self._captured_updates = []
        try:
            with INVALID_UPDATE:
                self._apply_update(update)
        except ProtocolError as error:
            # pycrdt commits what it integrated before the error: the observer saw it.
            change = self._change_of(captured)
            if change is None:
                raise
            self._clocks = read_state_vector(self.doc.get_state())
            raise PartlyApplied(str(error), change) from error
        return self._change_of(captured)

    def _change_of(self, captured: list[bytes]) -> bytes | None:
        """The change the captured transaction updates make (None if nothing); counted."""
        if len(captured) == 1:
            change = captured[0]
            if change == EMPTY_UPDATE:
                return None
        else:
            changes = [u for u in captured if u != EMPTY_UPDATE]
            if not changes:
                return None
            change = changes[0] if len(changes) == 1 else merge_updates(*changes)
        self.version += 1
        self._unmeasured_bytes += len(change)
        return change

    def _capture_update(self, event: TransactionEvent) -> None:
        update = event.update
        self._captured_updates.append(update)
        self.note_watch.saw_update(update)

    def expire_remote_awareness(self, timeout_s: float) -> list[Effect]:
        """Remove awareness states of clients on instances that died (see `RoomAwareness`)."""
        return self.awareness.expire_remote(timeout_s)

    def close(self) -> None:
        """Stop observing the document; the room must not be used afterwards."""
        self.doc.unobserve(self._subscription)
        self.note_watch.close()
