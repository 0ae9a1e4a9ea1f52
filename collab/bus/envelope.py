"""Bus messages between instances: the envelope, the sender's outbox, the receiver's gap
detection. No I/O.

Layout (integers big-endian):

    version        1 byte, `ENVELOPE_VERSION`
    id_length      1 byte, 1..255
    instance_id    `id_length` bytes of UTF-8, the sender
    epoch          8 bytes, chosen at random by the sender when it subscribed to the room
    seq            8 bytes, 1 for the sender's first message of the epoch, then +1 each
    frame          the rest: a y-websocket message (the bus does not look inside)

`decode_envelope` accepts exactly this and raises `ProtocolError` for anything else.
"""

from __future__ import annotations

import collections
import secrets
import struct
from dataclasses import dataclass, field

from collab.errors import ProtocolError

ENVELOPE_VERSION = 1
MAX_INSTANCE_ID_BYTES = 255
MAX_SEQ = 2**64 - 1
MAX_EPOCH = 2**64 - 1
MAX_TRACKED_SENDERS = 256
"""Senders remembered per room; the least recently seen is forgotten first."""

_COUNTERS = struct.Struct(">QQ")


@dataclass(frozen=True, slots=True)
class Envelope:
    instance_id: str
    epoch: int
    seq: int
    frame: bytes


def encode_instance_id(instance_id: str) -> bytes:
    """The id as it appears in envelopes. Raises `ValueError` unless it is 1 to 255 bytes."""
    encoded = instance_id.encode()
    if not 1 <= len(encoded) <= MAX_INSTANCE_ID_BYTES:
        raise ValueError(
            f"an instance id must be 1 to {MAX_INSTANCE_ID_BYTES} bytes of UTF-8, "
            f"got {len(encoded)}"
        )
    return encoded


def encode_envelope(instance_id: bytes, epoch: int, seq: int, frame: bytes) -> bytes:
    """`instance_id` as returned by `encode_instance_id`. Raises `ValueError` for values the
    layout cannot hold (a receiver would reject them)."""
    if not 1 <= len(instance_id) <= MAX_INSTANCE_ID_BYTES:
        raise ValueError("the instance id must be 1 to 255 bytes")
    if not 0 <= epoch <= MAX_EPOCH or not 1 <= seq <= MAX_SEQ:
        raise ValueError(f"epoch {epoch} or seq {seq} out of range")
    header = bytes((ENVELOPE_VERSION, len(instance_id)))
    return b"".join((header, instance_id, _COUNTERS.pack(epoch, seq), frame))


def decode_envelope(data: bytes) -> Envelope:
    """Parse one envelope. Raises `ProtocolError` (only) if `data` is not one."""
    if len(data) < 2:
        raise ProtocolError(f"bus envelope of {len(data)} bytes is too short")
    if data[0] != ENVELOPE_VERSION:
        raise ProtocolError(f"bus envelope version {data[0]} is not {ENVELOPE_VERSION}")
    id_length = data[1]
    if id_length == 0:
        raise ProtocolError("bus envelope has an empty instance id")
    frame_start = 2 + id_length + _COUNTERS.size
    if len(data) < frame_start:
        raise ProtocolError(f"bus envelope of {len(data)} bytes is truncated")
    try:
        instance_id = data[2 : 2 + id_length].decode()
    except UnicodeDecodeError:
        raise ProtocolError("bus envelope instance id is not UTF-8") from None
    epoch, seq = _COUNTERS.unpack_from(data, 2 + id_length)
    if seq == 0:
        raise ProtocolError("bus envelope sequence number 0")
    return Envelope(instance_id, epoch, seq, bytes(data[frame_start:]))


class SequenceTracker:
    """The (epoch, last seq) of each sender in one room; says when messages went missing.

    The first message seen from a sender sets its baseline. A new epoch (the sender subscribed
    again) resets it, and is a gap only if it does not start at seq 1. Within an epoch, any seq
    other than last + 1 is a gap (a duplicate too: the order can no longer be trusted).
    """

    def __init__(self, max_senders: int = MAX_TRACKED_SENDERS) -> None:
        self._max_senders = max_senders
        self._senders: dict[str, tuple[int, int]] = {}

    def observe(self, instance_id: str, epoch: int, seq: int) -> bool:
        """Record a message; return True if messages before it may have been lost."""
        previous = self._senders.pop(instance_id, None)
        if previous is None:
            gap = False
            if len(self._senders) >= self._max_senders:
                del self._senders[next(iter(self._senders))]
            last = seq
        elif previous[0] != epoch:
            gap = seq != 1
            last = seq
        else:
            gap = seq != previous[1] + 1
            last = max(seq, previous[1])
        # Re-inserted at the end: the dict's order is least recently seen first.
        self._senders[instance_id] = (epoch, last)
        return gap

    def clear(self) -> None:
        self._senders.clear()

    def __len__(self) -> int:
        return len(self._senders)


@dataclass
class _RoomStamp:
    epoch: int = field(default_factory=lambda: secrets.randbits(64))
    seq: int = 0


class Outbox:
    """Envelopes waiting to be published as `(room_id, envelope)`, oldest first, at most
    `max_messages`. Each frame is stamped when queued, so dropping the oldest when full leaves
    a gap in the sequence numbers that the receivers see."""

    def __init__(self, instance_id: bytes, max_messages: int) -> None:
        self._instance_id = instance_id
        self._max_messages = max_messages
        self._queue: collections.deque[tuple[str, bytes]] = collections.deque()
        self._stamps: dict[str, _RoomStamp] = {}

    def open_room(self, room_id: str) -> None:
        """Start a new epoch for the room (on each subscription)."""
        self._stamps[room_id] = _RoomStamp()

    def close_room(self, room_id: str) -> None:
        """Forget the room's epoch; what is queued for it is still published."""
        self._stamps.pop(room_id, None)

    def push(self, room_id: str, frame: bytes) -> int:
        """Queue the frame; return how many old envelopes were dropped to make room (0 or 1)."""
        stamp = self._stamps.get(room_id)
        if stamp is None:
            stamp = self._stamps[room_id] = _RoomStamp()
        stamp.seq += 1
        self._queue.append(
            (room_id, encode_envelope(self._instance_id, stamp.epoch, stamp.seq, frame))
        )
        return self._trim()

    def take(self, max_count: int) -> list[tuple[str, bytes]]:
        """Remove and return up to `max_count` of the oldest envelopes."""
        return [self._queue.popleft() for _ in range(min(max_count, len(self._queue)))]

    def put_back(self, batch: list[tuple[str, bytes]]) -> int:
        """Return a batch that could not be published to the front; return how many of the
        oldest envelopes were dropped to stay within the bound."""
        self._queue.extendleft(reversed(batch))
        return self._trim()

    def clear(self) -> None:
        self._queue.clear()
        self._stamps.clear()

    def __len__(self) -> int:
        return len(self._queue)

    def _trim(self) -> int:
        dropped = max(0, len(self._queue) - self._max_messages)
        for _ in range(dropped):
            self._queue.popleft()
        return dropped
