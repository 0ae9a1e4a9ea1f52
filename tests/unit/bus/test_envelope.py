"""Bus envelopes, the sender's outbox and the receiver's gap detection, with no I/O."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collab.bus.envelope import (
    ENVELOPE_VERSION,
    MAX_EPOCH,
    MAX_INSTANCE_ID_BYTES,
    MAX_SEQ,
    Envelope,
    Outbox,
    SequenceTracker,
    decode_envelope,
    encode_envelope,
    encode_instance_id,
)
from collab.errors import ProtocolError

FUZZ = settings(max_examples=500, deadline=None)

SENDER = encode_instance_id("instance-a")
COUNTERS = struct.Struct(">QQ")


def raw_envelope(
    *,
    version: int = ENVELOPE_VERSION,
    id_length: int | None = None,
    instance_id: bytes = b"instance-a",
    epoch: int = 7,
    seq: int = 1,
    frame: bytes = b"frame",
) -> bytes:
    """Bytes laid out like an envelope, with any field free to be wrong."""
    length = len(instance_id) if id_length is None else id_length
    return bytes((version, length)) + instance_id + COUNTERS.pack(epoch, seq) + frame


def decoded(outbox: Outbox, max_count: int = 1_000) -> list[tuple[str, Envelope]]:
    """Take everything the outbox holds, decoded."""
    return [(room_id, decode_envelope(data)) for room_id, data in outbox.take(max_count)]


# -- encoding and decoding -----------------------------------------------------------------------


def test_encoded_envelope_decodes_to_the_same_fields() -> None:
    """An envelope written by `encode_envelope` reads back with the same id, counters and frame."""
    data = encode_envelope(SENDER, 12345, 6, b"\x00\x01sync")
    assert decode_envelope(data) == Envelope("instance-a", 12345, 6, b"\x00\x01sync")


def test_envelope_layout_is_version_length_id_epoch_seq_frame() -> None:
    """The bytes follow the documented layout, integers big-endian."""
    data = encode_envelope(b"ab", 1, 2, b"xyz")
    assert data == bytes((ENVELOPE_VERSION, 2)) + b"ab" + COUNTERS.pack(1, 2) + b"xyz"


@FUZZ
@given(
    instance_id=st.text(min_size=1, max_size=63),  # at most 4 bytes a character: fits
    epoch=st.integers(min_value=0, max_value=MAX_EPOCH),
    seq=st.integers(min_value=1, max_value=MAX_SEQ),
    frame=st.binary(max_size=300),
)
def test_any_encodable_envelope_round_trips(
    instance_id: str, epoch: int, seq: int, frame: bytes
) -> None:
    """Every id, epoch, seq and frame the layout can hold reads back unchanged."""
    data = encode_envelope(encode_instance_id(instance_id), epoch, seq, frame)
    assert decode_envelope(data) == Envelope(instance_id, epoch, seq, frame)


def test_envelope_with_an_empty_frame_decodes() -> None:
    """A header with nothing after it is a valid envelope with an empty frame."""
    assert decode_envelope(encode_envelope(SENDER, 0, 1, b"")).frame == b""


def test_instance_id_of_the_maximum_length_is_accepted_both_ways() -> None:
    """A 255-byte instance id encodes and decodes."""
    instance_id = "x" * MAX_INSTANCE_ID_BYTES
    data = encode_envelope(encode_instance_id(instance_id), 1, 1, b"f")
    assert decode_envelope(data).instance_id == instance_id


@pytest.mark.parametrize(
    "instance_id",
    ["", "x" * (MAX_INSTANCE_ID_BYTES + 1), "é" * 128],
    ids=["empty", "256-ascii", "256-bytes-of-utf8"],
)
def test_instance_id_outside_1_to_255_utf8_bytes_is_refused(instance_id: str) -> None:
    """`encode_instance_id` raises `ValueError` for ids the one-byte length cannot describe."""
    with pytest.raises(ValueError, match="1 to 255 bytes"):
        encode_instance_id(instance_id)


@pytest.mark.parametrize(
    ("instance_id", "epoch", "seq"),
    [
        (b"", 1, 1),
        (b"x" * 256, 1, 1),
        (SENDER, -1, 1),
        (SENDER, MAX_EPOCH + 1, 1),
        (SENDER, 1, 0),
        (SENDER, 1, MAX_SEQ + 1),
    ],
    ids=["empty-id", "long-id", "negative-epoch", "huge-epoch", "seq-0", "huge-seq"],
)
def test_values_a_receiver_would_reject_are_not_encoded(
    instance_id: bytes, epoch: int, seq: int
) -> None:
    """`encode_envelope` raises `ValueError` rather than write what `decode_envelope` refuses."""
    with pytest.raises(ValueError, match=r"instance id|out of range"):
        encode_envelope(instance_id, epoch, seq, b"frame")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short"),
        (bytes((ENVELOPE_VERSION,)), "too short"),
        (raw_envelope(version=0), "version 0 "),
        (raw_envelope(version=ENVELOPE_VERSION + 1), f"version {ENVELOPE_VERSION + 1} "),
        (raw_envelope(version=255), "version 255"),
        (raw_envelope(id_length=0, instance_id=b""), "empty instance id"),
        (raw_envelope(id_length=0), "empty instance id"),
        (bytes((ENVELOPE_VERSION, 10)) + b"short", "truncated"),
        (raw_envelope(id_length=255, frame=b""), "truncated"),
        (raw_envelope(frame=b"")[:-1], "truncated"),
        (bytes((ENVELOPE_VERSION, 3)) + b"abc" + b"\x00" * 8, "truncated"),
        (raw_envelope(instance_id=b"\xff\xfe"), "not UTF-8"),
        (raw_envelope(instance_id=b"ok\xc3"), "not UTF-8"),
        (raw_envelope(instance_id=b"\xed\xa0\x80"), "not UTF-8"),
        (raw_envelope(seq=0), "sequence number 0"),
    ],
    ids=[
        "empty",
        "version-only",
        "version-0",
        "next-version",
        "version-255",
        "zero-id-length-no-id",
        "zero-id-length-with-bytes",
        "id-longer-than-data",
        "id-length-255-past-the-end",
        "counters-one-byte-short",
        "seq-missing",
        "invalid-utf8-id",
        "truncated-utf8-id",
        "surrogate-in-id",
        "seq-0",
    ],
)
def test_malformed_envelope_raises_protocol_error(data: bytes, message: str) -> None:
    """Each kind of malformed envelope raises `ProtocolError` saying what is wrong."""
    with pytest.raises(ProtocolError, match=message):
        decode_envelope(data)


def test_id_length_reaching_past_the_counters_is_truncation_not_a_shorter_id() -> None:
    """A length byte one more than the id takes the counters' first byte, so the rest is short."""
    data = raw_envelope(id_length=len(b"instance-a") + 1, frame=b"")
    with pytest.raises(ProtocolError, match="truncated"):
        decode_envelope(data)


