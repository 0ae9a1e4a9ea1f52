"""Plain counters of the hot paths: frame kinds and the latency histogram."""

from __future__ import annotations

import pytest
from pycrdt import Doc, Text

from collab.observability.counters import (
    AWARENESS,
    FRAME_KINDS,
    OTHER,
    QUERY_AWARENESS,
    SYNC_STEP1,
    SYNC_STEP2,
    SYNC_UPDATE,
    DocTraffic,
    LatencyHistogram,
    frame_kind,
)
from collab.protocol.messages import (
    AwarenessEntry,
    encode_awareness,
    encode_sync_step1,
    encode_sync_step2,
    encode_update,
)


def _update() -> bytes:
    doc = Doc()
    doc.get("t", type=Text).insert(0, "hi")
    return doc.get_update()


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        (encode_sync_step1(b"\x00"), SYNC_STEP1),
        (encode_sync_step2(_update()), SYNC_STEP2),
        (encode_update(_update()), SYNC_UPDATE),
        (encode_awareness([AwarenessEntry(1, 1, "{}")]), AWARENESS),
        (b"\x03", QUERY_AWARENESS),
        (b"", OTHER),
        (b"\x00", OTHER),
        (b"\x00\x07\x00", OTHER),
        (b"\x02\x00", OTHER),
        (b"\x07\x00", OTHER),
    ],
)
def test_frames_are_classified_by_their_first_two_bytes(frame: bytes, kind: int) -> None:
    """Each y-websocket message type gets its own kind; anything else is `other`."""
    assert frame_kind(frame) == kind
    assert 0 <= kind < len(FRAME_KINDS)


def test_traffic_counts_frames_and_bytes_per_delivery() -> None:
    """A frame delivered to n connections counts n frames and n times its size."""
    traffic = DocTraffic()
    update = encode_update(_update())
    traffic.count_sent(update, 3)
    traffic.count_sent(update, 0)
    traffic.count_received(b"\x03")
    assert traffic.sent.frames[SYNC_UPDATE] == 3
    assert traffic.sent.bytes[SYNC_UPDATE] == 3 * len(update)
    assert traffic.received.frames == [0, 0, 0, 0, 1, 0]
    assert traffic.received.bytes[QUERY_AWARENESS] == 1


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    """A sample equal to a bound counts in that bound's bucket; +Inf counts every sample."""
    histogram = LatencyHistogram((0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 1.0, 7.0):
        histogram.observe(seconds)
    assert histogram.cumulative() == [("0.1", 2), ("1.0", 4), ("+Inf", 5)]
    assert histogram.sum == pytest.approx(8.65)
