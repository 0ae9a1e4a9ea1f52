"""`Liveness`: silent connections get a ping after a whole interval, and are dropped when
still silent half an interval later; any message, a pong included, clears both."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import cast

from collab.protocol.close_codes import CloseCode
from collab.web.sockets.liveness import PING_FRAME, Liveness, Watched
from tests.support.transports import RecordingTransport


def watched_transport(liveness: Liveness) -> tuple[RecordingTransport, Watched]:
    transport = RecordingTransport()
    watched = Watched(cast(asyncio.Transport, transport), "conn", "test")
    liveness.watch(watched)
    return transport, watched


def test_a_silent_connection_is_pinged_after_an_interval_then_dropped() -> None:
    liveness = Liveness(30)
    transport, _ = watched_transport(liveness)
    liveness.sweep()  # half an interval of silence
    assert transport.written == []
    liveness.sweep()  # a whole interval
    assert transport.written == [PING_FRAME]
    assert PING_FRAME == b"\x89\x00"
    liveness.sweep()  # half an interval after the ping, still nothing
    assert transport.aborted


def test_an_answer_to_the_ping_keeps_the_connection() -> None:
    liveness = Liveness(30)
    transport, watched = watched_transport(liveness)
    liveness.sweep()
    liveness.sweep()
    assert transport.written == [PING_FRAME]
    watched.messages += 1  # the pong
    for _ in range(2):
        liveness.sweep()
    assert not transport.aborted
    liveness.sweep()  # silent for an interval again: a new ping, not a drop
    assert transport.written == [PING_FRAME, PING_FRAME]
    assert not transport.aborted


def test_a_connection_with_traffic_is_never_pinged() -> None:
    liveness = Liveness(30)
    transport, watched = watched_transport(liveness)
    for _ in range(10):
        watched.messages += 1
        liveness.sweep()
    assert transport.written == []
    assert not transport.aborted


def test_closing_and_unwatched_connections_are_left_alone() -> None:
    liveness = Liveness(30)
    closing, _ = watched_transport(liveness)
    closing.closed = True
    gone, gone_watched = watched_transport(liveness)
    liveness.unwatch(gone_watched)
    for _ in range(4):
        liveness.sweep()
    assert closing.written == []
    assert not closing.aborted
    assert gone.written == []
    assert not gone.aborted


async def test_with_no_interval_the_sweeper_does_not_run() -> None:
    await asyncio.wait_for(Liveness(0).run(), 1)


async def test_shutdown_closes_what_it_watches_and_waits_for_each() -> None:
    liveness = Liveness(30)
    _, bare = watched_transport(liveness)
    closed: list[tuple[int, str]] = []
    gone = asyncio.Event()

    class Closing(Watched):
        __slots__ = ()

        def shut_down(self, code: CloseCode, reason: str) -> Awaitable[None]:
            closed.append((code, reason))
            return gone.wait()

    closing = Closing(cast(asyncio.Transport, RecordingTransport()), "conn", "closing")
    liveness.watch(closing)
    shutdown = asyncio.create_task(liveness.close_all(CloseCode.SERVICE_RESTART, "bye"))
    await asyncio.sleep(0)
    assert closed == [(CloseCode.SERVICE_RESTART, "bye")]
    assert not shutdown.done()
    gone.set()
    await asyncio.wait_for(shutdown, 1)
    assert bare.label == "conn test"