@FUZZ
@given(st.binary(max_size=80))
def test_arbitrary_bytes_decode_or_raise_protocol_error(data: bytes) -> None:
    """Any bytes either decode to an envelope or raise `ProtocolError`, never anything else."""
    try:
        envelope = decode_envelope(data)
    except ProtocolError:
        return
    assert envelope.seq >= 1
    assert 1 <= len(envelope.instance_id.encode()) <= MAX_INSTANCE_ID_BYTES


@FUZZ
@given(st.binary(max_size=80))
def test_arbitrary_bytes_after_a_valid_version_decode_or_raise_protocol_error(
    rest: bytes,
) -> None:
    """Past the version check too, any bytes decode or raise `ProtocolError`, and what decodes
    re-encodes to the same bytes."""
    data = bytes((ENVELOPE_VERSION,)) + rest
    try:
        envelope = decode_envelope(data)
    except ProtocolError:
        return
    encoded_id = encode_instance_id(envelope.instance_id)
    assert encode_envelope(encoded_id, envelope.epoch, envelope.seq, envelope.frame) == data


# -- gap detection -------------------------------------------------------------------------------


def test_first_message_from_a_sender_sets_the_baseline_without_a_gap() -> None:
    """Whatever seq a sender is first seen at, that is no gap: earlier ones predate us."""
    tracker = SequenceTracker()
    assert tracker.observe("a", 5, 42) is False
    assert len(tracker) == 1


