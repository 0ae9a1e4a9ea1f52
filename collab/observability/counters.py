"""Plain counters for the per-message paths, read by the metrics collector at scrape time.

A metrics library takes a lock and looks up a label set on every increment. Per message that
is too much, so the hot paths only add to plain integers here (indexed by a small frame kind)
and `collab.web.http.metrics` turns them into Prometheus series when scraped. This module
imports nothing of ours, so the room layer can use it.
"""

from __future__ import annotations

from bisect import bisect_left

# Frame kinds, by the y-websocket message type (first byte) and sync type (second byte).
SYNC_STEP1 = 0
SYNC_STEP2 = 1
SYNC_UPDATE = 2
AWARENESS = 3
QUERY_AWARENESS = 4
OTHER = 5
FRAME_KINDS = ("sync_step1", "sync_step2", "sync_update", "awareness", "query_awareness", "other")

# Every y-websocket message type and sync type fits one var_uint byte, so the first two bytes
# classify a frame without decoding it. Malformed frames are "other" (or, for a truncated sync
# frame, the kind its first bytes name); they are counted before validation closes them.
_BY_MESSAGE_TYPE = {1: AWARENESS, 3: QUERY_AWARENESS}


def frame_kind(frame: bytes) -> int:
    """The kind of a y-websocket frame: an index into `FRAME_KINDS`."""
    if len(frame) < 2:
        return QUERY_AWARENESS if frame == b"\x03" else OTHER
    first = frame[0]
    if first == 0:
        second = frame[1]
        return second if second <= SYNC_UPDATE else OTHER
    return _BY_MESSAGE_TYPE.get(first, OTHER)


class FrameCounts:
    """Frames and bytes of one direction, by frame kind."""

    __slots__ = ("bytes", "frames")

    def __init__(self) -> None:
        self.frames = [0] * len(FRAME_KINDS)
        self.bytes = [0] * len(FRAME_KINDS)


class DocTraffic:
    """y-websocket frames received from and delivered to document connections."""

    __slots__ = ("received", "sent")

    def __init__(self) -> None:
        self.received = FrameCounts()
        self.sent = FrameCounts()

    def count_received(self, frame: bytes) -> None:
        kind = frame_kind(frame)
        self.received.frames[kind] += 1
        self.received.bytes[kind] += len(frame)

    def count_sent(self, frame: bytes, deliveries: int) -> None:
        """`frame` (its payload) went to `deliveries` connections."""
        kind = frame_kind(frame)
        self.sent.frames[kind] += deliveries
        self.sent.bytes[kind] += deliveries * len(frame)


class LiveTraffic:
    """JSON messages received from and events sent to live-channel connections."""

    __slots__ = ("received_bytes", "received_messages", "sent_bytes", "sent_events")

    def __init__(self) -> None:
        self.received_messages = 0
        self.received_bytes = 0
        self.sent_events = 0
        self.sent_bytes = 0

    def count_received(self, message: str | bytes) -> None:
        self.received_messages += 1
        self.received_bytes += len(message)

    def count_sent(self, payload: bytes) -> None:
        self.sent_events += 1
        self.sent_bytes += len(payload)


# Seconds; from 50 µs (a keystroke applied to a small document) to 10 s (a stalled store).
LATENCY_BUCKETS_S = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class LatencyHistogram:
    """A histogram of durations in seconds: one list increment and one addition per sample.

    `counts[i]` holds the samples in (bounds[i-1], bounds[i]]; the last slot is +Inf.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        # bisect_left puts a sample equal to a bound in that bound's bucket (`le`, as
        # Prometheus means it).
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """`(le, count)` pairs for every bound and +Inf, cumulative as Prometheus wants them."""
        buckets = []
        total = 0
        for bound, count in zip((*map(repr, self.bounds), "+Inf"), self.counts, strict=True):
            total += count
            buckets.append((bound, total))
        return buckets
