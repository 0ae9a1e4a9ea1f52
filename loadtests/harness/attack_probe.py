"""What an attack does to everyone else: a room the attacker never touches, where one client
sends a marker edit every `INTERVAL_S` and another times when each arrives, and `/healthz`
asked every `INTERVAL_S` on a new connection each time (as a load balancer would).

A health check is started on schedule even while earlier ones are unanswered (at most
`MAX_HEALTH_IN_FLIGHT`), so a server that stops answering for 5 s shows 5 s checks, not one.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from pycrdt import Doc, Text

from harness import yframes
from harness.ysocket import YSocket

INTERVAL_S = 0.05
HEALTH_TIMEOUT_S = 10.0
MAX_HEALTH_IN_FLIGHT = 200
DRAIN_TIMEOUT_S = 5.0
WRITER_CLIENT_ID = 777_001
PROBE_WORKSPACE = "probe"
PROBE_NOTE = "markers"


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p99 (nearest rank) and max of `values`, in ms; None when empty."""
    if not values:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    return {"p50": rank(0.5) * 1e3, "p99": rank(0.99) * 1e3, "max": ordered[-1] * 1e3}


@dataclass
class _Window:
    """What happened between `start` and `stop` of the measured window."""

    marker_sent_at: list[float] = field(default_factory=list)
    marker_rtt_s: dict[int, float] = field(default_factory=dict)
    health_s: list[float] = field(default_factory=list)
    health_failed: list[str] = field(default_factory=list)
    health_by_second: dict[int, list[int]] = field(default_factory=dict)
    """Second of the window a check started in -> [answered, failed]."""
    health_skipped: int = 0


class Probe:
    """The marker room's writer and reader, and the health checker. `open` connects both
    clients; `run_window` measures until `stop` is set, then waits for what is in flight."""

    def __init__(self, http_base: str, writer_url: str, reader_url: str) -> None:
        self.http_base = http_base
        self.writer_url = writer_url
        self.reader_url = reader_url
        self.writer_doc: Doc[Any] = Doc(client_id=WRITER_CLIENT_ID)
        self.writer_text = self.writer_doc.get("t", type=Text)
        self.reader_doc: Doc[Any] = Doc()
        self.session: aiohttp.ClientSession | None = None
        self.writer: YSocket | None = None
        self.reader: YSocket | None = None
        self.window = _Window()
        self._seq_base = 0  # markers sent before the window (warm-up)
        self._received_clock = 0
        self._sent_at: list[float] = []
        self._window_started = 0.0

    async def open(self) -> None:
        self.session = aiohttp.ClientSession()
        self.reader = await YSocket.open(
            self.session, self.reader_url, on_update=self._on_reader_update
        )
        self.writer = await YSocket.open(
            self.session, self.writer_url, answer=self.writer_doc.get_update
        )

    async def close(self) -> None:
        for socket in (self.writer, self.reader):
            if socket is not None:
                await socket.close()
        if self.session is not None:
            await self.session.close()

    def _on_reader_update(self, update: bytes) -> None:
        self.reader_doc.apply_update(update)
        clocks = yframes.state_vector_clocks(self.reader_doc.get_state())
        clock = clocks.get(WRITER_CLIENT_ID, 0)
        now = time.monotonic()
        for seq in range(self._received_clock, min(clock, len(self._sent_at))):
            window_seq = seq - self._seq_base
            if window_seq >= 0:
                self.window.marker_rtt_s[window_seq] = now - self._sent_at[seq]
        self._received_clock = max(self._received_clock, clock)

    async def _send_marker(self, in_window: bool) -> None:
        assert self.writer is not None
        before = self.writer_doc.get_state()
        self.writer_text += "m"  # one character: the writer's clock counts the markers
        now = time.monotonic()
        self._sent_at.append(now)
        if in_window:
            self.window.marker_sent_at.append(now)
        await self.writer.send(yframes.update_frame(self.writer_doc.get_update(before)))

    async def warm_up(self, duration_s: float) -> None:
        """Markers before the window: they open the room's path on the server."""
        deadline = time.monotonic() + duration_s
        while time.monotonic() < deadline:
            await self._send_marker(in_window=False)
            await asyncio.sleep(INTERVAL_S)
        self._seq_base = len(self._sent_at)

    async def run_window(self, stop: asyncio.Event) -> dict[str, Any]:
        """Markers and health checks every `INTERVAL_S` until `stop`; then wait (at most
        `DRAIN_TIMEOUT_S`) for the markers and checks in flight. Returns the numbers."""
        self.window = _Window()
        self._seq_base = len(self._sent_at)
        started = self._window_started = time.monotonic()
        checks: set[asyncio.Task[None]] = set()
        connector = aiohttp.TCPConnector(force_close=True, limit=0)
        timeout = aiohttp.ClientTimeout(total=HEALTH_TIMEOUT_S)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as health:
            tick = 0
            while not stop.is_set():
                await self._send_marker(in_window=True)
                if len(checks) < MAX_HEALTH_IN_FLIGHT:
                    task = asyncio.create_task(self._check_health(health))
                    checks.add(task)
                    task.add_done_callback(checks.discard)
                else:
                    self.window.health_skipped += 1
                tick += 1
                delay = started + tick * INTERVAL_S - time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, delay))
            ended = time.monotonic()
            assert self.reader is not None
            sent = len(self.window.marker_sent_at)
            await self.reader.wait_for(
                lambda: len(self.window.marker_rtt_s) >= sent, DRAIN_TIMEOUT_S
            )
            if checks:
                await asyncio.wait(set(checks), timeout=HEALTH_TIMEOUT_S + 1)
        return self._numbers(ended - started)

    async def _check_health(self, http: aiohttp.ClientSession) -> None:
        started = time.monotonic()
        second = self.window.health_by_second.setdefault(
            int(started - self._window_started), [0, 0]
        )
        try:
            async with http.get(f"{self.http_base}/healthz") as response:
                await response.read()
                if response.status == 200:
                    self.window.health_s.append(time.monotonic() - started)
                    second[0] += 1
                    return
                self.window.health_failed.append(f"HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            self.window.health_failed.append(type(error).__name__)
        second[1] += 1

    def _numbers(self, window_s: float) -> dict[str, Any]:
        window = self.window
        sent = len(window.marker_sent_at)
        health_total = len(window.health_s) + len(window.health_failed)
        failures: dict[str, int] = {}
        for kind in window.health_failed:
            failures[kind] = failures.get(kind, 0) + 1
        return {
            "window_s": window_s,
            "markers_sent": sent,
            "markers_received": len(window.marker_rtt_s),
            "marker_ms": percentiles(list(window.marker_rtt_s.values())),
            "healthz_checks": health_total,
            "healthz_ok": len(window.health_s),
            "healthz_ok_pct": 100 * len(window.health_s) / health_total if health_total else None,
            "healthz_failures": failures,
            "healthz_skipped": window.health_skipped,
            "healthz_ms": percentiles(window.health_s),
            "healthz_ok_failed_by_second": [
                window.health_by_second.get(second, [0, 0])
                for second in range(max(window.health_by_second, default=-1) + 1)
            ],
        }