def test_next_seq_in_the_same_epoch_is_no_gap() -> None:
    """seq = last + 1 within an epoch is in order."""
    tracker = SequenceTracker()
    tracker.observe("a", 5, 1)
    assert [tracker.observe("a", 5, seq) for seq in (2, 3, 4)] == [False, False, False]


def test_skipped_seq_is_a_gap() -> None:
    """A seq beyond last + 1 means messages were lost."""
    tracker = SequenceTracker()
    tracker.observe("a", 5, 1)
    assert tracker.observe("a", 5, 3) is True


def test_tracking_continues_from_the_seq_after_a_gap() -> None:
    """After a gap the new seq is the baseline: its successor is in order."""
    tracker = SequenceTracker()
    tracker.observe("a", 5, 1)
    tracker.observe("a", 5, 10)
    assert tracker.observe("a", 5, 11) is False


def test_duplicate_seq_is_a_gap() -> None:
    """A repeated seq means the order can no longer be trusted."""
    tracker = SequenceTracker()
    tracker.observe("a", 5, 1)
    tracker.observe("a", 5, 2)
    assert tracker.observe("a", 5, 2) is True


def test_older_seq_is_a_gap_and_does_not_move_the_baseline_back() -> None:
    """A seq below the last seen is a gap, and the next in order follows the highest seen."""
    tracker = SequenceTracker()
    tracker.observe("a", 5, 10)
    assert tracker.observe("a", 5, 8) is True
    assert tracker.observe("a", 5, 11) is False


def test_new_epoch_starting_at_1_resets_without_a_gap() -> None:
    """A sender that subscribed again starts its epoch at seq 1: nothing was lost."""
    tracker = SequenceTracker()
    tracker.observe("a", 5, 1)
    tracker.observe("a", 5, 2)
    assert tracker.observe("a", 6, 1) is False
    assert tracker.observe("a", 6, 2) is False


def test_new_epoch_starting_above_1_is_a_gap() -> None:
    """A new epoch first seen past seq 1 means its first messages were lost."""
    tracker = SequenceTracker()
    tracker.observe("a", 5, 1)
    assert tracker.observe("a", 6, 3) is True
    assert tracker.observe("a", 6, 4) is False


def test_senders_are_tracked_independently() -> None:
    """One sender's sequence says nothing about another's."""
    tracker = SequenceTracker()
    tracker.observe("a", 5, 1)
    tracker.observe("b", 9, 100)
    assert tracker.observe("a", 5, 2) is False
    assert tracker.observe("b", 9, 101) is False
    assert tracker.observe("b", 9, 200) is True
    assert len(tracker) == 2


def test_clear_forgets_every_sender_so_the_next_message_is_a_baseline() -> None:
    """After `clear`, a sender's next message sets a new baseline, whatever its seq."""
    tracker = SequenceTracker()
    tracker.observe("a", 5, 1)
    tracker.clear()
    assert len(tracker) == 0
    assert tracker.observe("a", 5, 50) is False


def test_least_recently_seen_sender_is_forgotten_beyond_the_bound() -> None:
    """With `max_senders` tracked, a new sender evicts the one seen longest ago."""
    tracker = SequenceTracker(max_senders=2)
    tracker.observe("a", 1, 1)
    tracker.observe("b", 1, 1)
    tracker.observe("a", 1, 2)  # now "b" is the least recently seen
    tracker.observe("c", 1, 1)
    assert len(tracker) == 2
    assert tracker.observe("b", 1, 9) is False  # forgotten: a new baseline, evicting "a"
    assert tracker.observe("c", 1, 5) is True  # still tracked: 2..4 are missing


# -- the outbox ----------------------------------------------------------------------------------


def test_outbox_keeps_push_order_across_rooms() -> None:
    """Envelopes come out oldest first, whichever rooms they are for."""
    outbox = Outbox(SENDER, max_messages=10)
    pushes = [("r1", b"1"), ("r2", b"2"), ("r1", b"3"), ("r3", b"4"), ("r2", b"5")]
    for room_id, frame in pushes:
        outbox.push(room_id, frame)
    assert [(room_id, e.frame) for room_id, e in decoded(outbox)] == pushes
    assert len(outbox) == 0


def test_outbox_numbers_each_room_from_1_in_one_epoch() -> None:
    """Each room has its own epoch and its own seq, starting at 1 and increasing by 1."""
    outbox = Outbox(SENDER, max_messages=10)
    for room_id in ("r1", "r2", "r1", "r1", "r2"):
        outbox.push(room_id, b"f")
    envelopes = decoded(outbox)
    by_room = {room: [e for r, e in envelopes if r == room] for room in ("r1", "r2")}
    assert [e.seq for e in by_room["r1"]] == [1, 2, 3]
    assert [e.seq for e in by_room["r2"]] == [1, 2]
    assert len({e.epoch for e in by_room["r1"]}) == 1
    assert len({e.epoch for e in by_room["r2"]}) == 1
    assert {e.instance_id for _, e in envelopes} == {"instance-a"}


def test_full_outbox_drops_the_oldest_and_counts_each_drop() -> None:
    """Past `max_messages`, each push drops the oldest envelope and reports 1."""
    outbox = Outbox(SENDER, max_messages=3)
    drops = [outbox.push("r", f"m{i}".encode()) for i in range(5)]
    assert drops == [0, 0, 0, 1, 1]
    assert len(outbox) == 3
    assert [e.frame for _, e in decoded(outbox)] == [b"m2", b"m3", b"m4"]


def test_dropped_envelopes_leave_a_gap_the_receiver_sees() -> None:
    """Frames are numbered when queued, so a drop shows as a skipped seq at the receiver."""
    outbox = Outbox(SENDER, max_messages=2)
    tracker = SequenceTracker()
    outbox.push("r", b"m1")
    [(_, first)] = decoded(outbox)
    assert tracker.observe(first.instance_id, first.epoch, first.seq) is False
    assert [outbox.push("r", f"m{i}".encode()) for i in (2, 3, 4)] == [0, 0, 1]
    gaps = [tracker.observe(e.instance_id, e.epoch, e.seq) for _, e in decoded(outbox)]
    assert gaps == [True, False]


def test_take_returns_at_most_the_oldest_max_count() -> None:
    """`take(n)` removes the n oldest envelopes and leaves the rest queued."""
    outbox = Outbox(SENDER, max_messages=10)
    for i in range(5):
        outbox.push("r", f"m{i}".encode())
    assert [decode_envelope(data).frame for _, data in outbox.take(2)] == [b"m0", b"m1"]
    assert len(outbox) == 3
    assert outbox.take(0) == []
    assert [e.frame for _, e in decoded(outbox)] == [b"m2", b"m3", b"m4"]


def test_put_back_restores_a_batch_in_front_and_trims_the_oldest() -> None:
    """A batch returned by `put_back` comes out first again, in order, within the bound."""
    outbox = Outbox(SENDER, max_messages=3)
    for i in range(3):
        outbox.push("r", f"m{i}".encode())
    batch = outbox.take(2)
    outbox.push("r", b"m3")
    assert outbox.put_back(batch) == 1
    assert [e.frame for _, e in decoded(outbox)] == [b"m1", b"m2", b"m3"]


def test_reopening_a_room_starts_a_new_epoch_at_seq_1() -> None:
    """`open_room` (a new subscription) restarts the room's numbering in a fresh epoch."""
    outbox = Outbox(SENDER, max_messages=10)
    outbox.open_room("r")
    outbox.push("r", b"a")
    outbox.push("r", b"b")
    outbox.open_room("r")
    outbox.push("r", b"c")
    old_1, old_2, new_1 = (e for _, e in decoded(outbox))
    assert (old_1.seq, old_2.seq, new_1.seq) == (1, 2, 1)
    assert old_1.epoch == old_2.epoch


def test_closing_a_room_keeps_what_is_queued_for_it() -> None:
    """`close_room` forgets the epoch but still publishes the room's queued envelopes."""
    outbox = Outbox(SENDER, max_messages=10)
    outbox.push("r", b"queued")
    outbox.close_room("r")
    outbox.push("r", b"later")
    [(_, queued), (_, later)] = decoded(outbox)
    assert queued.frame == b"queued"
    assert (later.frame, later.seq) == (b"later", 1)


def test_clear_empties_the_outbox() -> None:
    """`clear` drops every queued envelope."""
    outbox = Outbox(SENDER, max_messages=10)
    outbox.push("r", b"a")
    outbox.clear()
    assert len(outbox) == 0
    assert outbox.take(10) == []
